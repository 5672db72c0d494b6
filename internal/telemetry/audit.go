// Package telemetry is what hsmhost tells its operators: the audit trail of
// key operations (audit.go) and the Prometheus metrics (metrics.go). Both
// are hostsvc.Observers, told of every finished key operation on the
// request's own goroutine, so both are written to cost a request next to
// nothing.
//
// The audit trail is one log line per operation, "key operation", at info
// level, with the canonical reference, the operation, its algorithm, the
// result (ok or the error kind), the size of what came back and the
// latency, plus the backend and the caller. It never holds data: the
// service reports sizes, not digests, plaintexts or keys, and error
// messages (which come from backends) stay out of it; only the kind is
// written. A process-wide token bucket bounds it (audit_rate lines per
// second, one second's worth in a burst): beyond that, lines are counted
// instead of written, and one "audit lines suppressed" line a second later
// says how many. So a busy host pays for at most audit_rate log writes a
// second, and a suppressed line costs a lock and a clock reading. The lines
// are written by a goroutine of their own from a small queue (a line
// costs hclog a few microseconds, and stderr may be a pipe that blocks), so
// no answer waits for the log; a line the queue has no room for is counted
// as suppressed too.
//
// The metrics keep one counter child per (backend, operation, algorithm,
// result) and one histogram child per (backend, operation), resolved once
// and then found in a map whose key is a struct of the strings the report
// already holds: an operation costs a read lock, a map lookup, an atomic
// add and a histogram observation (a bucket search and two atomic adds),
// and allocates nothing. Connections, sessions and suppressed audit lines
// are read only when /metrics is scraped.
package telemetry

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
)

// AuditMessage is the text of every audit line.
const AuditMessage = "key operation"

// SuppressedMessage is the text of the line that counts the audit lines
// the rate limit dropped.
const SuppressedMessage = "audit lines suppressed"

// summaryDelay is how long after the first dropped line its summary comes
// (and so the most often summaries come).
const summaryDelay = time.Second

// queueLength bounds the lines waiting for the writer: more than a
// second's worth at the default rate.
const queueLength = 256

// Audit writes the audit trail. Its methods are safe for concurrent use.
type Audit struct {
	log hclog.Logger
	now func() time.Time // for tests

	mu      sync.Mutex
	enabled bool
	rate    int     // lines per second; 0: no limit
	tokens  float64 // of the bucket, at most rate
	last    time.Time
	dropped int         // since the last summary
	timer   *time.Timer // the pending summary, nil if none
	closed  bool
	queue   chan hostsvc.KeyOp // closed by Close, under mu

	pending    atomic.Int64  // lines queued and not yet written
	written    chan struct{} // closed when the writer has ended
	suppressed atomic.Uint64 // since start, for the metrics
}

// NewAudit returns an audit trail that writes to log; rate is the most
// lines a second (0: no limit), enabled false writes none.
func NewAudit(log hclog.Logger, enabled bool, rate int) *Audit {
	a := newAudit(log, time.Now)
	a.Set(enabled, rate)
	return a
}

func newAudit(log hclog.Logger, now func() time.Time) *Audit {
	a := &Audit{log: log, now: now, queue: make(chan hostsvc.KeyOp, queueLength), written: make(chan struct{})}
	go a.writer()
	return a
}

// Set changes whether the trail is written and its rate (at a reload).
func (a *Audit) Set(enabled bool, rate int) {
	rate = max(rate, 0)
	a.mu.Lock()
	defer a.mu.Unlock()
	if rate != a.rate || a.last.IsZero() {
		a.tokens, a.last = float64(rate), a.now()
	}
	a.enabled, a.rate = enabled, rate
}

// KeyOperation queues ev's line, unless the rate limit drops it.
func (a *Audit) KeyOperation(ev hostsvc.KeyOp) {
	if !a.log.IsInfo() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.enabled || a.closed {
		return
	}
	if !a.admit() {
		a.drop()
		return
	}
	a.pending.Add(1)
	select {
	case a.queue <- ev:
	default:
		a.pending.Add(-1)
		a.drop()
	}
}

// admit takes a token for one line. a.mu is held.
func (a *Audit) admit() bool {
	if a.rate == 0 {
		return true
	}
	now := a.now()
	a.tokens = min(float64(a.rate), a.tokens+now.Sub(a.last).Seconds()*float64(a.rate))
	a.last = now
	if a.tokens >= 1 {
		a.tokens--
		return true
	}
	return false
}

// drop counts a line not written and makes sure a summary will say so.
// a.mu is held.
func (a *Audit) drop() {
	a.dropped++
	a.suppressed.Add(1)
	if a.timer == nil {
		a.timer = time.AfterFunc(summaryDelay, a.summarize)
	}
}

// writer writes the queued lines until Close.
func (a *Audit) writer() {
	defer close(a.written)
	for ev := range a.queue {
		a.write(ev)
		a.pending.Add(-1)
	}
}

func (a *Audit) write(ev hostsvc.KeyOp) {
	result := "ok"
	if ev.Kind != "" {
		result = string(ev.Kind)
	}
	args := make([]any, 0, 20)
	args = append(args, "reference", ev.Reference, "op", string(ev.Op), "algorithm", ev.Algorithm,
		"result", result, "bytes", ev.Bytes, "latency_us", ev.Latency.Microseconds(), "backend", ev.Backend)
	if c := ev.Caller; c != nil && c.Known {
		args = append(args, "uid", c.UID, "pid", c.PID)
		if c.Exe != "" {
			args = append(args, "exe", c.Exe)
		}
	}
	a.log.Info(AuditMessage, args...)
}

// flush waits until no line is waiting to be written (for tests: under
// steady traffic that may never be).
func (a *Audit) flush() {
	for a.pending.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
}

// summarize writes how many lines were dropped since the last summary.
func (a *Audit) summarize() {
	a.mu.Lock()
	n, rate := a.dropped, a.rate
	a.dropped, a.timer = 0, nil
	a.mu.Unlock()
	if n > 0 {
		a.log.Warn(SuppressedMessage, "suppressed", n, "audit_rate", rate)
	}
}

// Suppressed is how many lines were dropped since start.
func (a *Audit) Suppressed() uint64 { return a.suppressed.Load() }

// Close writes the queued lines and the pending summary; later operations
// write nothing.
func (a *Audit) Close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.queue)
	}
	if a.timer != nil {
		a.timer.Stop()
	}
	a.mu.Unlock()
	<-a.written
	a.summarize()
}
