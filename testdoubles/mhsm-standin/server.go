package mhsmstandin

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTenant is the tenant named in the 401 challenge when Options.Tenant
// is empty.
const DefaultTenant = "00000000-0000-0000-0000-000000000000"

// DefaultResource is the challenge resource of the public cloud's Managed HSM.
const DefaultResource = "https://managedhsm.azure.net"

// SupportedAPIVersions are the api-version values accepted by default: the
// ones azkeys releases have sent to Managed HSM (the recordings show
// 7.3-preview, 7.4, 7.5-preview.1, 7.5 and 7.6; azkeys v1.5.0 sends
// 2025-07-01).
var SupportedAPIVersions = []string{"7.3-preview", "7.4", "7.5", "7.5-preview.1", "7.6", "2025-07-01", "2026-01-01-preview"}

// Options configure a Server. The zero value works: any bearer token is
// accepted, the default tenant and resource are announced.
type Options struct {
	// Tenant is the tenant ID in the challenge's authorization URL.
	Tenant string
	// Resource is the challenge's resource (default DefaultResource).
	Resource string
	// ValidTokens are the accepted bearer tokens. Empty means any non-empty
	// token is accepted (a bad token can then not be tested) until a token
	// is issued or added.
	ValidTokens []string
	// TokenLifetime is how long issued tokens (IssueToken, IdentityHandler)
	// are accepted (default DefaultTokenLifetime).
	TokenLifetime time.Duration
	// APIVersions overrides SupportedAPIVersions.
	APIVersions []string
	// HostNames are extra DNS names for the served certificate.
	HostNames []string
	// PageSize is the list page size when the request has no maxresults
	// (default 25, the service's maximum).
	PageSize int
	// PurgeOnDelete purges keys on DELETE instead of soft-deleting them, so
	// that a name can be re-created at once (the real HSM answers 409 until
	// the deleted key is purged).
	PurgeOnDelete bool
	// StateFile, if set, is loaded at New (when it exists) and rewritten
	// after every change. It holds private keys in clear: tests only.
	StateFile string
	// Inject sets the initial fault-injection switches.
	Inject Inject
	// Logf, if set, receives one line per request.
	Logf func(format string, args ...any)
}

// Stats are request counters, for tests and benchmarks.
type Stats struct {
	Requests    int64         `json:"requests"`    // key API requests (admin requests excluded)
	Connections int64         `json:"connections"` // TCP connections accepted (≈ TLS handshakes)
	Challenges  int64         `json:"challenges"`  // 401 answers
	ByStatus    map[int]int64 `json:"by_status"`   // answers by status code; 0: none (the client left first)
	Dropped     int64         `json:"dropped"`     // answers cut off (Drop)
	Late        int64         `json:"late"`        // answers given late (Late), whether or not the client still waited
	// Client calls (requests that carry an x-ms-client-request-id, see
	// Call): how many, how many tries beyond each call's first, the most
	// tries of one call, and per operation the calls carried out more than
	// once.
	Calls    int64            `json:"calls"`
	Retries  int64            `json:"retries"`
	MaxTries int              `json:"max_tries"`
	Repeated map[string]int64 `json:"repeated"`
	// TokensIssued counts the identity endpoint's tokens.
	TokensIssued int64 `json:"tokens_issued"`
}

// Server is the stand-in. It is an http.Handler; Start serves it over TLS.
type Server struct {
	opts     Options
	resource string
	tenant   string
	versions map[string]bool
	pageSize int

	caPEM  []byte
	cert   tls.Certificate
	pool   *x509.CertPool
	store  *store
	tokMu  sync.RWMutex
	tokens map[string]time.Time // accepted until then; zero: no expiry

	injMu         sync.Mutex
	inj           Inject
	outageEnd     time.Time     // zero: no outage
	outageChanged chan struct{} // closed (and replaced) at every SetInject

	statMu   sync.Mutex
	requests int64
	byStatus map[int]int64
	dropped  int64
	late     int64
	issued   int64
	conns    atomic.Int64

	callMu    sync.Mutex
	calls     map[string]*Call
	callOrder []string
	callCount int64
	retries   int64
	maxTries  int
	repeated  map[string]int64

	mu       sync.Mutex
	httpSrv  *http.Server
	listener net.Listener
	baseURL  string
}

// New makes a Server with a fresh CA and server certificate, and loads
// Options.StateFile if it exists. It does not listen; see Start.
func New(opts Options) (*Server, error) {
	s := &Server{
		opts:     opts,
		resource: opts.Resource,
		tenant:   opts.Tenant,
		versions: map[string]bool{},
		pageSize: opts.PageSize,
		tokens:   map[string]time.Time{},
		byStatus: map[int]int64{},
		calls:    map[string]*Call{},
		repeated: map[string]int64{},
	}
	s.setInjectLocked(opts.Inject)
	if s.resource == "" {
		s.resource = DefaultResource
	}
	if s.tenant == "" {
		s.tenant = DefaultTenant
	}
	if s.pageSize <= 0 || s.pageSize > maxPageSize {
		s.pageSize = maxPageSize
	}
	vs := opts.APIVersions
	if len(vs) == 0 {
		vs = SupportedAPIVersions
	}
	for _, v := range vs {
		s.versions[v] = true
	}
	for _, t := range opts.ValidTokens {
		s.tokens[t] = time.Time{}
	}
	var err error
	if s.caPEM, s.cert, err = newPKI(opts.HostNames); err != nil {
		return nil, err
	}
	s.pool = x509.NewCertPool()
	s.pool.AppendCertsFromPEM(s.caPEM)
	s.store = newStore()
	if opts.StateFile != "" {
		if err := s.store.load(opts.StateFile); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves HTTPS in the
// background. It returns the base URL, "https://<host>:<port>".
func (s *Server) Start(addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpSrv != nil {
		return "", errors.New("mhsmstandin: already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"},
		// During an outage a new connection's handshake waits too.
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			if !s.waitOutage(hi.Context()) {
				return nil, errors.New("mhsmstandin: handshake abandoned during an outage")
			}
			return nil, nil
		},
	}
	s.httpSrv = &http.Server{
		Handler:           s,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 30 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		},
	}
	s.listener = ln
	s.baseURL = "https://" + ln.Addr().String()
	srv := s.httpSrv
	go func() { _ = srv.Serve(tls.NewListener(ln, tlsCfg)) }()
	return s.baseURL, nil
}

// URL is the base URL returned by Start ("" before Start).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseURL
}

// Addr is the listening address ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// Close stops serving and closes open connections.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpSrv == nil {
		return nil
	}
	s.injMu.Lock()
	s.setInjectLocked(Inject{}) // lets held requests and handshakes go
	s.injMu.Unlock()
	err := s.httpSrv.Close()
	s.httpSrv = nil
	return err
}

// CAPEM is the PEM certificate of the stand-in's CA.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.caPEM...) }

// CertPool is a pool holding only the stand-in's CA.
func (s *Server) CertPool() *x509.CertPool { return s.pool.Clone() }

// Client returns an *http.Client that trusts the stand-in's CA (usable as
// azcore.ClientOptions.Transport). Requests to any host name whose port is
// the stand-in's own, or to "<name>.managedhsm.azure.net" without a port,
// are dialled to the stand-in's address, so both the loopback URL and a
// real-looking HSM URL work.
func (s *Server) Client() *http.Client {
	addr := s.Addr()
	_, port, _ := net.SplitHostPort(addr)
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		host, p, err := net.SplitHostPort(a)
		if err == nil && addr != "" && (p == port || (p == "443" && strings.HasSuffix(host, ".managedhsm.azure.net"))) {
			a = addr
		}
		return d.DialContext(ctx, network, a)
	}
	return &http.Client{Transport: tr}
}

// AddToken accepts one more bearer token, with no expiry.
func (s *Server) AddToken(tok string) {
	s.tokMu.Lock()
	s.tokens[tok] = time.Time{}
	s.tokMu.Unlock()
}

// RevokeToken stops accepting a bearer token (it is answered as expired).
func (s *Server) RevokeToken(tok string) {
	s.tokMu.Lock()
	delete(s.tokens, tok)
	s.tokMu.Unlock()
}

func (s *Server) tokenOK(tok string) bool {
	if tok == "" {
		return false
	}
	s.tokMu.RLock()
	defer s.tokMu.RUnlock()
	if len(s.opts.ValidTokens) == 0 && len(s.tokens) == 0 {
		return true
	}
	exp, ok := s.tokens[tok]
	return ok && (exp.IsZero() || time.Now().Before(exp))
}

// Stats returns a copy of the request counters.
func (s *Server) Stats() Stats {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	st := Stats{Requests: s.requests, Connections: s.conns.Load(), ByStatus: map[int]int64{},
		Dropped: s.dropped, Late: s.late, TokensIssued: s.issued, Repeated: map[string]int64{}}
	for k, v := range s.byStatus {
		st.ByStatus[k] = v
	}
	st.Challenges = st.ByStatus[http.StatusUnauthorized]
	s.callMu.Lock()
	st.Calls, st.Retries, st.MaxTries = s.callCount, s.retries, s.maxTries
	for k, v := range s.repeated {
		st.Repeated[k] = v
	}
	s.callMu.Unlock()
	return st
}

// statusWriter records the status for Stats and the log line.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		if !carriesRegion(code) {
			w.Header().Del("x-ms-keyvault-region")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// carriesRegion tells whether an answer with this status carries
// x-ms-keyvault-region: in the recordings every 200 and 204 does, and no
// 401 (challenge) or 404 (KeyNotFound) does. Other statuses are not
// recorded; they keep it.
func carriesRegion(code int) bool {
	return code != http.StatusUnauthorized && code != http.StatusNotFound
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP answers one request. The checks run in the order the service
// applies them: latency, authentication, injected faults, api-version, then
// routing. An outage holds the request before all of them.
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, adminPrefix) {
		s.serveAdmin(rw, r)
		return
	}
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	callID, callAt := r.Header.Get(headerClientRequestID), 0
	if callID != "" {
		callAt = s.beginCall(callID, opName(r.Method, splitPath(r.URL.Path)))
	}
	answer, executed := "", false // answer, when set, is what the call's record shows instead of the status
	defer func() {
		s.statMu.Lock()
		s.requests++
		s.byStatus[w.status]++
		s.statMu.Unlock()
		if callID != "" {
			if answer == "" {
				answer = "none"
				if w.status != 0 {
					answer = strconv.Itoa(w.status)
				}
			}
			s.endCall(callID, callAt, answer, executed)
		}
		if s.opts.Logf != nil {
			s.opts.Logf("%s %s %d %s", r.Method, r.URL.RequestURI(), w.status, time.Since(start).Round(time.Microsecond))
		}
	}()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	s.setServiceHeaders(w)

	if !s.waitOutage(r.Context()) {
		return
	}
	if d := s.latency(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	tok, hasTok := bearerToken(r)
	if !hasTok {
		s.challenge(w, false)
		return
	}
	if !s.tokenOK(tok) {
		s.challenge(w, true)
		return
	}

	kind, inj := s.pickFault()
	switch kind {
	case faultExpireToken:
		s.challenge(w, true)
		return
	case faultDeny:
		writeError(w, http.StatusForbidden, "Forbidden", denyMessage(r), "AccessDenied")
		return
	case faultThrottle, faultThrottleBare:
		if kind == faultThrottle && inj.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(inj.RetryAfter.Seconds()))))
		}
		writeError(w, http.StatusTooManyRequests, "Throttled", "Request was not processed because too many requests were received. Retry the request later.", "")
		return
	case faultServerError, faultInternalError:
		status := inj.ServerErrorStatus
		if kind == faultInternalError {
			status = http.StatusInternalServerError
		} else if status < 500 || status > 599 {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, serverErrorCode(status), "The service is temporarily unavailable. Retry the request later. (injected by mhsm-standin)", "")
		return
	}

	q := r.URL.Query()
	apiVersion := q.Get("api-version")
	switch {
	case apiVersion == "" && q.Get("$skiptoken") != "":
		// The service's nextLink carries no api-version (see the
		// ListKeyVersions recording); the skiptoken stands for it.
	case apiVersion == "":
		writeError(w, http.StatusBadRequest, "BadParameter", "The 'api-version' query parameter is required.", "")
		return
	case !s.versions[apiVersion]:
		writeError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("The specified version (%s) is not recognized. Consider using the latest supported version (2025-07-01).", apiVersion), "")
		return
	}

	executed = true
	switch kind {
	case faultDrop:
		answer = "cut"
		s.cutOff(rw, w, r, body)
	case faultLate:
		answer = "late"
		s.answerLate(w, r, body, inj.LateBy)
	default:
		s.route(w, r, body)
	}
}

// recorder holds an answer to send later, in part, or not at all. It starts
// with the service headers already set (routes read x-ms-request-id).
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder(w http.ResponseWriter) *recorder {
	return &recorder{header: w.Header().Clone()}
}

func (rec *recorder) Header() http.Header { return rec.header }

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.body.Write(b)
}

// send writes the status, the headers and the first n bytes of the body.
func (rec *recorder) send(w http.ResponseWriter, n int) {
	h := w.Header()
	clear(h)
	for k, v := range rec.header {
		h[k] = v
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes()[:n])
}

// cutOff carries the operation out, sends the status, the headers (with
// the full Content-Length) and half the body, and aborts the answer: the
// server then resets the HTTP/2 stream or closes the HTTP/1.1 connection.
func (s *Server) cutOff(rw http.ResponseWriter, w *statusWriter, r *http.Request, body []byte) {
	rec := newRecorder(w)
	s.route(rec, r, body)
	rec.send(w, rec.body.Len()/2)
	_ = http.NewResponseController(rw).Flush()
	s.statMu.Lock()
	s.dropped++
	s.statMu.Unlock()
	panic(http.ErrAbortHandler)
}

// answerLate carries the operation out after by and answers then, if the
// client still waits; a client that gave up does not stop the operation.
func (s *Server) answerLate(w *statusWriter, r *http.Request, body []byte, by time.Duration) {
	if by <= 0 {
		by = defaultLateBy
	}
	detached := r.Clone(context.WithoutCancel(r.Context()))
	rec := newRecorder(w)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(by)
		s.route(rec, detached, body)
		s.statMu.Lock()
		s.late++
		s.statMu.Unlock()
	}()
	select {
	case <-done:
		rec.send(w, rec.body.Len())
	case <-r.Context().Done():
	}
}

// setServiceHeaders adds the headers every Managed HSM answer carries.
func (s *Server) setServiceHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", "default-src 'self'")
	h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("x-ms-request-id", newActivityID())
	h.Set("x-ms-server-latency", "0")
	h.Set("x-ms-keyvault-region", "local") // dropped for 401/404: see carriesRegion
}

// challenge answers 401 with the Key Vault challenge. The first,
// token-less request gets an empty body (as recorded); a rejected token gets
// an error body as well, which the client shows the user.
func (s *Server) challenge(w http.ResponseWriter, rejected bool) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://login.microsoftonline.com/%s", resource="%s"`, s.tenant, s.resource))
	if !rejected {
		w.Header().Set("Content-Type", contentTypeJSON)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	writeError(w, http.StatusUnauthorized, "Unauthorized", "The bearer token is not valid: it has expired, was revoked, or was not issued for this HSM.", "")
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true // present but unusable: answered as a bad token
	}
	return strings.TrimSpace(tok), true
}

func serverErrorCode(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	case http.StatusBadGateway:
		return "BadGateway"
	case http.StatusGatewayTimeout:
		return "GatewayTimeout"
	}
	return "InternalServerError"
}

// denyMessage mimics Managed HSM's local-RBAC denial text.
func denyMessage(r *http.Request) string {
	action := "Microsoft.KeyVault/managedHsm/keys/read/action"
	if segs := splitPath(r.URL.Path); len(segs) >= 3 {
		if op, ok := keyOps[strings.ToLower(segs[len(segs)-1])]; ok {
			action = "Microsoft.KeyVault/managedHsm/keys/" + op.permission + "/action"
		}
	}
	return "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n" +
		"Action: '" + action + "'\r\nResource: '" + r.URL.Path + "'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\n" +
		"Hint: assign the 'Managed HSM Crypto User' role (injected by mhsm-standin).\r\n"
}

func newActivityID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ---- admin endpoint ----

const adminPrefix = "/_standin/"

// serveAdmin answers the unauthenticated control endpoints:
//
//	GET  /_standin/inject   current switches (JSON, see injectWire)
//	PUT  /_standin/inject   replace them (POST works too)
//	GET  /_standin/stats    Stats as JSON
//	GET  /_standin/calls    what was seen of each client call (see Call)
//	POST /_standin/tokens   {"add":[...],"revoke":[...]}
//	GET  /_standin/ca.pem   the CA certificate
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, adminPrefix) {
	case "inject":
		if r.Method == http.MethodPut || r.Method == http.MethodPost {
			var in injectWire
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
				http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
				return
			}
			s.SetInject(in.inject())
		}
		writeJSON(w, http.StatusOK, s.Injected().wire())
	case "stats":
		writeJSON(w, http.StatusOK, s.Stats())
	case "calls":
		writeJSON(w, http.StatusOK, s.Calls())
	case "tokens":
		var in struct{ Add, Revoke []string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		for _, t := range in.Add {
			s.AddToken(t)
		}
		for _, t := range in.Revoke {
			s.RevokeToken(t)
		}
		w.WriteHeader(http.StatusNoContent)
	case "ca.pem":
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.caPEM)
	default:
		http.NotFound(w, r)
	}
}
