package hsmkey_test

// The tests and the examples run against a real hsmhost serving the
// embedded simulator (a go-plugin subprocess), started here the way the e2e
// tests start it: its own socket and state in a temporary folder. The test
// process's HSMBRIDGE_SOCKET names that socket, so hsmkey.Open finds it by
// the default rule, as a user's program would.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/hsmkey"
	"github.com/hsmbridge/hsmbridge/internal/hostclient"
)

var (
	repoRoot string
	hostBin  string
	mainHost *testHost
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	tmp, err := os.MkdirTemp("", "hsmkey-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if hostBin, err = findHsmhost(tmp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if mainHost, err = startHost(filepath.Join(tmp, "main")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer mainHost.stop()
	os.Setenv("HSMBRIDGE_SOCKET", mainHost.socket)
	// The keys the examples name, made as `hsmhost key create` makes them.
	for _, args := range [][]string{
		{"managedhsm:MyHSM:myrsakey", "--kty", "RSA", "--size", "2048", "--ops", "sign,decrypt"},
		{"managedhsm:MyHSM:myeckey", "--kty", "EC", "--curve", "P-256", "--ops", "sign"},
	} {
		if out, err := mainHost.cli(append([]string{"key", "create"}, args...)...); err != nil {
			fmt.Fprintf(os.Stderr, "hsmhost key create %s: %v\n%s", strings.Join(args, " "), err, out)
			return 1
		}
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "hsmhost log:\n%s", mainHost.log.String())
	}
	return code
}

// findHsmhost is $HSMHOST, else build/bin/hsmhost (`make build`), else one
// built here from cmd/hsmhost.
func findHsmhost(tmp string) (string, error) {
	if p := os.Getenv("HSMHOST"); p != "" {
		return p, nil
	}
	if p := filepath.Join(repoRoot, "build", "bin", "hsmhost"); fileExists(p) {
		return p, nil
	}
	p := filepath.Join(tmp, "hsmhost")
	cmd := exec.Command(goTool(), "build", "-o", p, "./cmd/hsmhost")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building hsmhost: %v\n%s", err, out)
	}
	return p, nil
}

func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// syncBuffer is hsmhost's log, written by exec's copier while tests read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testHost is one `hsmhost serve` on the embedded simulator.
type testHost struct {
	dir, socket, state string
	cmd                *exec.Cmd
	log                *syncBuffer
}

func startHost(dir string) (*testHost, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	h := &testHost{dir: dir, socket: filepath.Join(dir, "run", "hsmhost.sock"), state: filepath.Join(dir, "state"), log: &syncBuffer{}}
	return h, h.start()
}

func (h *testHost) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HSMBRIDGE_") && !strings.HasPrefix(kv, "AZURE_") {
			env = append(env, kv)
		}
	}
	return append(env, "HSMBRIDGE_SOCKET="+h.socket, "HSMBRIDGE_STATE_DIR="+h.state)
}

func (h *testHost) start() error {
	h.cmd = exec.Command(hostBin, "serve", "--log-level", "debug")
	h.cmd.Env = h.env()
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", h.socket); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			h.stop()
			return fmt.Errorf("hsmhost did not open %s within 15s; its log:\n%s", h.socket, h.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends hsmhost as a service manager would (SIGINT, then SIGKILL).
func (h *testHost) stop() {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	h.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
	h.cmd = nil
}

// cli runs an hsmhost command against this host.
func (h *testHost) cli(args ...string) (string, error) {
	cmd := exec.Command(hostBin, args...)
	cmd.Env = h.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// keyNameChars is what a key name may not hold (letters, digits, hyphens).
var keyNameChars = regexp.MustCompile(`[^A-Za-z0-9-]+`)

var keySeq struct {
	sync.Mutex
	n int
}

// newKey creates a key of its own for one test in the main host and opens
// it through the default client.
func newKey(t testing.TB, spec core.KeySpec) hsmkey.Key {
	t.Helper()
	ref := createKey(t, mainHost, spec)
	k, err := hsmkey.Open(context.Background(), ref)
	if err != nil {
		t.Fatalf("Open(%s): %v", ref, err)
	}
	return k
}

// createKey makes a fresh key in h's backend and returns its reference.
func createKey(t testing.TB, h *testHost, spec core.KeySpec) string {
	t.Helper()
	keySeq.Lock()
	keySeq.n++
	name := keyNameChars.ReplaceAllString(t.Name(), "-")
	ref := fmt.Sprintf("managedhsm:Test:%.100s-%d", name, keySeq.n)
	keySeq.Unlock()
	if spec.Usages == nil {
		spec.Usages = []core.KeyUsage{core.UsageSign, core.UsageVerify}
		if spec.Type == core.KeyTypeRSA {
			spec.Usages = append(spec.Usages, core.UsageDecrypt, core.UsageEncrypt)
		}
	}
	c, err := hostclient.Dial(h.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Hello(ctx, "hsmkey-test"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateKey(ctx, ref, spec); err != nil {
		t.Fatalf("creating %s: %v", ref, err)
	}
	return ref
}

var (
	rsa2048 = core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048}
	rsa3072 = core.KeySpec{Type: core.KeyTypeRSA, Bits: 3072}
	ecP256  = core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256}
	ecP384  = core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP384}
	ecP521  = core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP521}
)
