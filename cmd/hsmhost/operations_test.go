package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostclient"
	"github.com/hsmbridge/hsmbridge/internal/telemetry"
	"github.com/hsmbridge/hsmbridge/internal/telemetry/telemetrytest"
)

// The operations side of hsmhost, on the real binary and the real
// simulator plugin: the audit trail, its rate limit, the metrics and the
// JSON log format.

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeConfig(t *testing.T, dir, src string) string {
	t.Helper()
	p := filepath.Join(dir, "hsmhost.hcl")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// stop ends hsmhost and waits for it, so that its log is complete.
func (h *host) stop() {
	h.t.Helper()
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.exited:
		h.exited <- err // for the cleanup
	case <-time.After(15 * time.Second):
		h.t.Fatal("hsmhost did not stop within 15s")
	}
}

// pluginPIDs are hsmhost's child processes: its plugins.
func (h *host) pluginPIDs() []int {
	// A task's children file lists only the children that thread forked;
	// Go forks from whichever thread runs, so read every thread's.
	pid := h.cmd.Process.Pid
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// jsonLines parses every line of the log as a JSON object.
func jsonLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

var ecdsaSHA256 = core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}

func TestMetricsCountSignaturesRestartsAndSessions(t *testing.T) {
	dir := shortTempDir(t)
	port := freePort(t)
	h := startHost(t, dir, "--config", writeConfig(t, dir, fmt.Sprintf("metrics_listen = \"127.0.0.1:%d\"\n", port)))
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	const ref = "managedhsm:MyHSM:metrics"
	h.mustCLI("key", "create", ref, "--kty", "EC", "--curve", "P-256", "--ops", "sign,verify")
	c, err := hostclient.Dial(h.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.HelloSession(ctx, "test", "metrics-test-process"); err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("count me"))
	signOK := []string{"backend=simulator", "op=sign", "algorithm=ecdsa-sha256", "result=ok"}
	signBad := []string{"backend=simulator", "op=sign", "algorithm=rsa-pss-sha256", "result=invalid_input"}
	latency := []string{"backend=simulator", "op=sign"}
	const ops, latencyName, restarts = "hsmbridge_key_operations_total", "hsmbridge_key_operation_duration_seconds", "hsmbridge_plugin_restarts_total"

	before := telemetrytest.Scrape(t, url)
	if !before.Has(restarts, "backend=simulator") || before.Value(restarts, "backend=simulator") != 0 {
		t.Fatalf("the simulator's restart counter is not there at 0")
	}
	const n = 7
	for range n {
		if _, _, err := c.Sign(ctx, ref, "", digest[:], ecdsaSHA256); err != nil {
			t.Fatal(err)
		}
	}
	pss := core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 32}
	if _, _, err := c.Sign(ctx, ref, "", digest[:], pss); core.KindOf(err) != core.KindInvalidInput {
		t.Fatalf("RSA-PSS with an EC key: %v", err)
	}
	after := telemetrytest.Scrape(t, url)
	if d := after.Value(ops, signOK...) - before.Value(ops, signOK...); d != n {
		t.Errorf("%s%v moved by %v for %d signatures", ops, signOK, d, n)
	}
	if d := after.Value(ops, signBad...) - before.Value(ops, signBad...); d != 1 {
		t.Errorf("%s%v moved by %v for one refused signature", ops, signBad, d)
	}
	if d := after.Count(latencyName, latency...) - before.Count(latencyName, latency...); d != n+1 {
		t.Errorf("%s%v counted %d observations for %d signatures", latencyName, latency, d, n+1)
	}
	if v := after.Value(ops, "backend=simulator", "op=create_key", "algorithm=EC", "result=ok"); v != 1 {
		t.Errorf("key creation counted %v times", v)
	}
	if v := after.Value("hsmbridge_client_sessions"); v != 1 {
		t.Errorf("%v application sessions, want 1 (the test's)", v)
	}
	if v := after.Value("hsmbridge_client_connections"); v != 1 {
		t.Errorf("%v client connections, want 1 (the test's)", v)
	}

	// A plugin that dies is relaunched, and counted.
	pids := h.pluginPIDs()
	if len(pids) != 1 {
		t.Fatalf("hsmhost has children %v, want one plugin", pids)
	}
	syscall.Kill(pids[0], syscall.SIGKILL)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, _, err := c.Sign(ctx, ref, "", digest[:], ecdsaSHA256)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no signature after the plugin was killed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := telemetrytest.Scrape(t, url).Value(restarts, "backend=simulator"); v != 1 {
		t.Errorf("%s = %v after one kill", restarts, v)
	}
	c.Close()
	deadline = time.Now().Add(5 * time.Second)
	for telemetrytest.Scrape(t, url).Value("hsmbridge_client_sessions") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the session is still counted after its connection closed")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The audit trail (text format) has a line for each signature.
	h.stop()
	log := h.log.String()
	lines := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "hsmhost.audit: key operation:") && strings.Contains(l, "op=sign") &&
			strings.Contains(l, "reference="+ref) && strings.Contains(l, "algorithm=ecdsa-sha256") && strings.Contains(l, "result=ok") {
			lines++
		}
	}
	if lines < n+1 {
		t.Errorf("%d audit lines of successful signatures, want at least %d:\n%s", lines, n+1, log)
	}
	if !strings.Contains(log, "serving metrics: address=127.0.0.1:"+strconv.Itoa(port)) {
		t.Errorf("the log does not say where the metrics are:\n%s", log)
	}
}

// --log-format json: every line hsmhost writes, the plugin's relayed ones
// included, is one JSON object; the audit line has its fields with their
// types.
func TestJSONLogFormat(t *testing.T) {
	dir := shortTempDir(t)
	h := startHost(t, dir, "--log-format", "json")
	const ref = "managedhsm:MyHSM:json"
	h.mustCLI("key", "create", ref, "--kty", "EC", "--curve", "P-256", "--ops", "sign,verify")
	c, err := hostclient.Dial(h.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	digest := sha256.Sum256([]byte("json"))
	k, err := c.GetKey(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	pinned := k.Reference
	sig, _, err := c.Sign(ctx, ref, k.ID.Version, digest[:], ecdsaSHA256)
	if err != nil {
		t.Fatal(err)
	}
	c.Sign(ctx, "managedhsm:MyHSM:absent", "", digest[:], ecdsaSHA256)
	// A killed plugin makes go-plugin and the relaunched plugin log too.
	for _, pid := range h.pluginPIDs() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, _, err := c.Sign(ctx, ref, k.ID.Version, digest[:], ecdsaSHA256); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no signature after the kill: %v", err)
		}
	}
	h.stop()

	lines := jsonLines(t, h.log.String())
	var audit, relayed []map[string]any
	for _, l := range lines {
		for _, k := range []string{"@timestamp", "@level", "@message", "@module"} {
			if _, ok := l[k]; !ok {
				t.Errorf("line without %s: %v", k, l)
			}
		}
		if l["@message"] == telemetry.AuditMessage {
			audit = append(audit, l)
		}
		// go-plugin relays a plugin's line under the backend's module,
		// with the plugin's own module and time.
		if m, _ := l["@module"].(string); strings.HasPrefix(m, "hsmhost.backend.simulator.") && l["plugin_module"] == "simulator" {
			relayed = append(relayed, l)
		}
	}
	if len(relayed) == 0 {
		t.Errorf("no line relayed from the plugin among %d", len(lines))
	}
	// create, sign, failed sign, the signatures the kill failed, sign
	if len(audit) < 4 || audit[len(audit)-1]["result"] != "ok" {
		t.Fatalf("%d audit lines, want create, sign, a failed sign, then signatures until one worked: %v", len(audit), audit)
	}
	for _, l := range audit[3 : len(audit)-1] {
		if l["result"] != "unavailable" {
			t.Errorf("a signature failed by the kill: %v", l)
		}
	}
	want := map[string]any{"@module": "hsmhost.audit", "@level": "info", "reference": pinned, "op": "sign",
		"algorithm": "ecdsa-sha256", "result": "ok", "bytes": float64(len(sig)), "backend": "simulator",
		"uid": float64(os.Getuid()), "pid": float64(os.Getpid())}
	for k, v := range want {
		if audit[1][k] != v {
			t.Errorf("audit %s = %#v, want %#v", k, audit[1][k], v)
		}
	}
	if us, ok := audit[1]["latency_us"].(float64); !ok || us <= 0 {
		t.Errorf("latency_us = %#v", audit[1]["latency_us"])
	}
	if exe, _ := audit[1]["exe"].(string); !filepath.IsAbs(exe) {
		t.Errorf("exe = %#v", audit[1]["exe"])
	}
	if audit[2]["result"] != "not_found" || audit[2]["reference"] != "managedhsm:MyHSM:absent" || audit[2]["bytes"] != 0.0 {
		t.Errorf("failed signature: %v", audit[2])
	}
}

// audit_rate bounds the lines; what it drops is counted in "audit lines
// suppressed" lines, so that written and suppressed add up to the
// operations.
func TestAuditRateLimitDropsAndCounts(t *testing.T) {
	dir := shortTempDir(t)
	h := startHost(t, dir, "--log-format", "json", "--config", writeConfig(t, dir, "audit_rate = 3\n"))
	const ref = "managedhsm:MyHSM:burst"
	h.mustCLI("key", "create", ref, "--kty", "EC", "--curve", "P-256", "--ops", "sign,verify")
	c, err := hostclient.Dial(h.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	digest := sha256.Sum256([]byte("burst"))
	const n = 40
	start := time.Now()
	for range n {
		if _, _, err := c.Sign(context.Background(), ref, "", digest[:], ecdsaSHA256); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	// The summary comes by itself a second after the first drop.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(h.log.String(), telemetry.SuppressedMessage) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q line 5 s after the burst:\n%s", telemetry.SuppressedMessage, h.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.stop()
	written, suppressed := 0, 0
	for _, l := range jsonLines(t, h.log.String()) {
		switch l["@message"] {
		case telemetry.AuditMessage:
			written++
		case telemetry.SuppressedMessage:
			suppressed += int(l["suppressed"].(float64))
			if l["audit_rate"] != 3.0 {
				t.Errorf("summary %v", l)
			}
		}
	}
	t.Logf("%d operations in %s: %d lines written, %d suppressed", n+1, took.Round(time.Millisecond), written, suppressed)
	if written+suppressed != n+1 {
		t.Errorf("%d written + %d suppressed != %d operations", written, suppressed, n+1)
	}
	if max := 3 + int(3*took.Seconds()) + 1; written > max {
		t.Errorf("%d lines written in %s at audit_rate 3 (at most %d)", written, took, max)
	}
}

// audit = false writes no audit line.
func TestAuditOff(t *testing.T) {
	dir := shortTempDir(t)
	h := startHost(t, dir, "--config", writeConfig(t, dir, "audit = false\n"))
	h.mustCLI("key", "create", "managedhsm:MyHSM:quiet", "--kty", "EC", "--curve", "P-256", "--ops", "sign,verify")
	h.stop()
	if strings.Contains(h.log.String(), telemetry.AuditMessage) {
		t.Fatalf("audit = false, yet:\n%s", h.log.String())
	}
}

func TestServeRefusesABadLogFormat(t *testing.T) {
	dir := shortTempDir(t)
	h := &host{t: t, dir: dir, socket: filepath.Join(dir, "run", "s.sock")}
	_, errOut, code := h.cli("serve", "--log-format", "xml")
	if code != 2 || !strings.Contains(errOut, `log format "xml" is not one of text, json`) {
		t.Fatalf("--log-format xml: exit %d: %q", code, errOut)
	}
	// A file that asks for a metrics port already taken is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := writeConfig(t, dir, "metrics_listen = \""+ln.Addr().String()+"\"\n")
	_, errOut, code = h.cli("serve", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "metrics_listen") || !strings.Contains(errOut, cfg) {
		t.Fatalf("metrics port taken: exit %d: %q", code, errOut)
	}
}
