// Package mhsm is the hsmbridge backend for Azure Key Vault Managed HSM,
// built on the Azure SDK's azkeys client.
//
// A KeyID's Namespace is the HSM's name and maps to
// https://<hsm>.managedhsm.azure.net unless the endpoint setting says
// otherwise (sovereign clouds, private endpoints, the local stand-in).
//
// Design points, each answering a flaw of the seed's provider:
//
//   - One azkeys client per endpoint, made on first use and kept for the life
//     of the process. All clients share one http.Transport, so a host process
//     pays one TLS handshake per HSM (HTTP/2 multiplexes concurrent calls on
//     it), not one per operation.
//   - Tokens come from one credential: AZURE_CLI_ACCESS_TOKEN as a static
//     bearer token when set, else azidentity's DefaultAzureCredential chain.
//     azcore's bearer-token policy caches the token and refreshes it before it
//     expires (or after a 401), so N operations cost one token request per
//     token lifetime. The first call on a new client runs alone, so that a
//     burst of concurrent first calls does not fetch a token each.
//   - Throttling (429, with or without Retry-After), 5xx, lost connections
//     and try timeouts are retried by azcore's retry policy, with limits from
//     the settings, for the operations that change nothing in the HSM;
//     creating, importing and deleting keys are retried only where the
//     service cannot have carried them out (retry.go says why). Every call
//     carries an x-ms-client-request-id, the same on each of its tries.
//   - Signing and decryption need the key's type and size to check the
//     caller's input before the round trip. A pinned version's material never
//     changes, so its KeyInfo is cached; a cached answer that would refuse an
//     operation (disabled, key_ops) is fetched again before refusing, and the
//     service remains the judge of everything the cache lets through.
//   - Every service error becomes a core.Error whose message names the key,
//     the HSM and what to do: the missing role for a 403, the credential
//     for a 401, the endpoint for a network failure.
package mhsm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/ports"
)

// Name and Version are what the backend declares in its description.
const (
	Name    = "mhsm"
	Version = "0.1.0"
)

// Settings the backend accepts from the host's config.
const (
	// SettingEndpoint is the HSM's base URL. "{hsm}" in it is replaced by the
	// HSM name; without "{hsm}" every HSM name maps to this one URL.
	SettingEndpoint = "endpoint"
	// SettingCAFile names a PEM file of CA certificates trusted in addition
	// to the system's.
	SettingCAFile = "ca_file"
	// SettingConnectTo sends every connection to this host:port whatever
	// the URL's host, which still decides TLS server name and the
	// challenge check (like curl's --connect-to).
	SettingConnectTo = "connect_to"
	// SettingMaxRetries, SettingRetryDelay, SettingMaxRetryDelay and
	// SettingTryTimeout are azcore's retry options (durations as "800ms").
	SettingMaxRetries    = "max_retries"
	SettingRetryDelay    = "retry_delay"
	SettingMaxRetryDelay = "max_retry_delay"
	SettingTryTimeout    = "try_timeout"
	// SettingDisableChallengeResourceVerification turns off azkeys' check
	// that the 401 challenge's resource matches the URL's host; only for a
	// stand-in reached by an address that is not *.managedhsm.azure.net.
	SettingDisableChallengeResourceVerification = "disable_challenge_resource_verification"
	// SettingHSMs lists HSM names (comma-separated): ListKeys with no
	// namespace lists them, and Random draws from the first.
	SettingHSMs = "hsms"
	// SettingAPIVersion overrides the REST api-version azkeys sends.
	SettingAPIVersion = "api_version"
)

var knownSettings = []string{
	SettingEndpoint, SettingCAFile, SettingConnectTo, SettingMaxRetries, SettingRetryDelay,
	SettingMaxRetryDelay, SettingTryTimeout, SettingDisableChallengeResourceVerification,
	SettingHSMs, SettingAPIVersion,
}

// DefaultEndpoint is the public cloud's Managed HSM URL template.
const DefaultEndpoint = "https://{hsm}.managedhsm.azure.net"

// EnvStaticToken holds a bearer token used as is (the seed's fast path).
const EnvStaticToken = "AZURE_CLI_ACCESS_TOKEN"

// Defaults for retries: azcore's own wait up to a minute between tries,
// which an application waiting on a TLS handshake will not.
const (
	defaultMaxRetries    = 3
	defaultRetryDelay    = 200 * time.Millisecond
	defaultMaxRetryDelay = 10 * time.Second
)

type config struct {
	endpoint         string // template
	caFile           string
	connectTo        string
	retry            policy.RetryOptions
	disableChallenge bool
	hsms             []string
	apiVersion       string
}

func defaultConfig() config {
	return config{
		endpoint: DefaultEndpoint,
		retry: policy.RetryOptions{
			MaxRetries: defaultMaxRetries, RetryDelay: defaultRetryDelay, MaxRetryDelay: defaultMaxRetryDelay,
		},
	}
}

// Option adjusts New; the options are for tests, benchmarks and embedders.
type Option func(*Backend)

// WithCredential makes the backend use cred, described as name in error
// messages, instead of choosing one from the environment.
func WithCredential(cred azcore.TokenCredential, name string) Option {
	return func(b *Backend) {
		b.cred = &namedCredential{cred: cred, name: name, fix: "check the credential given to the backend"}
	}
}

// WithTransport sends every request through t (an *http.Client or a
// recording player); the ca_file and connect_to settings are then ignored.
func WithTransport(t policy.Transporter) Option {
	return func(b *Backend) { b.transportOverride = t }
}

// Backend is the Managed HSM backend. It is safe for concurrent use.
type Backend struct {
	transportOverride policy.Transporter

	mu      sync.RWMutex
	cfg     config
	cred    *namedCredential // nil until first needed (unless given)
	credErr error
	http    policy.Transporter
	clients map[string]*hsmClient // by endpoint URL
	seen    map[string]bool       // HSM names used, for ListKeys("")

	cacheMu sync.RWMutex
	cache   map[core.KeyID]core.KeyInfo // pinned versions only

	counts counts // for Stats
}

var (
	_ ports.KeyLookup     = (*Backend)(nil)
	_ ports.KeyWrapper    = (*Backend)(nil)
	_ ports.KeyLister     = (*Backend)(nil)
	_ ports.KeyGenerator  = (*Backend)(nil)
	_ ports.KeyImporter   = (*Backend)(nil)
	_ ports.KeyDeleter    = (*Backend)(nil)
	_ ports.Signer        = (*Backend)(nil)
	_ ports.Decrypter     = (*Backend)(nil)
	_ ports.RandomSource  = (*Backend)(nil)
	_ ports.Configurer    = (*Backend)(nil)
	_ ports.StatsReporter = (*Backend)(nil)
	_ ports.SchemeLister  = (*Backend)(nil)
)

// New returns a backend with default settings; Configure may change them
// before the first operation. It makes no network call.
func New(opts ...Option) *Backend {
	b := &Backend{cfg: defaultConfig(), clients: map[string]*hsmClient{}, seen: map[string]bool{},
		cache: map[core.KeyID]core.KeyInfo{}}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Description is what the backend declares (for contracttests.RunBackend).
func (b *Backend) Description() core.BackendDescription { return ports.Describe(Name, Version, b) }

// Configure applies the host's settings. Unknown settings are refused by
// name so that a misspelt one does not go unnoticed.
func (b *Backend) Configure(ctx context.Context, settings map[string]string) error {
	cfg, err := parseSettings(settings)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cfg = cfg
	b.http = nil
	b.clients = map[string]*hsmClient{}
	return nil
}

func parseSettings(settings map[string]string) (config, error) {
	cfg := defaultConfig()
	var unknown []string
	for k := range settings {
		if !slices.Contains(knownSettings, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return cfg, core.Errorf(core.KindInvalidInput, "mhsm: unknown setting(s) %s (known: %s)",
			strings.Join(unknown, ", "), strings.Join(knownSettings, ", "))
	}
	bad := func(k, format string, args ...any) error {
		return core.Errorf(core.KindInvalidInput, "mhsm: setting %s = %q: %s", k, settings[k], fmt.Sprintf(format, args...))
	}
	duration := func(k string, dst *time.Duration) error {
		v, ok := settings[k]
		if !ok {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return bad(k, "want a duration such as 500ms or 10s")
		}
		*dst = d
		return nil
	}
	if v, ok := settings[SettingEndpoint]; ok {
		u, err := url.Parse(strings.ReplaceAll(v, "{hsm}", "hsm"))
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return cfg, bad(SettingEndpoint, "want a base URL such as https://{hsm}.managedhsm.azure.net")
		}
		if u.Scheme != "https" {
			return cfg, bad(SettingEndpoint, "must be https: tokens are never sent in clear")
		}
		cfg.endpoint = strings.TrimSuffix(v, "/")
	}
	if v, ok := settings[SettingCAFile]; ok {
		if _, err := loadCAFile(v); err != nil {
			return cfg, bad(SettingCAFile, "%v", err)
		}
		cfg.caFile = v
	}
	if v, ok := settings[SettingConnectTo]; ok {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return cfg, bad(SettingConnectTo, "want host:port")
		}
		cfg.connectTo = v
	}
	if v, ok := settings[SettingMaxRetries]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 20 {
			return cfg, bad(SettingMaxRetries, "want a number from 0 to 20")
		}
		cfg.retry.MaxRetries = int32(n)
		if n == 0 {
			cfg.retry.MaxRetries = -1 // azcore reads 0 as "default"; -1 means one try
		}
	}
	if err := duration(SettingRetryDelay, &cfg.retry.RetryDelay); err != nil {
		return cfg, err
	}
	if err := duration(SettingMaxRetryDelay, &cfg.retry.MaxRetryDelay); err != nil {
		return cfg, err
	}
	if err := duration(SettingTryTimeout, &cfg.retry.TryTimeout); err != nil {
		return cfg, err
	}
	if v, ok := settings[SettingDisableChallengeResourceVerification]; ok {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return cfg, bad(SettingDisableChallengeResourceVerification, "want true or false")
		}
		cfg.disableChallenge = on
	}
	if v, ok := settings[SettingHSMs]; ok {
		for _, h := range strings.Split(v, ",") {
			h = strings.TrimSpace(h)
			if h == "" {
				continue
			}
			if !hsmNamePattern.MatchString(h) {
				return cfg, bad(SettingHSMs, "HSM name %q is not a valid host name label", h)
			}
			cfg.hsms = append(cfg.hsms, h)
		}
	}
	if v, ok := settings[SettingAPIVersion]; ok {
		if v == "" {
			return cfg, bad(SettingAPIVersion, "empty")
		}
		cfg.apiVersion = v
	}
	return cfg, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", path)
	}
	return pool, nil
}

var (
	// An HSM name becomes a DNS label.
	hsmNamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	// Key Vault key names.
	keyNamePattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,127}$`)
	versionPattern = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
)

func checkID(id core.KeyID, needName bool) error {
	if !hsmNamePattern.MatchString(id.Namespace) {
		return core.Errorf(core.KindInvalidReference, "mhsm: %q is not a Managed HSM name (letters, digits and hyphens)", id.Namespace)
	}
	if needName && !keyNamePattern.MatchString(id.Name) {
		return core.Errorf(core.KindInvalidReference, "mhsm: %q is not a Managed HSM key name (1-127 letters, digits and hyphens)", id.Name)
	}
	if id.Version != "" && !versionPattern.MatchString(id.Version) {
		return core.Errorf(core.KindInvalidReference, "mhsm: %q is not a key version", id.Version)
	}
	return nil
}

// hsmClient is one HSM endpoint's azkeys client.
type hsmClient struct {
	hsm      string // the name the client was first asked for
	endpoint string
	kc       *azkeys.Client
	cred     *namedCredential
	// gate lets the first call through alone until one has been
	// authenticated, so that concurrent first calls share one token. When
	// the call that went first gets no answer at all (an HSM down or out
	// of reach, a credential that gives no token), the calls that waited
	// behind it fail with its cause at once, instead of each taking its
	// own tries in turn.
	warm  atomic.Bool
	gate  chan struct{}
	round atomic.Pointer[gateRound] // the current gated call's
}

// gateRound is one call through the gate: done is closed when it ends,
// after failed is set if it got no answer.
type gateRound struct {
	done   chan struct{}
	failed error
}

func newGateRound() *gateRound { return &gateRound{done: make(chan struct{})} }

// queuedBehind is the error of a call that waited at the gate behind a
// call that got no answer.
type queuedBehind struct{ err error }

func (e *queuedBehind) Error() string { return "the call before it failed: " + e.err.Error() }
func (e *queuedBehind) Unwrap() error { return e.err }

// client returns the HSM's client, making it on first use.
func (b *Backend) client(hsm string) (*hsmClient, error) { return b.clientFor(hsm, true) }

// clientFor is client; remember says whether ListKeys("") should list hsm
// from now on.
func (b *Backend) clientFor(hsm string, remember bool) (*hsmClient, error) {
	b.mu.RLock()
	endpoint := strings.ReplaceAll(b.cfg.endpoint, "{hsm}", strings.ToLower(hsm))
	c := b.clients[endpoint]
	seen := b.seen[hsm] || !remember
	b.mu.RUnlock()
	if c != nil && seen {
		return c, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if remember {
		b.seen[hsm] = true
	}
	endpoint = strings.ReplaceAll(b.cfg.endpoint, "{hsm}", strings.ToLower(hsm))
	if c := b.clients[endpoint]; c != nil {
		return c, nil
	}
	cred, err := b.credentialLocked()
	if err != nil {
		return nil, err
	}
	transport, err := b.transportLocked()
	if err != nil {
		return nil, err
	}
	kc, err := azkeys.NewClient(endpoint, cred, &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport:  retryGuard{next: transport, counts: &b.counts},
			Retry:      b.cfg.retry,
			APIVersion: b.cfg.apiVersion,
			Telemetry:  policy.TelemetryOptions{ApplicationID: "hsmbridge"},
			// azkeys sends no x-ms-client-request-id of its own; with one,
			// a call and its retries can be told apart from other calls.
			PerCallPolicies: []policy.Policy{runtime.NewRequestIDPolicy()},
		},
		DisableChallengeResourceVerification: b.cfg.disableChallenge,
	})
	if err != nil {
		return nil, core.Errorf(core.KindInternal, "mhsm: client for %s: %w", endpoint, err)
	}
	c = &hsmClient{hsm: hsm, endpoint: endpoint, kc: kc, cred: cred, gate: make(chan struct{}, 1)}
	c.round.Store(newGateRound())
	b.clients[endpoint] = c
	return c, nil
}

// transportLocked builds the HTTP client all HSM clients share.
func (b *Backend) transportLocked() (policy.Transporter, error) {
	if b.transportOverride != nil {
		return b.transportOverride, nil
	}
	if b.http != nil {
		return b.http, nil
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if b.cfg.caFile != "" {
		pool, err := loadCAFile(b.cfg.caFile)
		if err != nil {
			return nil, core.Errorf(core.KindInvalidInput, "mhsm: setting %s: %v", SettingCAFile, err)
		}
		tlsConf.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	dial := dialer.DialContext
	if to := b.cfg.connectTo; to != "" {
		dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, to)
		}
	}
	tr := &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		DialContext:       dial,
		ForceAttemptHTTP2: true,
		// Many concurrent signers over HTTP/1.1 must keep their
		// connections: the default of 2 idle per host would close and
		// reopen (a new TLS handshake) under load.
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tlsConf,
	}
	b.http = &http.Client{Transport: tr}
	return b.http, nil
}

// call runs one request on c, alone if c has not yet been authenticated.
// A failure comes back as a *callError that says how many tries were made.
func (c *hsmClient) call(ctx context.Context, fn func(context.Context) error) error {
	ctx, tries := withTries(ctx)
	round, err := c.enter(ctx)
	if err != nil {
		return err
	}
	err = fn(ctx)
	var re *azcore.ResponseError
	answered := errors.As(err, &re)
	if err == nil || (answered && re.StatusCode != http.StatusUnauthorized) {
		c.warm.Store(true)
	}
	if round != nil {
		if err != nil && !answered && ctx.Err() == nil {
			round.failed = &callError{err: err, tries: int(tries.Load())}
		}
		c.round.Store(newGateRound())
		close(round.done)
		<-c.gate
	}
	if err != nil {
		return &callError{err: err, tries: int(tries.Load()), callerGone: ctx.Err() != nil}
	}
	return nil
}

// enter passes the gate: at once once c is warm; else it waits to hold the
// gate (its round is returned) or fails when the call holding it got no
// answer.
func (c *hsmClient) enter(ctx context.Context) (*gateRound, error) {
	for !c.warm.Load() {
		round := c.round.Load()
		select {
		case c.gate <- struct{}{}:
			if c.warm.Load() {
				<-c.gate
				return nil, nil
			}
			// The holder before replaced the round before it let go.
			return c.round.Load(), nil
		case <-round.done:
			if round.failed != nil {
				return nil, &callError{err: &queuedBehind{round.failed}}
			}
		case <-ctx.Done():
			return nil, &callError{err: ctx.Err(), callerGone: true}
		}
	}
	return nil, nil
}

// cached returns the cached KeyInfo of a pinned version.
func (b *Backend) cached(id core.KeyID) (core.KeyInfo, bool) {
	if id.Version == "" {
		return core.KeyInfo{}, false
	}
	b.cacheMu.RLock()
	defer b.cacheMu.RUnlock()
	info, ok := b.cache[id]
	return info, ok
}

const maxCached = 10000

// remember caches info and returns it, completed from the cache where the
// service says less than we knew.
func (b *Backend) remember(info core.KeyInfo) core.KeyInfo {
	b.cacheMu.Lock()
	defer b.cacheMu.Unlock()
	if len(b.cache) >= maxCached {
		clear(b.cache)
	}
	if old, ok := b.cache[info.ID]; ok && info.Type == core.KeyTypeOct && info.Bits == 0 {
		info.Bits = old.Bits // the service does not say an AES key's size
	}
	b.cache[info.ID] = info
	return info
}

func (b *Backend) forget(ns, name string) {
	b.cacheMu.Lock()
	defer b.cacheMu.Unlock()
	for id := range b.cache {
		if id.Namespace == ns && id.Name == name {
			delete(b.cache, id)
		}
	}
}
