// Package pluginhost runs backend plugins for hsmhost and keeps them running.
//
// Each configured backend is one plugin process started through
// hashicorp/go-plugin with the SDK's handshake, automatic mTLS and, when the
// config pins one, a SHA-256 of the binary that go-plugin checks at every
// launch (a restart re-checks it too). The plugin gets a minimal environment
// plus what the config passes explicitly, never hsmhost's whole environment,
// so a cloud credential meant for one backend does not leak into another.
//
// A plugin that dies is noticed on the next call and relaunched; calls that
// were in flight fail at once with a KindUnavailable error that says so (gRPC
// fails them when the connection drops), rather than hanging.
//
// Relaunches back off exponentially so a plugin that crash loops (at start
// or on every request) costs a bounded number of process spawns: the first
// relaunch after a healthy run is immediate, each one after that waits
// twice as long as the last, from backoffMin up to backoffMax, counted from
// the end of the previous launch (so a slow failing start adds to the wait
// rather than eating it). A call during the wait fails at once with an error
// that says when the next attempt is, rather than spawning or blocking; the
// first call after it relaunches, so a plugin that has been fixed serves
// again within one backoff. A plugin that then runs for healthyAfter starts
// the sequence afresh.
//
// Every plugin is started with a parent-death signal (procattr_linux.go),
// and the SDK watches its parent too, so plugins end with hsmhost.
package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/plugins/sdk"
)

// Spec says how to run one backend plugin.
type Spec struct {
	Name     string // the backend's name in the config
	Command  string
	Args     []string
	SHA256   string   // hex; when set, a binary that does not match is refused
	Env      []string // "K=V" given to the plugin besides the minimal environment
	Settings map[string]string
	Logger   hclog.Logger
	// Restarted, when set, is called at every relaunch of a plugin that
	// exited (before it is launched again, so failed relaunches count too),
	// with the backend's lock held: it must be quick (the metrics' counter).
	Restarted func()
}

// The restart backoff; variables so that tests can shorten them.
var (
	backoffMin   = 100 * time.Millisecond
	backoffMax   = 5 * time.Second
	healthyAfter = 30 * time.Second
)

const (
	defaultCallTime = 30 * time.Second
	startTimeout    = 15 * time.Second
	exitNoticeTime  = 500 * time.Millisecond
)

// passedThrough are the only variables of hsmhost's environment a plugin
// sees unless the config names more. GOMAXPROCS passes so that an operator
// can trade a plugin's parallelism for fewer cross-thread wake-ups (and
// GOGC its memory for CPU); the profile variables let a benchmark profile
// the plugin (sdk.ProfileFromEnv).
var passedThrough = []string{"PATH", "HOME", "TMPDIR", "HSMBRIDGE_LOG_LEVEL", "HSMBRIDGE_STATE_DIR", "GOMAXPROCS", "GOGC",
	"HSMBRIDGE_CPUPROFILE", "HSMBRIDGE_CPUPROFILE_SECONDS"}

// Backend is one running plugin. It implements every ports interface; the
// operations the plugin did not declare are refused by the SDK client.
type Backend struct {
	spec Spec
	log  hclog.Logger

	mu     sync.Mutex
	client *plugin.Client
	conn   *sdk.Client
	closed bool
	// launched is when the last launch ended, ok or not; failures counts
	// the relaunches since the plugin last ran healthyAfter.
	launched time.Time
	failures int
}

// Start launches the plugin, checks its checksum, and configures it.
func Start(ctx context.Context, spec Spec) (*Backend, error) {
	if spec.Logger == nil {
		spec.Logger = hclog.NewNullLogger()
	}
	b := &Backend{spec: spec, log: spec.Logger.Named(spec.Name)}
	err := b.launch(ctx)
	b.launched = time.Now()
	if err != nil {
		return nil, err
	}
	return b, nil
}

// dial starts the plugin's process through go-plugin (handshake, mTLS,
// the pinned checksum) and dispenses its client, which has already asked
// the plugin to describe itself.
func dial(spec Spec, log hclog.Logger) (*plugin.Client, *sdk.Client, error) {
	cmd := exec.Command(spec.Command, spec.Args...)
	for _, name := range passedThrough {
		if v, ok := os.LookupEnv(name); ok {
			cmd.Env = append(cmd.Env, name+"="+v)
		}
	}
	cmd.Env = append(cmd.Env, spec.Env...)
	cmd.SysProcAttr = procAttr() // go-plugin runs the Cmd as given
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          plugin.PluginSet{sdk.PluginName: &sdk.BackendPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     startTimeout,
		Logger:           relayed{log},
		GRPCDialOptions:  sdk.DialOptions(),
	}
	if spec.SHA256 != "" {
		sum, err := hex.DecodeString(spec.SHA256)
		if err != nil || len(sum) != sha256.Size {
			return nil, nil, core.Errorf(core.KindInvalidInput, "backend %q: sha256 %q is not 64 hex digits", spec.Name, spec.SHA256)
		}
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	client := plugin.NewClient(cfg)
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, nil, core.Errorf(core.KindPermissionDenied,
				"backend %q: plugin %s does not match its pinned sha256; refusing to start it", spec.Name, spec.Command)
		}
		return nil, nil, core.Errorf(core.KindUnavailable, "backend %q: starting plugin %s: %w", spec.Name, spec.Command, err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		client.Kill()
		return nil, nil, core.Errorf(core.KindUnavailable, "backend %q: plugin %s: %w", spec.Name, spec.Command, err)
	}
	return client, raw.(*sdk.Client), nil
}

// Probed is what a plugin says of itself before it is configured.
type Probed struct {
	Protocol    int // the go-plugin protocol version negotiated
	Description core.BackendDescription
}

// Probe starts the plugin as Start would (same handshake, environment and
// checksum check), reads its description without configuring it, and
// stops it: what `hsmhost plugin verify` and `plugin list` show.
func Probe(spec Spec) (Probed, error) {
	if spec.Logger == nil {
		spec.Logger = hclog.NewNullLogger()
	}
	client, conn, err := dial(spec, spec.Logger.Named(spec.Name))
	if err != nil {
		return Probed{}, err
	}
	defer client.Kill()
	defer conn.Close()
	return Probed{Protocol: client.NegotiatedVersion(), Description: conn.Description()}, nil
}

func (b *Backend) launch(ctx context.Context) error {
	client, conn, err := dial(b.spec, b.log)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, defaultCallTime)
	defer cancel()
	if err := conn.Configure(cctx, b.spec.Settings); err != nil {
		client.Kill()
		return core.Errorf(core.KindOf(err), "backend %q: configuring plugin: %w", b.spec.Name, err)
	}
	if dataPathWanted() {
		if _, err := conn.OpenDataPath(cctx); err != nil {
			// gRPC still carries everything, only slower.
			b.log.Warn("plugin's data path refused; key operations go over gRPC", "error", err)
		}
	}
	if b.conn != nil {
		b.conn.Close() // the last run's data connection
	}
	b.client, b.conn = client, conn
	b.log.Info("plugin started", "command", b.spec.Command, "data_path", conn.DataPath(), "declares", conn.Description().Operations)
	return nil
}

// dataPathWanted: key operations go over the plugin's data path (see
// plugins/sdk) unless HSMBRIDGE_DATA_PATH=grpc asks for gRPC throughout, to
// compare the two or to rule the data path out.
func dataPathWanted() bool { return os.Getenv("HSMBRIDGE_DATA_PATH") != "grpc" }

// current returns a live connection, relaunching a plugin that exited.
func (b *Backend) current(ctx context.Context) (*sdk.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, core.Errorf(core.KindUnavailable, "backend %q is shut down", b.spec.Name)
	}
	if b.client != nil && !b.client.Exited() {
		return b.conn, nil
	}
	now := time.Now()
	if now.Sub(b.launched) >= healthyAfter {
		b.failures = 0 // it ran long enough: this exit starts afresh
	}
	if next := b.launched.Add(backoff(b.failures)); now.Before(next) {
		return nil, core.Errorf(core.KindUnavailable,
			"backend %q: plugin exited %d times in a row; restarting it in %s (see hsmhost's log)",
			b.spec.Name, b.failures+1, next.Sub(now).Round(time.Millisecond))
	}
	b.failures++
	b.log.Warn("plugin exited; restarting it", "restart", b.failures, "next_backoff", backoff(b.failures))
	if b.spec.Restarted != nil {
		b.spec.Restarted()
	}
	err := b.launch(ctx)
	b.launched = time.Now()
	if err != nil {
		return nil, err
	}
	return b.conn, nil
}

// backoff is the wait before the next launch after n relaunches in a row:
// none for the first, then backoffMin doubling up to backoffMax.
func backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := backoffMin
	for i := 1; i < n && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// call runs one operation and turns a transport failure into an error that
// says what happened to the plugin.
func call[T any](b *Backend, ctx context.Context, op func(context.Context, *sdk.Client) (T, error)) (T, error) {
	var zero T
	conn, err := b.current(ctx)
	if err != nil {
		return zero, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCallTime)
		defer cancel()
	}
	v, err := op(ctx, conn)
	// Only a broken connection may mean the plugin died; an "unavailable"
	// the plugin answered (a 503 from the service) is passed on at once.
	if err != nil && errors.Is(err, sdk.ErrTransport) && b.exitedWithin(exitNoticeTime) {
		return zero, core.Errorf(core.KindUnavailable,
			"backend %q: plugin exited during the request; it is restarted on the next request", b.spec.Name)
	}
	return v, err
}

// exitedWithin waits briefly for go-plugin to notice a process exit: the
// broken connection usually reaches the caller a moment before the exit does.
func (b *Backend) exitedWithin(d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		if b.Exited() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Exited reports whether the plugin process is gone.
func (b *Backend) Exited() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.client == nil || b.client.Exited()
}

// DataPath is how key operations reach the plugin: "socket" (the data
// path) or "grpc".
func (b *Backend) DataPath() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return ""
	}
	return b.conn.DataPath()
}

// Stats reads the counters the running plugin keeps of its own work; none
// while it is down (the next call restarts it, not a scrape).
func (b *Backend) Stats(ctx context.Context) ([]core.Counter, error) {
	b.mu.Lock()
	conn := b.conn
	up := b.client != nil && !b.client.Exited()
	b.mu.Unlock()
	if !up {
		return nil, nil
	}
	return conn.Stats(ctx)
}

// Name is the backend's name in the config.
func (b *Backend) Name() string { return b.spec.Name }

// Description is what the running plugin declared.
func (b *Backend) Description() core.BackendDescription {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return core.BackendDescription{Name: b.spec.Name}
	}
	return b.conn.Description()
}

// Close stops the plugin; later calls fail.
func (b *Backend) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.conn != nil {
		b.conn.Close()
	}
	if b.client != nil {
		b.client.Kill()
	}
}

// PID is the plugin's process id, for tests and diagnostics (0 if none).
func (b *Backend) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client == nil || b.client.ReattachConfig() == nil {
		return 0
	}
	return b.client.ReattachConfig().Pid
}

func (b *Backend) String() string { return fmt.Sprintf("backend %q (%s)", b.spec.Name, b.spec.Command) }
