package mhsmstandin

import (
	"math/rand/v2"
	"time"
)

// Fault says how often one kind of injected failure fires. Count fires it on
// the next Count authenticated requests (decreasing as it fires); Rate fires
// it on each request with that probability (0..1). Both may be set.
type Fault struct {
	Count int     `json:"count,omitempty"`
	Rate  float64 `json:"rate,omitempty"`
}

func (f Fault) active() bool { return f.Count > 0 || f.Rate > 0 }

// Inject holds the fault-injection switches. The zero value injects nothing.
type Inject struct {
	// Latency is added before every answer, authenticated or not, as a
	// network round trip to a distant region would.
	Latency time.Duration
	// Throttle answers 429 Throttled.
	Throttle Fault
	// RetryAfter, when > 0, adds "Retry-After: <seconds>" (rounded up) to the
	// 429 answers; when 0 they carry no Retry-After, as some real ones do.
	RetryAfter time.Duration
	// ServerError answers ServerErrorStatus (default 503).
	ServerError       Fault
	ServerErrorStatus int
	// ExpireToken answers 401 with the challenge to a request whose token is
	// valid, as the service does once a token has expired.
	ExpireToken Fault
	// Deny answers 403 Forbidden as an RBAC denial (no Managed HSM Crypto
	// User role) would.
	Deny Fault
}

// faultKind is what pickFault decided for one request.
type faultKind int

const (
	faultNone faultKind = iota
	faultExpireToken
	faultDeny
	faultThrottle
	faultServerError
)

// pickFault consumes counts under s.injMu, so concurrent requests never fire a
// counted fault more often than asked.
func (s *Server) pickFault() (faultKind, Inject) {
	s.injMu.Lock()
	defer s.injMu.Unlock()
	inj := s.inj
	try := func(f *Fault) bool {
		if f.Count > 0 {
			f.Count--
			return true
		}
		return f.Rate > 0 && rand.Float64() < f.Rate
	}
	switch {
	case try(&s.inj.ExpireToken):
		return faultExpireToken, inj
	case try(&s.inj.Deny):
		return faultDeny, inj
	case try(&s.inj.Throttle):
		return faultThrottle, inj
	case try(&s.inj.ServerError):
		return faultServerError, inj
	}
	return faultNone, inj
}

// SetInject replaces the fault-injection switches; it takes effect for the
// next request.
func (s *Server) SetInject(inj Inject) {
	s.injMu.Lock()
	s.inj = inj
	s.injMu.Unlock()
}

// Injected returns the current switches (with the counts left).
func (s *Server) Injected() Inject {
	s.injMu.Lock()
	defer s.injMu.Unlock()
	return s.inj
}

func (s *Server) latency() time.Duration {
	s.injMu.Lock()
	defer s.injMu.Unlock()
	return s.inj.Latency
}

// injectWire is the admin endpoint's JSON form of Inject: durations in
// milliseconds / seconds so that curl users need not know Go durations.
type injectWire struct {
	LatencyMS         float64 `json:"latency_ms"`
	Throttle          Fault   `json:"throttle"`
	RetryAfterS       float64 `json:"retry_after_s"`
	ServerError       Fault   `json:"server_error"`
	ServerErrorStatus int     `json:"server_error_status"`
	ExpireToken       Fault   `json:"expire_token"`
	Deny              Fault   `json:"deny"`
}

func (i Inject) wire() injectWire {
	return injectWire{
		LatencyMS:         float64(i.Latency) / float64(time.Millisecond),
		Throttle:          i.Throttle,
		RetryAfterS:       i.RetryAfter.Seconds(),
		ServerError:       i.ServerError,
		ServerErrorStatus: i.ServerErrorStatus,
		ExpireToken:       i.ExpireToken,
		Deny:              i.Deny,
	}
}

func (w injectWire) inject() Inject {
	return Inject{
		Latency:           time.Duration(w.LatencyMS * float64(time.Millisecond)),
		Throttle:          w.Throttle,
		RetryAfter:        time.Duration(w.RetryAfterS * float64(time.Second)),
		ServerError:       w.ServerError,
		ServerErrorStatus: w.ServerErrorStatus,
		ExpireToken:       w.ExpireToken,
		Deny:              w.Deny,
	}
}
