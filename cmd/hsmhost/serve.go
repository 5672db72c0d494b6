package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmbridge/hsmbridge/internal/config"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
	"github.com/hsmbridge/hsmbridge/internal/pluginhost"
	"github.com/hsmbridge/hsmbridge/internal/socketserver"
	"github.com/hsmbridge/hsmbridge/internal/telemetry"
	"github.com/hsmbridge/hsmbridge/plugins/sdk"
	"github.com/hsmbridge/hsmbridge/plugins/simulator"
)

// shutdownGrace is how long running requests get to answer on SIGTERM.
const shutdownGrace = 10 * time.Second

func serve(args []string, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr, "hsmhost serve [--config FILE] [--log-level LEVEL] [--log-format text|json] [--socket PATH]")
	configFlag := fs.String("config", "", "configuration file (default $HSMBRIDGE_CONFIG, else "+config.DefaultPath+" if it exists, else the built-in simulator)")
	levelFlag := fs.String("log-level", "", "trace, debug, info, warn or error (default $HSMBRIDGE_LOG_LEVEL, else the config's log_level, else info)")
	formatFlag := fs.String("log-format", "", "text or json (default $HSMBRIDGE_LOG_FORMAT, else the config's log_format, else text)")
	socketFlag := fs.String("socket", "", "socket path (default $HSMBRIDGE_SOCKET, else the config's socket, else the per-user default)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("serve takes no arguments, got %q", pos)
	}

	cfg, _, err := config.Find(*configFlag)
	if err != nil {
		return err
	}
	fixedLevel := *levelFlag
	if fixedLevel == "" {
		fixedLevel = os.Getenv("HSMBRIDGE_LOG_LEVEL")
	}
	level := fixedLevel
	if level == "" {
		level = cfg.LogLevel
	}
	if level == "" {
		level = "info"
	}
	if hclog.LevelFromString(level) == hclog.NoLevel {
		return usagef("log level %q is not one of trace, debug, info, warn, error", level)
	}
	format := logFormat(*formatFlag, cfg)
	if format != "text" && format != "json" {
		return usagef("log format %q is not one of text, json", format)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "hsmhost", Level: hclog.LevelFromString(level), Output: stderr,
		JSONFormat: format == "json"})

	sockPath := config.SocketPath(*socketFlag, cfg)
	sock, err := socketserver.Prepare(socketserver.SocketConfig{Path: sockPath, Mode: cfg.SocketMode, Group: cfg.SocketGroup})
	if errors.Is(err, socketserver.ErrAlreadyRunning) {
		fmt.Fprintf(stderr, "hsmhost: already running on %s; nothing to do\n", sockPath)
		return nil
	}
	if err != nil {
		return err
	}
	access, err := hostsvc.NewAccess(cfg.Access)
	if err != nil {
		sock.Release()
		return err
	}
	oneProcessor()
	sdk.ProfileFromEnv("hsmhost")
	sdk.TrimWhenIdle(5 * time.Second)
	ctx := context.Background()
	audit := telemetry.NewAudit(log.Named("audit"), cfg.Audit, cfg.AuditRate)
	defer audit.Close()
	var metrics *telemetry.Metrics
	if cfg.MetricsListen != "" {
		metrics = telemetry.NewMetrics(hostVersion())
		metrics.WatchAudit(audit)
		ms, err := telemetry.Listen(cfg.MetricsListen, metrics.Handler(log.Named("metrics")), log.Named("metrics"))
		if err != nil {
			sock.Release()
			return fmt.Errorf("%w (%s)", err, cfg.Source)
		}
		defer func() {
			mctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ms.Close(mctx)
		}()
		log.Info("serving metrics", "address", ms.Addr(), "path", "/metrics")
	}
	backends, routes, err := startBackends(ctx, cfg, log, metrics)
	if err != nil {
		sock.Release()
		return err
	}
	svc, err := hostsvc.New(routes, backends, hostsvc.WithAccess(access))
	if err != nil {
		sock.Release()
		closeAll(backends)
		return err
	}
	if metrics != nil {
		svc.Observe(telemetry.Tee(audit, metrics))
	} else {
		svc.Observe(audit)
	}
	ln, err := sock.Listen()
	if err != nil {
		svc.Close()
		return err
	}
	perUID := cfg.MaxConnectionsPerUID
	if perUID == 0 {
		perUID = -1 // the file's 0 is "no limit"
	}
	srv := &socketserver.Server{Service: svc, Log: log.Named("socket"), HostVersion: hostVersion(),
		FrameTimeout: cfg.FrameTimeout, MaxConnsPerUID: perUID}
	if metrics != nil {
		metrics.WatchServer(srv.Stats)
		metrics.WatchBackends(svc.BackendStats)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving", "socket", sockPath, "config", cfg.Source, "backends", cfg.BackendNames(), "policies", access.Rules(), "version", hostVersion())

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	var reloading sync.Mutex
	var exitErr error
loop:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				go func() {
					reloading.Lock()
					defer reloading.Unlock()
					cfg = reload(ctx, *configFlag, cfg, sockPath, fixedLevel, svc, log, audit, metrics)
				}()
				continue
			}
			log.Info("stopping", "signal", sig.String())
			break loop
		case err := <-served:
			exitErr = fmt.Errorf("socket server stopped: %w", err)
			log.Error("socket server stopped", "error", err)
			break loop
		}
	}
	sctx, cancel := context.WithTimeout(ctx, shutdownGrace)
	defer cancel()
	srv.Shutdown(sctx)
	sock.Remove()
	reloading.Lock() // let a reload in progress finish before closing backends
	svc.Close()
	reloading.Unlock()
	log.Info("stopped")
	return exitErr
}

// reload reads the configuration again, starts its backends and swaps them
// in. On any error the running configuration stays as it is.
func reload(ctx context.Context, configFlag string, old *config.Config, sockPath, fixedLevel string, svc *hostsvc.Service, log hclog.Logger,
	audit *telemetry.Audit, metrics *telemetry.Metrics) *config.Config {
	cfg, _, err := config.Find(configFlag)
	if err == nil {
		var access *hostsvc.Access
		access, err = hostsvc.NewAccess(cfg.Access)
		if err == nil {
			var backends []hostsvc.Backend
			var routes []hostsvc.Route
			if backends, routes, err = startBackends(ctx, cfg, log, metrics); err == nil {
				// Routes, backends and policy change in one step.
				if err = svc.Swap(routes, backends, hostsvc.WithAccess(access)); err != nil {
					closeAll(backends)
				} else {
					if s := config.SocketPath("", cfg); cfg.Socket != "" && s != sockPath {
						log.Warn("the socket path changed in the configuration; it takes effect on restart", "serving", sockPath)
					}
					if cfg.SocketMode != old.SocketMode || cfg.SocketGroup != old.SocketGroup {
						log.Warn("socket_mode and socket_group take effect on restart")
					}
					if cfg.FrameTimeout != old.FrameTimeout || cfg.MaxConnectionsPerUID != old.MaxConnectionsPerUID {
						log.Warn("frame_timeout and max_connections_per_uid take effect on restart")
					}
					if cfg.LogFormat != old.LogFormat || cfg.MetricsListen != old.MetricsListen {
						log.Warn("log_format and metrics_listen take effect on restart")
					}
					if fixedLevel == "" && cfg.LogLevel != "" {
						log.SetLevel(hclog.LevelFromString(cfg.LogLevel))
					}
					audit.Set(cfg.Audit, cfg.AuditRate)
					log.Info("configuration reloaded", "config", cfg.Source, "backends", cfg.BackendNames(), "policies", access.Rules())
					return cfg
				}
			}
		}
	}
	log.Error("reload failed; keeping the running configuration", "error", err)
	return old
}

// startBackends launches every configured plugin; if one fails, those
// already started are stopped and the error names the backend.
// With metrics, each one's restarts are counted.
func startBackends(ctx context.Context, cfg *config.Config, log hclog.Logger, metrics *telemetry.Metrics) ([]hostsvc.Backend, []hostsvc.Route, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("finding hsmhost's own binary for built-in plugins: %w", err)
	}
	var started []hostsvc.Backend
	for _, b := range cfg.Backends {
		spec := backendSpec(b, exe, log)
		if metrics != nil {
			spec.Restarted = metrics.Backend(b.Name)
		}
		pb, err := pluginhost.Start(ctx, spec)
		if err != nil {
			closeAll(started)
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprintf("%q", b.Name)) {
				msg = fmt.Sprintf("backend %q: %s", b.Name, msg)
			}
			return nil, nil, fmt.Errorf("%s (configured at %s)", msg, b.Where)
		}
		started = append(started, pb)
	}
	var routes []hostsvc.Route
	for _, r := range cfg.Routes {
		routes = append(routes, hostsvc.Route{Prefix: r.Prefix, Backend: r.Backend})
	}
	return started, routes, nil
}

// backendSpec is how one configured backend's plugin is run: hsmhost
// itself for a built-in one, the environment the config passes it.
func backendSpec(b config.Backend, exe string, log hclog.Logger) pluginhost.Spec {
	spec := pluginhost.Spec{
		Name: b.Name, Command: b.Plugin, SHA256: b.SHA256,
		Settings: maps.Clone(b.Settings), Logger: log.Named("backend"),
	}
	if spec.Settings == nil {
		spec.Settings = map[string]string{}
	}
	// Plugins log at the host's level (--log-level and the file's
	// included), as JSON lines that hsmhost relays in its own format.
	spec.Env = append(spec.Env, "HSMBRIDGE_LOG_LEVEL="+log.GetLevel().String())
	if name, ok := b.Builtin(); ok {
		spec.Command, spec.Args = exe, []string{"plugin", name}
		// The plugin does not see hsmhost's environment, so the host
		// resolves the simulator's default state directory for it.
		if name == "simulator" && spec.Settings[simulator.SettingStateDir] == "" {
			spec.Settings[simulator.SettingStateDir] = simulator.DefaultStateDir()
		}
	}
	for _, name := range b.PassEnv {
		if v, ok := os.LookupEnv(name); ok {
			spec.Env = append(spec.Env, name+"="+v)
		} else {
			log.Warn("pass_env names a variable that is not set", "backend", b.Name, "variable", name)
		}
	}
	return spec
}

func closeAll(bs []hostsvc.Backend) {
	for _, b := range bs {
		if c, ok := b.(interface{ Close() }); ok {
			c.Close()
		}
	}
}

// logFormat is the log format: --log-format, else $HSMBRIDGE_LOG_FORMAT,
// else the file's log_format, else text.
func logFormat(flag string, cfg *config.Config) string {
	for _, f := range []string{flag, os.Getenv("HSMBRIDGE_LOG_FORMAT"), cfg.LogFormat} {
		if f != "" {
			return strings.ToLower(f)
		}
	}
	return "text"
}

// oneProcessor runs hsmhost, and the plugins it starts, with GOMAXPROCS=1
// unless the environment sets GOMAXPROCS. Both are small daemons that mostly
// wait on sockets, and measured on 2 vCPUs (make bench) one processor halves
// the bridge's added latency: every hand-over between goroutines otherwise
// wakes a second thread. A backend whose work is pure-Go CPU (the
// simulator's P-256) then signs on one core; cgo calls (OpenSSL, the device
// library) still run in parallel. Set GOMAXPROCS to trade one for the other.
func oneProcessor() {
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		return
	}
	runtime.GOMAXPROCS(1)
	os.Setenv("GOMAXPROCS", "1") // what pluginhost passes to plugins
}
