package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The fault tests of issue 9, under nginx as TestNginxKeylessTLSAcrossForkedWorkers
// runs it (4 workers, key-reference files, an RSA 3072 and an EC P-256 key in
// the simulator): a bounded TLS load from Go clients while the plugin is
// SIGKILLed, while hsmhost is SIGKILLed and started again on the same socket
// and state, and while the plugin crash loops. Every handshake is fresh (no
// session resumption), so each one signs in an nginx worker through hsmhost.

// faultClients is the load's concurrency: at most this many handshakes are
// in flight at any moment.
const faultClients = 4

// A plugin SIGKILLed under load costs the handshakes whose signature was in
// flight, and serving resumes within 1 s of the kill: the next request
// relaunches the plugin at once (the first relaunch after a healthy run has
// no backoff).
func TestFaultPluginKilledUnderNginxLoad(t *testing.T) {
	h, n := faultNginx(t)
	old := pluginPID(t, h)
	l := startTLSLoad(t, n, 0)
	l.waitOK(t, 200, 20*time.Second)

	inFlight := l.inFlight.Load()
	killed := time.Now()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	all := l.stop()

	before, after := splitAt(all, killed)
	failed := failedAttempts(after)
	back, ok := firstOKStartedAfter(all, killed)
	if !ok {
		t.Fatalf("no handshake succeeded after the plugin was killed; failures: %s", attemptSummary(failed))
	}
	t.Logf("plugin %d SIGKILLed with %d handshakes in flight (%d done before, %d ok): %d of %d later handshakes failed, the last ending %v after the kill; serving again %v after the kill",
		old, inFlight, len(before), len(before)-len(failedAttempts(before)), len(failed), len(after), lastEnd(failed, killed), back.Round(time.Millisecond))
	if f := failedAttempts(before); len(f) > 0 {
		t.Errorf("%d handshakes failed before the kill: %s", len(f), attemptSummary(f))
	}
	// What fails is what was in flight (at most one per client) plus, per
	// client, one more that reached hsmhost before go-plugin noticed the
	// exit (the host waits up to 500 ms for that notice, then fails the
	// call): at most 2 per client, whatever the machine's speed.
	if len(failed) > 2*faultClients {
		t.Errorf("%d handshakes failed after the kill, want at most %d (2 per client); failures: %s", len(failed), 2*faultClients, attemptSummary(failed))
	}
	if back > time.Second {
		t.Errorf("serving again %v after the kill, want within 1s", back)
	}
	if late := failuresStartedAfter(failed, killed.Add(time.Second)); len(late) > 0 {
		t.Errorf("%d handshakes started more than 1s after the kill failed: %s", len(late), attemptSummary(late))
	}
	if p := pluginPID(t, h); p == old {
		t.Errorf("plugin pid %d unchanged after SIGKILL", p)
	}
}

// hsmhost SIGKILLed under load and started again on the same socket and
// state: the same nginx worker processes (no reload, no respawn) serve
// again within 1 s of the new host listening, and the old host's plugin
// does not outlive it.
//
// With autostart on (startNginx's openssl.cnf, the default), a worker's
// failed autostart opens its breaker for hsmbridge_retry_ms (1 s) and it
// probes again after that, so how soon it serves depends on where in that
// window the host comes back: a 500 ms outage ends mid-window (measured
// ~0.5 s to serve again); an outage that ends just after a failed probe
// costs up to retry_ms plus one probe (measured 1.056 s with a 1.0 s
// outage). The 1 s bound is asserted for the 500 ms outage only.
func TestFaultHostKilledAndRestartedUnderNginxLoad(t *testing.T) {
	h, n := faultNginx(t)
	workers := nginxWorkers(t, n)
	oldPlugin := pluginPID(t, h)
	l := startTLSLoad(t, n, 5*time.Millisecond)
	l.waitOK(t, 200, 20*time.Second)

	killed := time.Now()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()
	orphan := waitGone(oldPlugin, 2*time.Second)
	// Down long enough for every worker to find the host gone under load.
	const outage = 500 * time.Millisecond
	time.Sleep(outage)
	listening := relaunchHost(t, h)
	time.Sleep(2 * time.Second)
	all := l.stop()

	if orphan {
		t.Errorf("the killed host's plugin %d was still running 2s later", oldPlugin)
	}
	_, after := splitAt(all, killed)
	firstOK := map[int]time.Duration{} // worker pid -> first success after the new host listened
	var back time.Duration = -1
	for _, a := range after {
		if a.err != nil || a.start.Before(killed) {
			continue
		}
		d := a.end.Sub(listening)
		if back < 0 || d < back {
			back = d
		}
		if cur, seen := firstOK[a.pid]; !seen || d < cur {
			firstOK[a.pid] = d
		}
	}
	var per []string
	var slowest time.Duration
	for _, pid := range sortedKeys(firstOK) {
		per = append(per, fmt.Sprintf("%d:%v", pid, firstOK[pid].Round(time.Millisecond)))
		slowest = max(slowest, firstOK[pid])
	}
	t.Logf("hsmhost SIGKILLed, restarted after %v; the new host listening %v after the kill; %d handshakes failed meanwhile; first success %v after it listened, per worker %s",
		outage, listening.Sub(killed).Round(time.Millisecond), len(failedAttempts(after)), back.Round(time.Millisecond), strings.Join(per, " "))
	if back < 0 {
		t.Fatalf("no handshake succeeded after the restart; failures: %s", attemptSummary(failedAttempts(after)))
	}
	now := nginxWorkers(t, n)
	if !equalInts(workers, now) {
		t.Errorf("nginx workers changed: %v before, %v after", workers, now)
	}
	for pid := range firstOK {
		if !containsPID(workers, pid) {
			t.Errorf("handshake served by pid %d, not one of the original workers %v", pid, workers)
		}
	}
	if len(firstOK) != len(workers) {
		t.Errorf("%d of %d original workers served after the restart (%s)", len(firstOK), len(workers), strings.Join(per, " "))
	}
	if slowest > time.Second {
		t.Errorf("the last worker served again %v after the new host listened, want within 1s (%s)", slowest, strings.Join(per, " "))
	}
	if late := failuresStartedAfter(after, listening.Add(time.Second)); len(late) > 0 {
		t.Errorf("%d handshakes started more than 1s after the new host listened failed: %s", len(late), attemptSummary(late))
	}
}

// A plugin that dies each time it starts is relaunched with a backoff
// (100 ms doubling to 5 s), so a crash loop of a few seconds costs a handful
// of launches, not one per request; once it stops dying, it serves again
// within the backoff then current.
func TestFaultPluginCrashLoopUnderNginxLoad(t *testing.T) {
	h, n := faultNginx(t)
	l := startTLSLoad(t, n, 5*time.Millisecond)
	l.waitOK(t, 100, 20*time.Second)

	const loop = 8 * time.Second
	began := time.Now()
	seen := killPluginsFor(t, h, loop)
	healed := time.Now()
	// Give the longest backoff (5 s) and a launch time to pass.
	deadline := healed.Add(8 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := firstOKStartedAfter(l.snapshot(), healed); ok {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	all := l.stop()

	// The most launches the backoff allows within the loop: a relaunch
	// after k relaunches waits backoff(k) after the previous launch ended,
	// so even with instant launches they start at 0, 0, 0.1, 0.3, 0.7, 1.5,
	// 3.1, 6.3, 11.3 s... after the first kill.
	allowed := 0
	for at := time.Duration(0); at <= loop; at += faultBackoff(allowed) {
		allowed++
	}
	allowed++ // the healthy plugin killed first
	_, during := splitAt(all, began)
	loopFailed := failedAttempts(endedBefore(during, healed))
	back, ok := firstOKStartedAfter(all, healed)
	bound := faultBackoff(len(seen)-1) + time.Second // the wait then due, plus a launch and a handshake
	t.Logf("crash loop of %v: %d plugin processes killed (the backoff allows at most %d), %d handshakes failed during it; next backoff due %v; serving again %v after the killing stopped",
		loop, len(seen), allowed, len(loopFailed), faultBackoff(len(seen)-1), back.Round(time.Millisecond))
	if len(seen) < 4 {
		t.Errorf("only %d plugin processes seen in %v: the crash loop did not happen", len(seen), loop)
	}
	if len(seen) > allowed {
		t.Errorf("%d plugin launches in %v, want at most %d with a 100 ms doubling backoff", len(seen), loop, allowed)
	}
	if !ok {
		t.Fatalf("no handshake succeeded within 8s after the plugin stopped crashing")
	}
	if back > bound {
		t.Errorf("serving again %v after the plugin stopped crashing, want within %v (the backoff due then, %v, plus 1s)", back, bound, faultBackoff(len(seen)-1))
	}
	if late := failuresStartedAfter(all, healed.Add(bound)); len(late) > 0 {
		t.Errorf("%d handshakes started after %v failed: %s", len(late), bound, attemptSummary(late))
	}
	if p := pluginPID(t, h); containsPID(seen, p) {
		t.Errorf("the serving plugin %d is one that was killed", p)
	}
}

// faultBackoff is hsmhost's wait before a relaunch after n relaunches in a
// row (internal/pluginhost): none, then 100 ms doubling up to 5 s.
func faultBackoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := 100 * time.Millisecond
	for i := 1; i < n && d < 5*time.Second; i++ {
		d *= 2
	}
	return min(d, 5*time.Second)
}

// faultNginx is the nginx of TestNginxKeylessTLSAcrossForkedWorkers (its
// 200-handshake check included) on a simulator host of its own.
func faultNginx(t *testing.T) (*host, *nginxServer) {
	t.Helper()
	requireNginx(t)
	hostConfig, workerUser := nginxWorkerAccess(t)
	h := startHost(t, hostConfig)
	return h, nginxKeylessTLS(t, h, hostConfig, workerUser)
}

// relaunchHost starts hsmhost again exactly as the dead h.cmd was started
// (binary, arguments with its --config, environment with socket and state
// dir), makes it h's host (the cleanup stops it) and returns when its
// socket first accepted a connection.
func relaunchHost(t *testing.T, h *host) time.Time {
	t.Helper()
	old := h.cmd
	h.cmd = exec.Command(old.Path, old.Args[1:]...)
	h.cmd.Env = old.Env
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", h.socket); err == nil {
			c.Close()
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted hsmhost did not listen on %s within 15s:\n%s", h.socket, h.log)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// procChildren lists the live (not zombie) children of ppid from
// /proc/*/stat (this kernel may lack /proc/<pid>/task/<tid>/children).
func procChildren(ppid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if p, _ := strconv.Atoi(f[1]); p == ppid {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

// hostPlugins are h's host's children that run `hsmhost plugin ...`.
func hostPlugins(h *host) []int {
	var out []int
	for _, pid := range procChildren(h.cmd.Process.Pid) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if args := strings.Split(string(cmdline), "\x00"); len(args) > 1 && args[1] == "plugin" {
			out = append(out, pid)
		}
	}
	return out
}

// pluginPID is the pid of h's one plugin, waiting up to 5 s for it.
func pluginPID(t *testing.T, h *host) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := hostPlugins(h)
		if len(p) == 1 {
			return p[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("hsmhost %d has plugins %v, want exactly one", h.cmd.Process.Pid, p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nginxWorkers are the nginx master's worker processes.
func nginxWorkers(t *testing.T, n *nginxServer) []int {
	t.Helper()
	var out []int
	for _, pid := range procChildren(n.cmd.Process.Pid) {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "nginx" {
			out = append(out, pid)
		}
	}
	if len(out) != 4 {
		t.Fatalf("nginx master %d has workers %v, want 4", n.cmd.Process.Pid, out)
	}
	return out
}

// waitGone reports whether pid is still alive (and not a zombie) after d.
func waitGone(pid int, d time.Duration) (alive bool) {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && len(b) > i+2 && (b[i+2] == 'Z' || b[i+2] == 'X') {
			return false
		}
		if time.Now().After(deadline) {
			return true
		}
	}
}

// killPluginsFor SIGKILLs every plugin process of h's host as soon as it
// appears, for d, and returns the pids it killed in order.
func killPluginsFor(t *testing.T, h *host, d time.Duration) []int {
	t.Helper()
	var seen []int
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		for _, pid := range hostPlugins(h) {
			if containsPID(seen, pid) {
				continue // killed, not yet reaped
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
				seen = append(seen, pid)
			}
		}
		if len(seen) > 100 {
			t.Fatalf("more than 100 plugin launches in %v: no backoff", d)
		}
	}
	return seen
}

// tlsAttempt is one fresh handshake and GET against nginx.
type tlsAttempt struct {
	start, end time.Time
	name       string // the key's server
	pid        int    // the worker that answered
	err        error
}

// tlsLoad is faultClients Go TLS clients making fresh handshakes to
// 127.0.0.1, alternating the keys' servers and TLS 1.2 and 1.3, until
// stopped (bounded to 60 s and 200,000 attempts in all).
type tlsLoad struct {
	n         *nginxServer
	certs     map[string][]byte // key name -> its certificate's DER
	pauseFail time.Duration     // a client's pause after a failure
	inFlight  atomic.Int32
	total     atomic.Int64
	mu        sync.Mutex
	attempts  []tlsAttempt
	quit      chan struct{}
	wg        sync.WaitGroup
	once      sync.Once
}

func startTLSLoad(t *testing.T, n *nginxServer, pauseFail time.Duration) *tlsLoad {
	t.Helper()
	l := &tlsLoad{n: n, certs: map[string][]byte{}, pauseFail: pauseFail, quit: make(chan struct{})}
	var names []string
	for name := range n.ports {
		block, _ := pem.Decode([]byte(n.h.read(name + ".crt")))
		if block == nil {
			t.Fatalf("%s.crt is not PEM", name)
		}
		l.certs[name] = block.Bytes
		names = append(names, name)
	}
	sort.Strings(names)
	deadline := time.Now().Add(60 * time.Second)
	for c := 0; c < faultClients; c++ {
		l.wg.Add(1)
		go func(c int) {
			defer l.wg.Done()
			for i := c; time.Now().Before(deadline) && l.total.Add(1) <= 200000; i++ {
				select {
				case <-l.quit:
					return
				default:
				}
				name := names[i%len(names)]
				version := uint16(tls.VersionTLS13)
				if (i/len(names))%2 == 0 {
					version = tls.VersionTLS12
				}
				a := l.one(name, version)
				l.mu.Lock()
				l.attempts = append(l.attempts, a)
				l.mu.Unlock()
				if a.err != nil && l.pauseFail > 0 {
					time.Sleep(l.pauseFail)
				}
			}
		}(c)
	}
	t.Cleanup(func() { l.stop() })
	return l
}

// one makes one fresh TLS connection (no session cache, so a full
// handshake the server signs) and one GET. The certificates have only a
// CN, which Go's verifier refuses, so the leaf is compared with the
// expected certificate instead; Go checks the handshake signature against
// the leaf's key either way.
func (l *tlsLoad) one(name string, version uint16) tlsAttempt {
	l.inFlight.Add(1)
	defer l.inFlight.Add(-1)
	a := tlsAttempt{start: time.Now(), name: name}
	want := l.certs[name]
	cfg := &tls.Config{
		ServerName: "localhost", MinVersion: version, MaxVersion: version,
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return errors.New("server certificate is not " + name + ".crt")
			}
			return nil
		},
	}
	a.err = func() error {
		d := &net.Dialer{Timeout: 10 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", l.n.ports[name]), cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"); err != nil {
			return err
		}
		r := bufio.NewReader(conn)
		status, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.Contains(status, " 200 ") {
			return fmt.Errorf("status %q", strings.TrimSpace(status))
		}
		rest, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		_, body, _ := strings.Cut(string(rest), "\r\n\r\n")
		proto := "TLSv1.3"
		if version == tls.VersionTLS12 {
			proto = "TLSv1.2"
		}
		if w := fmt.Sprintf("ok %s %s pid=", name, proto); !strings.HasPrefix(body, w) {
			return fmt.Errorf("body %q does not start with %q", body, w)
		}
		a.pid, _ = strconv.Atoi(strings.TrimSpace(body[strings.Index(body, "pid=")+4:]))
		return nil
	}()
	a.end = time.Now()
	return a
}

func (l *tlsLoad) snapshot() []tlsAttempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]tlsAttempt(nil), l.attempts...)
}

// stop ends the load (idempotent) and returns every attempt.
func (l *tlsLoad) stop() []tlsAttempt {
	l.once.Do(func() {
		close(l.quit)
		l.wg.Wait()
	})
	return l.snapshot()
}

// waitOK waits for k successful handshakes and fails on any failure before.
func (l *tlsLoad) waitOK(t *testing.T, k int, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		all := l.snapshot()
		if f := failedAttempts(all); len(f) > 0 {
			t.Fatalf("%d handshakes failed before any fault: %s", len(f), attemptSummary(f))
		}
		if len(all) >= k {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d handshakes in %v", len(all), within)
		}
	}
}

// splitAt splits attempts into those that ended before t and the others.
func splitAt(all []tlsAttempt, t time.Time) (before, after []tlsAttempt) {
	for _, a := range all {
		if a.end.Before(t) {
			before = append(before, a)
		} else {
			after = append(after, a)
		}
	}
	return before, after
}

func endedBefore(all []tlsAttempt, t time.Time) []tlsAttempt {
	b, _ := splitAt(all, t)
	return b
}

func failedAttempts(all []tlsAttempt) []tlsAttempt {
	var out []tlsAttempt
	for _, a := range all {
		if a.err != nil {
			out = append(out, a)
		}
	}
	return out
}

func failuresStartedAfter(all []tlsAttempt, t time.Time) []tlsAttempt {
	var out []tlsAttempt
	for _, a := range failedAttempts(all) {
		if a.start.After(t) {
			out = append(out, a)
		}
	}
	return out
}

// firstOKStartedAfter is how long after t the first handshake begun after t
// succeeded.
func firstOKStartedAfter(all []tlsAttempt, t time.Time) (time.Duration, bool) {
	var best time.Duration = -1
	for _, a := range all {
		if a.err == nil && a.start.After(t) && (best < 0 || a.end.Sub(t) < best) {
			best = a.end.Sub(t)
		}
	}
	return best, best >= 0
}

func lastEnd(all []tlsAttempt, t time.Time) time.Duration {
	var last time.Duration
	for _, a := range all {
		last = max(last, a.end.Sub(t))
	}
	return last.Round(time.Millisecond)
}

// attemptSummary is the first few failures with their errors.
func attemptSummary(f []tlsAttempt) string {
	var s []string
	for i, a := range f {
		if i == 3 {
			s = append(s, fmt.Sprintf("... %d more", len(f)-i))
			break
		}
		s = append(s, fmt.Sprintf("[%s at %s: %v]", a.name, a.start.Format("15:04:05.000"), a.err))
	}
	return strings.Join(s, " ")
}

func sortedKeys(m map[int]time.Duration) []int {
	var k []int
	for p := range m {
		k = append(k, p)
	}
	sort.Ints(k)
	return k
}

func containsPID(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func equalInts(a, b []int) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}
