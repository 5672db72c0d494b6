package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostclient"
	"github.com/hsmbridge/hsmbridge/plugins/sdk"
)

// gone reports whether pid has exited (a zombie nobody reaps counts: init
// in a container may never reap it).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...: comm may hold spaces, so cut at the last ')'.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

// waitGone waits up to d for every pid to exit and returns those still alive.
func waitGone(pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		var alive []int
		for _, p := range pids {
			if !gone(p) {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// children lists the processes whose parent is pid.
func children(t *testing.T, pid int) []int {
	t.Helper()
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, w := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(w); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// killLeftovers ends processes a failing test left behind (they are ours).
func killLeftovers(t *testing.T, pids *[]int) {
	t.Cleanup(func() {
		for _, p := range *pids {
			if !gone(p) {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
	})
}

// TestPluginGetsParentDeathSignal: the host starts every plugin with a
// parent-death signal, so the kernel ends it when hsmhost dies, SIGKILL
// included.
func TestPluginGetsParentDeathSignal(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parent-death signals are Linux only")
	}
	b := start(t, Spec{Name: "pdeath", Command: testPlugin})
	checks, err := b.Diagnose(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 1 || checks[0].Detail != strconv.Itoa(int(syscall.SIGKILL)) {
		t.Fatalf("plugin's parent-death signal: %+v, want %d (SIGKILL)", checks, syscall.SIGKILL)
	}
}

// TestPluginExitsWhenItsParentDies: the SDK's own check, without the
// host's parent-death signal. A shell starts the plugin and is killed; the
// orphaned plugin must notice and exit.
func TestPluginExitsWhenItsParentDies(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	sh := exec.Command("/bin/sh", "-c", `"$0" & echo $! > "$1"; wait`, testPlugin, pidFile)
	sh.Env = []string{
		sdk.Handshake.MagicCookieKey + "=" + sdk.Handshake.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=" + strconv.Itoa(int(sdk.Handshake.ProtocolVersion)),
		"TMPDIR=" + os.TempDir(),
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	pids := []int{}
	killLeftovers(t, &pids)
	for deadline := time.Now().Add(5 * time.Second); pid == 0; time.Sleep(10 * time.Millisecond) {
		if data, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(data), "\n") {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		if time.Now().After(deadline) {
			t.Fatal("the shell did not start the plugin")
		}
	}
	pids = append(pids, pid)
	time.Sleep(500 * time.Millisecond)
	if gone(pid) {
		t.Fatal("the plugin exited before its parent did (handshake refused?)")
	}
	sh.Process.Kill()
	sh.Wait()
	if alive := waitGone([]int{pid}, 2*time.Second); len(alive) > 0 {
		t.Fatalf("plugin %d still runs 2 s after its parent was killed", pid)
	}
}

// backoffAfter is the wait the tests expect before restart n+1 once n
// restarts have failed in a row: 100 ms doubling to 5 s.
func backoffAfter(n int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < n && d < 5*time.Second; i++ {
		d *= 2
	}
	return min(d, 5*time.Second)
}

func readLaunches(t *testing.T, path string) []time.Time {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, l := range strings.Fields(string(data)) {
		ns, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, time.Unix(0, ns))
	}
	return out
}

// TestCrashLoopBacksOffAndHealedPluginServesAgain: a plugin that exits at
// every start is relaunched with exponential backoff (bounded launches,
// spaced by the backoff, never given up on), and once it is fixed it serves
// again within the current backoff, not after a minute.
func TestCrashLoopBacksOffAndHealedPluginServesAgain(t *testing.T) {
	dir := t.TempDir()
	marker, launchLog := filepath.Join(dir, "crash"), filepath.Join(dir, "launches")
	var restarted atomic.Int32 // what the metrics count
	b := start(t, Spec{Name: "loop", Command: testPlugin,
		Env:       []string{"TESTPLUGIN_CRASH_MARKER=" + marker, "TESTPLUGIN_LAUNCH_LOG=" + launchLog},
		Restarted: func() { restarted.Add(1) }})
	signAndVerify(t, b)

	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(b.PID(), syscall.SIGKILL)
	for !b.Exited() {
		time.Sleep(5 * time.Millisecond)
	}
	const window = 4 * time.Second
	var lastErr error
	calls := 0
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		_, err := b.GetKey(context.Background(), core.KeyID{Name: "k"})
		if err == nil {
			t.Fatal("a plugin that exits at start served a request")
		}
		if !errors.Is(err, core.ErrUnavailable) {
			t.Fatalf("crash loop: %v", err)
		}
		lastErr = err
		calls++
	}
	launches := readLaunches(t, launchLog)
	restarts := launches[1:]
	t.Logf("%d calls, %d restarts in %s; last error: %v", calls, len(restarts), window, lastErr)
	if len(restarts) < 4 || len(restarts) > 8 {
		t.Errorf("%d restarts in %s of a crash loop, want 4..8 (100 ms doubling to 5 s)", len(restarts), window)
	}
	if n := int(restarted.Load()); n != len(restarts) {
		t.Errorf("Spec.Restarted was called %d times for %d relaunches", n, len(restarts))
	}
	for i := 1; i < len(restarts); i++ {
		gap, want := restarts[i].Sub(restarts[i-1]), backoffAfter(i)
		if gap < want*8/10-20*time.Millisecond {
			t.Errorf("restart %d came %s after the one before, want about %s", i+1, gap, want)
		}
	}

	healed := time.Now()
	os.Remove(marker)
	// The next launch is due one backoff after the last; a call after that
	// launches at once.
	dueBy := restarts[len(restarts)-1].Add(backoffAfter(len(restarts)))
	if dueBy.Before(healed) {
		dueBy = healed
	}
	dueBy = dueBy.Add(time.Second) // a launch takes time
	for {
		if _, err := b.GetKey(context.Background(), core.KeyID{Name: "k"}); err == nil {
			break
		} else if time.Now().After(dueBy) {
			t.Fatalf("healed plugin still refused %s after the fix (due by the current backoff): %v", time.Since(healed), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("serving again %s after the fix", time.Since(healed).Round(time.Millisecond))
	signAndVerify(t, b)
	if n := int(restarted.Load()); n != len(restarts)+1 {
		t.Errorf("Spec.Restarted was called %d times for %d relaunches", n, len(restarts)+1)
	}
}

var (
	hsmhostOnce sync.Once
	hsmhostBin  string
	hsmhostErr  error
)

// buildHsmhost builds cmd/hsmhost once for the tests that run a real host.
func buildHsmhost(t *testing.T) string {
	t.Helper()
	hsmhostOnce.Do(func() {
		hsmhostBin = filepath.Join(filepath.Dir(testPlugin), "hsmhost")
		out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", hsmhostBin,
			"github.com/hsmbridge/hsmbridge/cmd/hsmhost").CombinedOutput()
		if err != nil {
			hsmhostErr = fmt.Errorf("building hsmhost: %v\n%s", err, out)
		}
	})
	if hsmhostErr != nil {
		t.Fatal(hsmhostErr)
	}
	return hsmhostBin
}

type logSink struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// runHost starts `hsmhost serve` on socket, waits until a request through
// its backend succeeds, and returns the process.
func runHost(t *testing.T, bin, dir, config, socket string) (*exec.Cmd, *logSink) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--log-level", "debug")
	cmd.Env = append(os.Environ(), "HSMBRIDGE_SOCKET="+socket, "HSMBRIDGE_CONFIG="+config,
		"HSMBRIDGE_STATE_DIR="+filepath.Join(dir, "state"))
	log := &logSink{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("hsmhost log:\n%s", log)
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("hsmhost did not serve within 20 s")
		}
		c, err := hostclient.Dial(socket)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = c.GetKey(ctx, "managedhsm:n:k") // runs in the plugin; not found is fine
		cancel()
		c.Close()
		if err == nil || !errors.Is(err, core.ErrUnavailable) {
			return cmd, log
		}
	}
}

// TestPluginsEndWithTheirHost: SIGKILL hsmhost and its plugins end within
// 2 s, for the built-in simulator (hsmhost re-executed as `hsmhost plugin
// simulator`) and for a plugin binary; a new hsmhost then starts on the
// same socket and state and serves.
func TestPluginsEndWithTheirHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("finds plugins through /proc")
	}
	bin := buildHsmhost(t)
	for _, tc := range []struct{ name, config string }{
		{"builtin simulator", ""},
		{"plugin binary", fmt.Sprintf("backend \"t\" {\n  plugin = %q\n}\nroute {\n  prefix  = \"\"\n  backend = \"t\"\n}\n", testPlugin)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "hh") // socket paths must stay short
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			cfg := ""
			if tc.config != "" {
				cfg = filepath.Join(dir, "hsmhost.hcl")
				if err := os.WriteFile(cfg, []byte(tc.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			socket := filepath.Join(dir, "run", "hsmhost.sock")
			host, _ := runHost(t, bin, dir, cfg, socket)
			plugins := children(t, host.Process.Pid)
			if len(plugins) == 0 {
				t.Fatal("found no plugin process under hsmhost")
			}
			killLeftovers(t, &plugins)

			host.Process.Signal(syscall.SIGKILL)
			host.Wait()
			if alive := waitGone(plugins, 2*time.Second); len(alive) > 0 {
				t.Fatalf("plugins %v still run 2 s after hsmhost was killed", alive)
			}

			next, _ := runHost(t, bin, dir, cfg, socket)
			next.Process.Signal(syscall.SIGTERM)
			next.Wait()
		})
	}
}
