package mhsmstandin

import (
	"context"
	"math/rand/v2"
	"time"
)

// Fault says how often one kind of injected failure fires. Count fires it on
// the next Count authenticated requests (decreasing as it fires); Rate fires
// it on that fraction (0..1) of the authenticated requests. Both may be set.
type Fault struct {
	Count int     `json:"count,omitempty"`
	Rate  float64 `json:"rate,omitempty"`
}

func (f Fault) active() bool { return f.Count > 0 || f.Rate > 0 }

// Inject holds the fault-injection switches. The zero value injects nothing.
//
// Rates are fractions of all requests, drawn once per request, so that kinds
// do not shadow each other: with Throttle and Drop at 0.1 each, 10% of the
// requests are throttled and another 10% dropped (rates summing above 1
// leave the kinds listed last less than asked). Counts fire before rates, in
// the order of the fields below.
type Inject struct {
	// Latency is added before every answer, authenticated or not, as a
	// network round trip to a distant region would.
	Latency time.Duration
	// ExpireToken answers 401 with the challenge to a request whose token is
	// valid, as the service does once a token has expired.
	ExpireToken Fault
	// Deny answers 403 Forbidden as an RBAC denial (no Managed HSM Crypto
	// User role) would.
	Deny Fault
	// Throttle answers 429 Throttled.
	Throttle Fault
	// RetryAfter, when > 0, adds "Retry-After: <seconds>" (rounded up) to the
	// Throttle answers; when 0 they carry no Retry-After, as some real ones do.
	RetryAfter time.Duration
	// ThrottleBare answers 429 Throttled without Retry-After whatever
	// RetryAfter says, for a mix of both kinds of throttling.
	ThrottleBare Fault
	// ServerError answers ServerErrorStatus (default 503).
	ServerError       Fault
	ServerErrorStatus int
	// InternalError answers 500 InternalServerError, for a mix with
	// ServerError's status.
	InternalError Fault
	// Drop carries the operation out, then cuts its answer off after the
	// status, the headers and half the body: over HTTP/2 the stream is
	// reset, over HTTP/1.1 the connection is closed. The client cannot know
	// whether the operation happened; it did.
	Drop Fault
	// Late answers LateBy (default 10s) after the Latency. The operation is
	// carried out then even if the client has given up meanwhile, as the
	// service completes a request it has received.
	Late   Fault
	LateBy time.Duration
	// Outage, when > 0, stops the stand-in answering for that long from the
	// moment the switches are set: key requests are held without an answer
	// until it ends (or their client gives up) and the TLS handshakes of new
	// connections wait as long. The control endpoint (/_standin/) and the
	// identity endpoint keep answering. Injected reports what is left.
	Outage time.Duration
}

// defaultLateBy is Late's delay when LateBy is 0.
const defaultLateBy = 10 * time.Second

// faultKind is what pickFault decided for one request.
type faultKind int

const (
	faultNone faultKind = iota
	faultExpireToken
	faultDeny
	faultThrottle
	faultThrottleBare
	faultServerError
	faultInternalError
	faultDrop
	faultLate
)

// pickFault consumes counts under s.injMu, so concurrent requests never fire a
// counted fault more often than asked, then draws one number for the rates.
func (s *Server) pickFault() (faultKind, Inject) {
	s.injMu.Lock()
	defer s.injMu.Unlock()
	inj := s.inj
	kinds := [...]struct {
		kind  faultKind
		fault *Fault
	}{
		{faultExpireToken, &s.inj.ExpireToken},
		{faultDeny, &s.inj.Deny},
		{faultThrottle, &s.inj.Throttle},
		{faultThrottleBare, &s.inj.ThrottleBare},
		{faultServerError, &s.inj.ServerError},
		{faultInternalError, &s.inj.InternalError},
		{faultDrop, &s.inj.Drop},
		{faultLate, &s.inj.Late},
	}
	for _, k := range kinds {
		if k.fault.Count > 0 {
			k.fault.Count--
			return k.kind, inj
		}
	}
	r := rand.Float64()
	for _, k := range kinds {
		if r < k.fault.Rate {
			return k.kind, inj
		}
		r -= max(k.fault.Rate, 0)
	}
	return faultNone, inj
}

// SetInject replaces the fault-injection switches; it takes effect for the
// next request. An Outage starts now; switches without one end any outage.
func (s *Server) SetInject(inj Inject) {
	s.injMu.Lock()
	defer s.injMu.Unlock()
	s.setInjectLocked(inj)
}

func (s *Server) setInjectLocked(inj Inject) {
	s.inj = inj
	s.outageEnd = time.Time{}
	if inj.Outage > 0 {
		s.outageEnd = time.Now().Add(inj.Outage)
	}
	if s.outageChanged != nil {
		close(s.outageChanged) // wakes the requests an outage holds
	}
	s.outageChanged = make(chan struct{})
}

// Injected returns the current switches (with the counts and the outage
// left).
func (s *Server) Injected() Inject {
	s.injMu.Lock()
	defer s.injMu.Unlock()
	inj := s.inj
	inj.Outage = max(time.Until(s.outageEnd), 0)
	return inj
}

func (s *Server) latency() time.Duration {
	s.injMu.Lock()
	defer s.injMu.Unlock()
	return s.inj.Latency
}

// waitOutage returns once no outage lasts (true), or when ctx ends first
// (false).
func (s *Server) waitOutage(ctx context.Context) bool {
	for {
		s.injMu.Lock()
		end, changed := s.outageEnd, s.outageChanged
		s.injMu.Unlock()
		d := time.Until(end)
		if end.IsZero() || d <= 0 {
			return true
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-changed:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// injectWire is the admin endpoint's JSON form of Inject: durations in
// milliseconds / seconds so that curl users need not know Go durations.
type injectWire struct {
	LatencyMS         float64 `json:"latency_ms"`
	ExpireToken       Fault   `json:"expire_token"`
	Deny              Fault   `json:"deny"`
	Throttle          Fault   `json:"throttle"`
	RetryAfterS       float64 `json:"retry_after_s"`
	ThrottleBare      Fault   `json:"throttle_bare"`
	ServerError       Fault   `json:"server_error"`
	ServerErrorStatus int     `json:"server_error_status"`
	InternalError     Fault   `json:"internal_error"`
	Drop              Fault   `json:"drop"`
	Late              Fault   `json:"late"`
	LateByMS          float64 `json:"late_by_ms"`
	OutageMS          float64 `json:"outage_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fromMS(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

func (i Inject) wire() injectWire {
	return injectWire{
		LatencyMS:         ms(i.Latency),
		ExpireToken:       i.ExpireToken,
		Deny:              i.Deny,
		Throttle:          i.Throttle,
		RetryAfterS:       i.RetryAfter.Seconds(),
		ThrottleBare:      i.ThrottleBare,
		ServerError:       i.ServerError,
		ServerErrorStatus: i.ServerErrorStatus,
		InternalError:     i.InternalError,
		Drop:              i.Drop,
		Late:              i.Late,
		LateByMS:          ms(i.LateBy),
		OutageMS:          ms(i.Outage),
	}
}

func (w injectWire) inject() Inject {
	return Inject{
		Latency:           fromMS(w.LatencyMS),
		ExpireToken:       w.ExpireToken,
		Deny:              w.Deny,
		Throttle:          w.Throttle,
		RetryAfter:        time.Duration(w.RetryAfterS * float64(time.Second)),
		ThrottleBare:      w.ThrottleBare,
		ServerError:       w.ServerError,
		ServerErrorStatus: w.ServerErrorStatus,
		InternalError:     w.InternalError,
		Drop:              w.Drop,
		Late:              w.Late,
		LateBy:            fromMS(w.LateByMS),
		Outage:            fromMS(w.OutageMS),
	}
}
