package mhsmstandin

import (
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
	// token is accepted (a bad token can then not be tested).
	ValidTokens []string
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
	ByStatus    map[int]int64 `json:"by_status"`   // answers by status code
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
	tokens map[string]bool

	injMu sync.Mutex
	inj   Inject

	statMu   sync.Mutex
	requests int64
	byStatus map[int]int64
	conns    atomic.Int64

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
		tokens:   map[string]bool{},
		inj:      opts.Inject,
		byStatus: map[int]int64{},
	}
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
		s.tokens[t] = true
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
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
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

// AddToken accepts one more bearer token.
func (s *Server) AddToken(tok string) {
	s.tokMu.Lock()
	s.tokens[tok] = true
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
	return s.tokens[tok]
}

// Stats returns a copy of the request counters.
func (s *Server) Stats() Stats {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	st := Stats{Requests: s.requests, Connections: s.conns.Load(), ByStatus: map[int]int64{}}
	for k, v := range s.byStatus {
		st.ByStatus[k] = v
	}
	st.Challenges = st.ByStatus[http.StatusUnauthorized]
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
// routing.
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, adminPrefix) {
		s.serveAdmin(rw, r)
		return
	}
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	defer func() {
		s.statMu.Lock()
		s.requests++
		s.byStatus[w.status]++
		s.statMu.Unlock()
		if s.opts.Logf != nil {
			s.opts.Logf("%s %s %d %s", r.Method, r.URL.RequestURI(), w.status, time.Since(start).Round(time.Microsecond))
		}
	}()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	s.setServiceHeaders(w)

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

	switch kind, inj := s.pickFault(); kind {
	case faultExpireToken:
		s.challenge(w, true)
		return
	case faultDeny:
		writeError(w, http.StatusForbidden, "Forbidden", denyMessage(r), "AccessDenied")
		return
	case faultThrottle:
		if inj.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(inj.RetryAfter.Seconds()))))
		}
		writeError(w, http.StatusTooManyRequests, "Throttled", "Request was not processed because too many requests were received. Retry the request later.", "")
		return
	case faultServerError:
		status := inj.ServerErrorStatus
		if status < 500 || status > 599 {
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

	s.route(w, r, body)
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
