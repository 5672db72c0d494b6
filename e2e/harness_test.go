// Package e2e drives hsmbridge the way users do: the real openssl CLI and
// nginx load the provider module from build/, which talks to a real hsmhost
// that runs the simulator as a go-plugin subprocess. Every cryptographic
// result is checked with OpenSSL's default provider alone.
//
// The tests need `make build` first. They skip when build/ is missing, except
// under `make test`, which sets HSMBRIDGE_REQUIRE_E2E=1 so a skip is a failure.
package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var (
	repoRoot   string
	buildDir   string
	hsmhostBin string
	modulesDir string
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	buildDir = filepath.Join(repoRoot, "build")
	// HSMBRIDGE_E2E_BUILD runs the tests on another build (a copy of build/
	// with some binaries rebuilt), leaving build/ to whoever else uses it.
	if d := os.Getenv("HSMBRIDGE_E2E_BUILD"); d != "" {
		buildDir = d
	}
	hsmhostBin = filepath.Join(buildDir, "bin", "hsmhost")
	modulesDir = filepath.Join(buildDir, "ossl-modules")
	os.Exit(m.Run())
}

func requireBuild(t *testing.T) {
	t.Helper()
	for _, p := range []string{hsmhostBin, filepath.Join(modulesDir, "hsmbridge.so"), filepath.Join(modulesDir, "akv_provider.so")} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("HSMBRIDGE_REQUIRE_E2E") != "" {
				t.Fatalf("%s is missing: run make build", p)
			}
			t.Skipf("%s is missing: run make build", p)
		}
	}
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("HSMBRIDGE_REQUIRE_E2E") != "" {
			t.Fatalf("%s is not installed (make deps installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// host is one hsmhost serving the embedded simulator from a temp state dir.
type host struct {
	t      *testing.T
	dir    string // working directory for the test's files
	socket string
	state  string
	cmd    *exec.Cmd
	log    *bytes.Buffer
	// What differs between the backends azihsm:// is routed to: the name of
	// the backend, the magic that starts its masked blobs and the offset of
	// their session flag (the core format's for the simulator, the emulated
	// device's own for the device backend), and whether its AES keys wrap
	// (the device's API has no AES key wrap).
	backend         string
	blobMagic       string
	blobSessionFlag int
	aesKeysWrap     bool
	// another starts a host on another instance of the same backend (a
	// device of its own), for blobs that must not open here.
	another func(t *testing.T) *host
	// modules is the provider build the test's processes load (modulesDir
	// unless a test picks another, e.g. the sanitized one); extraEnv is
	// added to their environment.
	modules  string
	extraEnv []string
}

// startHost runs `hsmhost serve` in the foreground, optionally with a config
// file, and waits for its socket.
func startHost(t *testing.T, config string) *host {
	t.Helper()
	return startHostWithEnv(t, config, nil)
}

// startHostWithEnv is startHost with variables (credentials) added to
// hsmhost's own environment only: the applications the test runs, which
// get h.env(), never see them.
func startHostWithEnv(t *testing.T, config string, hostEnv []string) *host {
	t.Helper()
	requireBuild(t)
	// Not t.TempDir(): its parent is private, and other users (nginx
	// workers) must be able to reach the socket's folder.
	dir, err := os.MkdirTemp("", "hsmbridge-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &host{t: t, dir: dir, socket: filepath.Join(dir, "run", "hsmhost.sock"), state: filepath.Join(dir, "state"), log: &bytes.Buffer{},
		backend: "simulator", blobMagic: "HSMBMASK", blobSessionFlag: 9, aesKeysWrap: true,
		another: func(t *testing.T) *host { return startHost(t, "") }}
	args := []string{"serve", "--log-level", "debug"}
	if config != "" {
		cfg := filepath.Join(dir, "hsmhost.hcl")
		if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", cfg)
	}
	h.cmd = exec.Command(hsmhostBin, args...)
	h.cmd.Env = append(h.env(), hostEnv...)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", h.socket); err == nil {
			c.Close()
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("hsmhost did not open %s within 15s; its log:\n%s", h.socket, h.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *host) stop() {
	if h.cmd.Process != nil {
		h.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { h.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			h.cmd.Process.Kill()
		}
	}
	if h.t.Failed() {
		h.t.Logf("hsmhost log:\n%s", h.log)
	}
}

// env is what every process of the test sees: our socket and state, the
// build's provider modules, no host autostart surprises, and no Azure
// credentials (only hsmhost may hold them).
func (h *host) env() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HSMBRIDGE_") && !strings.HasPrefix(kv, "OPENSSL_") && !strings.HasPrefix(kv, "AZURE_") {
			env = append(env, kv)
		}
	}
	return append(append(env,
		"HSMBRIDGE_SOCKET="+h.socket,
		"HSMBRIDGE_STATE_DIR="+h.state,
		"OPENSSL_MODULES="+h.modulesDir(),
	), h.extraEnv...)
}

func (h *host) modulesDir() string {
	if h.modules != "" {
		return h.modules
	}
	return modulesDir
}

// run runs a command in the test's directory and returns its output; it
// fails the test if the command fails.
func (h *host) run(stdin string, name string, args ...string) string {
	h.t.Helper()
	out, err := h.try(stdin, name, args...)
	if err != nil {
		h.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// try runs a command and returns its combined output and error.
func (h *host) try(stdin string, name string, args ...string) (string, error) {
	h.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = h.dir
	cmd.Env = h.env()
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		return out.String(), fmt.Errorf("timed out after 60s")
	}
}

func (h *host) hsmhost(args ...string) string {
	h.t.Helper()
	return h.run("", hsmhostBin, args...)
}

// shell runs a command line exactly as a user types it.
func (h *host) shell(line string) string {
	h.t.Helper()
	return h.run("", "sh", "-c", line)
}

func (h *host) path(name string) string { return filepath.Join(h.dir, name) }

func (h *host) write(name, content string) {
	h.t.Helper()
	if err := os.WriteFile(h.path(name), []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) read(name string) string {
	h.t.Helper()
	b, err := os.ReadFile(h.path(name))
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}
