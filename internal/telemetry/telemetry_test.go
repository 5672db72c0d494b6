package telemetry

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
	"github.com/hsmbridge/hsmbridge/internal/socketserver"
	"github.com/hsmbridge/hsmbridge/internal/telemetry/telemetrytest"
)

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines parses every line as a JSON object; a line that is not one fails.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func withMessage(lines []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["@message"] == msg {
			out = append(out, l)
		}
	}
	return out
}

func jsonLogger(w *syncBuffer, level hclog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "hsmhost", Output: w, JSONFormat: true, Level: level})
}

var signOK = hostsvc.KeyOp{
	Reference: "managedhsm:MyHSM:web?version=v1", Backend: "mhsm", Op: core.OpSign, Algorithm: "ecdsa-sha256",
	Bytes: 71, Latency: 1234567 * time.Nanosecond,
	Caller: &hostsvc.Caller{Known: true, UID: 33, PID: 4242, Exe: "/usr/sbin/nginx"},
}

func TestAuditLineHasTheFields(t *testing.T) {
	var out syncBuffer
	a := NewAudit(jsonLogger(&out, hclog.Info).Named("audit"), true, 100)
	a.KeyOperation(signOK)
	failed := signOK
	failed.Kind, failed.Bytes, failed.Caller = core.KindPermissionDenied, 0, nil
	a.KeyOperation(failed)
	a.flush()
	lines := withMessage(out.lines(t), AuditMessage)
	if len(lines) != 2 {
		t.Fatalf("%d audit lines, want 2", len(lines))
	}
	want := map[string]any{
		"@level": "info", "@module": "hsmhost.audit", "reference": "managedhsm:MyHSM:web?version=v1", "op": "sign",
		"algorithm": "ecdsa-sha256", "result": "ok", "bytes": 71.0, "latency_us": 1234.0, "backend": "mhsm",
		"uid": 33.0, "pid": 4242.0, "exe": "/usr/sbin/nginx",
	}
	for k, v := range want {
		if lines[0][k] != v {
			t.Errorf("%s = %#v, want %#v (line %v)", k, lines[0][k], v, lines[0])
		}
	}
	if lines[1]["result"] != "permission_denied" || lines[1]["bytes"] != 0.0 || lines[1]["uid"] != nil {
		t.Errorf("refused operation: %v", lines[1])
	}
}

func TestAuditRateLimitDropsAndReports(t *testing.T) {
	var out syncBuffer
	now := time.Unix(1000, 0)
	a := newAudit(jsonLogger(&out, hclog.Info), func() time.Time { return now })
	a.Set(true, 5)
	for range 20 {
		a.KeyOperation(signOK)
	}
	a.flush()
	if n := len(withMessage(out.lines(t), AuditMessage)); n != 5 {
		t.Fatalf("a burst of 20 at audit_rate 5 wrote %d lines, want 5", n)
	}
	if a.Suppressed() != 15 {
		t.Fatalf("Suppressed() = %d, want 15", a.Suppressed())
	}
	// Half a second refills half the bucket.
	now = now.Add(500 * time.Millisecond)
	for range 5 {
		a.KeyOperation(signOK)
	}
	a.flush()
	if n := len(withMessage(out.lines(t), AuditMessage)); n != 7 {
		t.Fatalf("after 0.5 s: %d lines, want 7", n)
	}
	a.summarize() // what the timer does a second after the first drop
	sum := withMessage(out.lines(t), SuppressedMessage)
	if len(sum) != 1 || sum[0]["suppressed"] != 18.0 || sum[0]["audit_rate"] != 5.0 || sum[0]["@level"] != "warn" {
		t.Fatalf("summary lines %v, want one with suppressed 18", sum)
	}
	a.summarize()
	if n := len(withMessage(out.lines(t), SuppressedMessage)); n != 1 {
		t.Fatalf("a summary with nothing suppressed was written")
	}
	// No limit.
	a.Set(true, 0)
	for range 50 {
		a.KeyOperation(signOK)
	}
	a.flush()
	if n := len(withMessage(out.lines(t), AuditMessage)); n != 57 {
		t.Fatalf("audit_rate 0: %d lines, want 57", n)
	}
}

// The summary comes by itself a second after the first drop, without
// another operation, and Close writes one still pending.
func TestAuditSummaryComesOnItsOwn(t *testing.T) {
	var out syncBuffer
	a := NewAudit(jsonLogger(&out, hclog.Info), true, 1)
	for range 4 {
		a.KeyOperation(signOK)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(withMessage(out.lines(t), SuppressedMessage)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no summary 5 s after the drops")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := withMessage(out.lines(t), SuppressedMessage)[0]; s["suppressed"] != 3.0 {
		t.Fatalf("summary %v, want suppressed 3", s)
	}
	time.Sleep(50 * time.Millisecond) // the bucket has refilled a second after the drops
	a.KeyOperation(signOK)
	a.KeyOperation(signOK)
	a.Close()
	sums := withMessage(out.lines(t), SuppressedMessage)
	if len(sums) != 2 || sums[1]["suppressed"] != 1.0 {
		t.Fatalf("Close wrote %v", sums)
	}
	a.KeyOperation(signOK)
	if n := len(withMessage(out.lines(t), AuditMessage)); n != 2 {
		t.Fatalf("%d audit lines, want 2 (none after Close)", n)
	}
}

func TestAuditOffWritesNothing(t *testing.T) {
	var out syncBuffer
	a := NewAudit(jsonLogger(&out, hclog.Info), false, 1)
	quiet := NewAudit(jsonLogger(&out, hclog.Warn), true, 1)
	for range 10 {
		a.KeyOperation(signOK)
		quiet.KeyOperation(signOK)
	}
	a.flush()
	quiet.Close()
	if l := out.lines(t); len(l) != 0 || a.Suppressed()+quiet.Suppressed() != 0 {
		t.Fatalf("audit off or above info wrote %v, suppressed %d", l, a.Suppressed()+quiet.Suppressed())
	}
	a.Set(true, 1) // a reload turns it on
	a.KeyOperation(signOK)
	a.Close()
	if n := len(out.lines(t)); n != 1 {
		t.Fatalf("after Set(true): %d lines", n)
	}
}

// A queue with no room drops the line and counts it, rather than making
// the request wait for the log.
func TestAuditQueueFullDropsAndCounts(t *testing.T) {
	block := make(chan struct{})
	w := writerFunc(func(p []byte) (int, error) { <-block; return len(p), nil })
	a := NewAudit(hclog.New(&hclog.LoggerOptions{Output: w}), true, 0)
	n := queueLength + 50
	done := make(chan struct{})
	go func() {
		for range n {
			a.KeyOperation(signOK)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("KeyOperation blocked on a stuck log")
	}
	if got := a.Suppressed(); got < 49 || got > 50 { // the writer holds one line
		t.Fatalf("suppressed %d of %d with a queue of %d", got, n, queueLength)
	}
	close(block)
	a.Close()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func scrape(t *testing.T, m *Metrics) telemetrytest.Families {
	t.Helper()
	srv := httptest.NewServer(m.Handler(hclog.NewNullLogger()))
	defer srv.Close()
	return telemetrytest.Scrape(t, srv.URL+"/metrics")
}

func TestMetricsCountOperations(t *testing.T) {
	m := NewMetrics("test")
	a := NewAudit(hclog.New(&hclog.LoggerOptions{Output: io.Discard}), true, 1)
	m.WatchAudit(a)
	m.WatchServer(func() socketserver.Stats { return socketserver.Stats{Connections: 3, Sessions: 2, Refused: 7} })
	restarted := m.Backend("mhsm")
	for range 3 {
		m.KeyOperation(signOK)
	}
	failed := signOK
	failed.Kind = core.KindUnavailable
	m.KeyOperation(failed)
	refused := hostsvc.KeyOp{Reference: "managedhsm:X:k", Op: core.OpDecrypt, Algorithm: "rsa-oaep-sha256", Kind: core.KindPermissionDenied}
	m.KeyOperation(refused)
	odd := signOK
	odd.Kind = "made_up_by_a_plugin"
	m.KeyOperation(odd)
	restarted()
	a.KeyOperation(signOK)
	a.KeyOperation(signOK) // dropped

	f := scrape(t, m)
	ops := "hsmbridge_key_operations_total"
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"backend=mhsm", "op=sign", "algorithm=ecdsa-sha256", "result=ok"}, 3},
		{[]string{"backend=mhsm", "op=sign", "algorithm=ecdsa-sha256", "result=unavailable"}, 1},
		{[]string{"backend=mhsm", "op=sign", "algorithm=ecdsa-sha256", "result=internal"}, 1},
		{[]string{"backend=none", "op=decrypt", "algorithm=rsa-oaep-sha256", "result=permission_denied"}, 1},
	} {
		if got := f.Value(ops, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", ops, c.labels, got, c.want)
		}
	}
	if n := f.Count("hsmbridge_key_operation_duration_seconds", "backend=mhsm", "op=sign"); n != 5 {
		t.Errorf("sign latency count %d, want 5", n)
	}
	for name, want := range map[string]float64{
		"hsmbridge_plugin_restarts_total":            1,
		"hsmbridge_client_connections":               3,
		"hsmbridge_client_sessions":                  2,
		"hsmbridge_client_connections_refused_total": 7,
		"hsmbridge_audit_lines_suppressed_total":     1,
		"hsmbridge_build_info":                       1,
	} {
		if got := f.Value(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if !f.Has("go_goroutines") || !f.Has("process_resident_memory_bytes") {
		t.Error("no Go runtime or process metrics")
	}
	a.Close()
}

// Once its series exist, counting an operation allocates nothing.
func TestMetricsAllocateNothingPerOperation(t *testing.T) {
	m := NewMetrics("test")
	ev := signOK
	m.KeyOperation(ev)
	if n := testing.AllocsPerRun(1000, func() { m.KeyOperation(ev) }); n != 0 {
		t.Fatalf("KeyOperation allocates %v times per call", n)
	}
	// The audit trail's rate limit, for a line it drops, neither.
	a := NewAudit(hclog.New(&hclog.LoggerOptions{Output: &bytes.Buffer{}}), true, 1)
	a.KeyOperation(ev)
	a.KeyOperation(ev) // starts the summary timer
	if n := testing.AllocsPerRun(1000, func() { a.KeyOperation(ev) }); n != 0 {
		t.Fatalf("a dropped audit line allocates %v times", n)
	}
	a.Close()
}

func TestTee(t *testing.T) {
	if Tee() != nil || Tee(nil, nil) != nil {
		t.Fatal("Tee of nothing is not nil")
	}
	m := NewMetrics("test")
	if Tee(nil, m) != hostsvc.Observer(m) {
		t.Fatal("Tee of one is not that one")
	}
	m2 := NewMetrics("test")
	Tee(m, m2).KeyOperation(signOK)
	for _, x := range []*Metrics{m, m2} {
		if v := scrape(t, x).Value("hsmbridge_key_operations_total"); v != 1 {
			t.Fatalf("counted %v", v)
		}
	}
}

func TestMetricsListen(t *testing.T) {
	m := NewMetrics("test")
	s, err := Listen("127.0.0.1:0", m.Handler(hclog.NewNullLogger()), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	f := telemetrytest.Scrape(t, "http://"+s.Addr()+"/metrics")
	if f.Value("hsmbridge_build_info", "version=test") != 1 {
		t.Fatalf("build info missing")
	}
	if _, err := Listen(s.Addr(), m.Handler(hclog.NewNullLogger()), hclog.NewNullLogger()); err == nil || !strings.Contains(err.Error(), "metrics_listen") {
		t.Fatalf("a second listener on %s: %v", s.Addr(), err)
	}
	s.Close(t.Context())
}

// What one key operation costs each observer (go test -bench . -benchtime 100000x).
func BenchmarkMetricsKeyOperation(b *testing.B) {
	m := NewMetrics("bench")
	m.KeyOperation(signOK)
	b.ReportAllocs()
	for b.Loop() {
		m.KeyOperation(signOK)
	}
}

// The writer's cost of a line, off the request's path.
func BenchmarkAuditLineWritten(b *testing.B) {
	a := NewAudit(hclog.New(&hclog.LoggerOptions{Name: "hsmhost", Output: io.Discard}).Named("audit"), true, 0)
	b.ReportAllocs()
	for b.Loop() {
		a.write(signOK)
	}
	a.Close()
}

func BenchmarkAuditLineDropped(b *testing.B) {
	a := NewAudit(hclog.New(&hclog.LoggerOptions{Output: io.Discard}), true, 1)
	a.KeyOperation(signOK)
	b.ReportAllocs()
	for b.Loop() {
		a.KeyOperation(signOK)
	}
	a.Close()
}
