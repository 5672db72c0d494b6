// Package hostsvc is hsmhost's application service: it turns a key reference
// into a backend call.
//
// For every request it parses the reference, puts it in canonical form,
// checks the access policy for the request's caller (access.go), routes it
// by longest prefix to one backend, and checks that the backend declared
// the operation (and, for signing, the scheme) before calling it, so a
// backend is never asked for something it said it cannot do. Errors keep
// their core.ErrorKind and are rewritten into one sentence naming the
// canonical reference and the backend, which the OpenSSL front end shows as
// it is.
//
// The routing table, the backends it points at and the access policy are
// swapped as one value: a reload builds a complete new table, swaps it in,
// waits for the calls still using the old one and only then closes the old
// backends.
package hostsvc

import (
	"bytes"
	"context"
	_ "crypto/sha1" // message hashes: checkMessage
	_ "crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/ports"
)

// Backend is what the service routes to: a ports implementation (usually a
// plugin client) that declares what it supports.
type Backend interface {
	ports.KeyLookup
	Name() string
	Description() core.BackendDescription
}

// TimedSigner is implemented by backends that report the time the plugin
// itself spent signing.
type TimedSigner interface {
	SignTimed(ctx context.Context, id core.KeyID, digest []byte, s core.SignatureScheme) ([]byte, uint64, error)
}

// TimedDecrypter is TimedSigner's counterpart for decryption.
type TimedDecrypter interface {
	DecryptTimed(ctx context.Context, id core.KeyID, ciphertext []byte, s core.EncryptionScheme) ([]byte, uint64, error)
}

// Route sends canonical references starting with Prefix to Backend.
type Route struct {
	Prefix  string
	Backend string
}

// Key is a key as the host reports it.
type Key struct {
	Reference string // canonical, pinned to the resolved version
	Backend   string
	core.KeyInfo
}

// MaxRandom is the most random bytes one request may ask for.
const MaxRandom = 64 << 10

// Service routes requests; it is safe for concurrent use.
type Service struct {
	mu       sync.RWMutex
	cur      *table
	closed   bool
	observer Observer // see Observe
}

type table struct {
	routes   []Route // longest prefix first
	order    []Backend
	backends map[string]Backend
	access   *Access // nil: no policy rules
	inflight sync.WaitGroup
}

func newTable(routes []Route, backends []Backend, opts []Option) (*table, error) {
	t := &table{backends: map[string]Backend{}, order: backends}
	for _, o := range opts {
		o(t)
	}
	for _, b := range backends {
		if _, dup := t.backends[b.Name()]; dup {
			return nil, fmt.Errorf("backend %q given twice", b.Name())
		}
		t.backends[b.Name()] = b
	}
	seen := map[string]bool{}
	for _, r := range routes {
		if _, ok := t.backends[r.Backend]; !ok {
			return nil, fmt.Errorf("route %q names unknown backend %q", r.Prefix, r.Backend)
		}
		if seen[r.Prefix] {
			return nil, fmt.Errorf("route prefix %q given twice", r.Prefix)
		}
		seen[r.Prefix] = true
		t.routes = append(t.routes, r)
	}
	sort.SliceStable(t.routes, func(i, j int) bool { return len(t.routes[i].Prefix) > len(t.routes[j].Prefix) })
	return t, nil
}

// New builds a service over the given backends and routes; WithAccess
// gives it an access policy.
func New(routes []Route, backends []Backend, opts ...Option) (*Service, error) {
	t, err := newTable(routes, backends, opts)
	if err != nil {
		return nil, err
	}
	return &Service{cur: t}, nil
}

// Swap replaces the routes, the backends and the access policy (WithAccess;
// none if absent) at once. Calls already running finish on the old table;
// Swap waits for them, then closes every old backend that is not also in
// the new set.
func (s *Service) Swap(routes []Route, backends []Backend, opts ...Option) error {
	t, err := newTable(routes, backends, opts)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("service is closed")
	}
	old := s.cur
	s.cur = t
	s.mu.Unlock()
	old.drainAndClose(t)
	return nil
}

// Close waits for running calls and closes every backend.
func (s *Service) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	old := s.cur
	s.mu.Unlock()
	old.drainAndClose(nil)
}

func (t *table) drainAndClose(keep *table) {
	t.inflight.Wait()
	for _, b := range t.order {
		if keep != nil && keep.backends[b.Name()] == b {
			continue
		}
		if c, ok := b.(interface{ Close() }); ok {
			c.Close()
		} else if c, ok := b.(interface{ Close() error }); ok {
			_ = c.Close()
		}
	}
}

// acquire pins the current table for the duration of one call.
func (s *Service) acquire() (*table, func(), error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, nil, core.Errorf(core.KindUnavailable, "hsmhost is shutting down")
	}
	t := s.cur
	t.inflight.Add(1)
	return t, t.inflight.Done, nil
}

// Backends describes the current backends, in configuration order.
func (s *Service) Backends() []core.BackendDescription {
	t, done, err := s.acquire()
	if err != nil {
		return nil
	}
	defer done()
	var d []core.BackendDescription
	for _, b := range t.order {
		d = append(d, b.Description())
	}
	return d
}

// Route returns the backend serving a canonical reference.
func (t *table) route(canonical string) (Backend, error) {
	for _, r := range t.routes {
		if strings.HasPrefix(canonical, r.Prefix) {
			return t.backends[r.Backend], nil
		}
	}
	return nil, core.Errorf(core.KindNoRoute, "%s: no route in the configuration matches this key reference", canonical)
}

// RouteOf tells which backend would serve ref (for diagnostics and tests).
func (s *Service) RouteOf(ref string) (string, error) {
	t, done, err := s.acquire()
	if err != nil {
		return "", err
	}
	defer done()
	r, err := core.ParseKeyRef(ref)
	if err != nil {
		return "", err
	}
	b, err := t.route(r.String())
	if err != nil {
		return "", err
	}
	return b.Name(), nil
}

// call is the common front half of every keyed operation.
type call struct {
	ref       core.KeyRef
	canonical string // ref.String()
	backend   Backend
	done      func()
}

// begin parses and routes ref and checks, in this order, the access policy
// for the context's caller and the backend's declaration of op.
func (s *Service) begin(ctx context.Context, ref, version string, op core.Operation) (*call, error) {
	r, err := core.ParseKeyRef(ref)
	if err != nil {
		return nil, err
	}
	if version != "" {
		if r.Version != "" && r.Version != version {
			return nil, core.Errorf(core.KindInvalidInput, "%s: the reference pins version %s but the request asks for %s", r, r.Version, version)
		}
		pinned, err := core.ParseKeyRef(r.WithVersion(version).String())
		if err != nil {
			return nil, err
		}
		r = pinned
	}
	t, done, err := s.acquire()
	if err != nil {
		return nil, err
	}
	canonical := r.String()
	// Before routing: a refused caller learns nothing about the backends.
	if err := t.access.check(CallerFrom(ctx), op, keyOf(r, canonical)); err != nil {
		done()
		return nil, err
	}
	b, err := t.route(canonical)
	if err != nil {
		done()
		return nil, err
	}
	if !b.Description().Supports(op) {
		done()
		return nil, &core.Error{Kind: core.KindUnsupported,
			Message: fmt.Sprintf("%s: backend %q does not support %s", r, b.Name(), opWords(op)),
			Err:     &backendError{backend: b.Name(), err: core.ErrUnsupported}}
	}
	return &call{ref: r, canonical: canonical, backend: b, done: done}, nil
}

func opWords(op core.Operation) string {
	switch op {
	case core.OpSign:
		return "signing"
	case core.OpDecrypt:
		return "decryption"
	case core.OpRandom:
		return "random number generation"
	case core.OpCreateKey:
		return "creating keys"
	case core.OpImportKey:
		return "importing keys"
	case core.OpDeleteKey:
		return "deleting keys"
	case core.OpListKeys:
		return "listing keys"
	}
	return "the " + string(op) + " operation"
}

// backendError records which backend an error came from.
type backendError struct {
	backend string
	err     error
}

func (e *backendError) Error() string { return e.err.Error() }
func (e *backendError) Unwrap() error { return e.err }

// BackendOf returns the backend named by an error from this package, or "".
func BackendOf(err error) string {
	var be *backendError
	if errors.As(err, &be) {
		return be.backend
	}
	return ""
}

// wrap turns a backend's error into one sentence that names the reference
// and the backend, keeping its kind.
func wrap(subject, backend string, err error) error {
	if err == nil {
		return nil
	}
	kind := core.KindOf(err)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		kind = core.KindUnavailable
	}
	msg := err.Error()
	if subject != "" && !strings.HasPrefix(msg, subject+":") {
		msg = subject + ": " + msg
	}
	if tag := fmt.Sprintf("backend %q", backend); !strings.Contains(msg, tag) {
		msg += " in " + tag
	}
	return &core.Error{Kind: kind, Message: msg, Err: &backendError{backend: backend, err: err}}
}

func (c *call) key(info core.KeyInfo) Key {
	return Key{Reference: c.ref.WithVersion(info.ID.Version).String(), Backend: c.backend.Name(), KeyInfo: info}
}

// GetKey returns the key's metadata and the reference pinned to its version.
func (s *Service) GetKey(ctx context.Context, ref string) (Key, error) {
	c, err := s.begin(ctx, ref, "", core.OpGetKey)
	if err != nil {
		return Key{}, err
	}
	defer c.done()
	info, err := c.backend.GetKey(ctx, c.ref.ID())
	if err != nil {
		return Key{}, wrap(c.ref.String(), c.backend.Name(), err)
	}
	return c.key(info), nil
}

// SignTiming is where a signature's time went, in nanoseconds.
type SignTiming struct {
	Backend uint64 // the backend call as the host saw it
	Plugin  uint64 // the plugin's own work, when it reports it
}

// Sign signs a digest. version, when set, pins the key version.
func (s *Service) Sign(ctx context.Context, ref, version string, digest []byte, scheme core.SignatureScheme) ([]byte, SignTiming, error) {
	return s.SignWithMessage(ctx, ref, version, digest, nil, scheme)
}

// maxSignMessage bounds the message a provider may send with a digest.
const maxSignMessage = 900 << 10

// SignWithMessage signs digest, or, where the backend signs whole messages
// (ports.MessageSigner) and the provider sent the message, the message
// after checking that it hashes to digest.
func (s *Service) SignWithMessage(ctx context.Context, ref, version string, digest, message []byte, scheme core.SignatureScheme) (sig []byte, tm SignTiming, err error) {
	began := nanotime()
	c, err := s.begin(ctx, ref, version, core.OpSign)
	defer func() { s.report(ctx, began, c, ref, version, core.OpSign, signatureName(scheme), len(sig), err) }()
	if err != nil {
		return nil, tm, err
	}
	defer c.done()
	if !c.backend.Description().SupportsSignature(scheme) {
		return nil, tm, &core.Error{Kind: core.KindUnsupported,
			Message: fmt.Sprintf("%s: backend %q does not support the signature scheme %s", c.ref, c.backend.Name(), scheme.Name()),
			Err:     &backendError{backend: c.backend.Name(), err: core.ErrUnsupported}}
	}
	start := nanotime()
	ms, signsMessages := c.backend.(ports.MessageSigner)
	signsMessages = signsMessages && len(message) > 0 && c.backend.Description().Supports(core.OpSignMessage)
	if signsMessages {
		if err := checkMessage(message, digest, scheme); err != nil {
			return nil, tm, wrap(c.ref.String(), c.backend.Name(), err)
		}
		sig, err = ms.SignMessage(ctx, c.ref.ID(), message, scheme)
	} else if ts, ok := c.backend.(TimedSigner); ok {
		sig, tm.Plugin, err = ts.SignTimed(ctx, c.ref.ID(), digest, scheme)
	} else if signer, ok := c.backend.(ports.Signer); ok {
		sig, err = signer.Sign(ctx, c.ref.ID(), digest, scheme)
	} else {
		err = notImplemented(core.OpSign)
	}
	tm.Backend = nanotime() - start
	if err != nil {
		return nil, tm, wrap(c.ref.String(), c.backend.Name(), err)
	}
	return sig, tm, nil
}

// checkMessage makes sure a message sent with a digest is the one hashed.
func checkMessage(message, digest []byte, scheme core.SignatureScheme) error {
	if len(message) > maxSignMessage {
		return core.Errorf(core.KindInvalidInput, "the message sent with the digest is %d bytes (at most %d)", len(message), maxSignMessage)
	}
	h := scheme.Hash.Crypto()
	if !h.Available() {
		return core.Errorf(core.KindInvalidInput, "a message can be signed only with a SHA-1 or SHA-2 scheme, not %s", scheme.Name())
	}
	m := h.New()
	m.Write(message)
	if !bytes.Equal(m.Sum(nil), digest) {
		return core.Errorf(core.KindInvalidInput, "the message sent with the digest does not hash to it")
	}
	return nil
}

func notImplemented(op core.Operation) error {
	return core.Errorf(core.KindInternal, "declared %s but does not implement it", op)
}

// Decrypt decrypts with the key.
func (s *Service) Decrypt(ctx context.Context, ref, version string, ciphertext []byte, scheme core.EncryptionScheme) ([]byte, error) {
	pt, _, err := s.DecryptTimed(ctx, ref, version, ciphertext, scheme)
	return pt, err
}

// DecryptTimed is Decrypt plus where its time went, as SignWithMessage.
func (s *Service) DecryptTimed(ctx context.Context, ref, version string, ciphertext []byte, scheme core.EncryptionScheme) (pt []byte, tm SignTiming, err error) {
	began := nanotime()
	c, err := s.begin(ctx, ref, version, core.OpDecrypt)
	defer func() { s.report(ctx, began, c, ref, version, core.OpDecrypt, encryptionName(scheme), len(pt), err) }()
	if err != nil {
		return nil, tm, err
	}
	defer c.done()
	// A backend that lists no encryption schemes takes any and judges itself.
	if d := c.backend.Description(); len(d.EncryptionSchemes) > 0 && !contains(d.EncryptionSchemes, scheme.Name()) {
		return nil, tm, &core.Error{Kind: core.KindUnsupported,
			Message: fmt.Sprintf("%s: backend %q does not support the encryption scheme %s", c.ref, c.backend.Name(), scheme.Name()),
			Err:     &backendError{backend: c.backend.Name(), err: core.ErrUnsupported}}
	}
	start := nanotime()
	if td, ok := c.backend.(TimedDecrypter); ok {
		pt, tm.Plugin, err = td.DecryptTimed(ctx, c.ref.ID(), ciphertext, scheme)
	} else if d, ok := c.backend.(ports.Decrypter); ok {
		pt, err = d.Decrypt(ctx, c.ref.ID(), ciphertext, scheme)
	} else {
		err = notImplemented(core.OpDecrypt)
	}
	tm.Backend = nanotime() - start
	if err != nil {
		return nil, tm, wrap(c.ref.String(), c.backend.Name(), err)
	}
	return pt, tm, nil
}

// WrapKey wraps key material with the key at ref (AES key wrap or RSA).
func (s *Service) WrapKey(ctx context.Context, ref, version string, key []byte, alg core.WrapAlgorithm) ([]byte, error) {
	return s.wrapKey(ctx, ref, version, key, alg, core.OpWrapKey)
}

// UnwrapKey reverses WrapKey inside the backend.
func (s *Service) UnwrapKey(ctx context.Context, ref, version string, wrapped []byte, alg core.WrapAlgorithm) ([]byte, error) {
	return s.wrapKey(ctx, ref, version, wrapped, alg, core.OpUnwrapKey)
}

func (s *Service) wrapKey(ctx context.Context, ref, version string, data []byte, alg core.WrapAlgorithm, op core.Operation) (out []byte, err error) {
	began := nanotime()
	c, err := s.begin(ctx, ref, version, op)
	defer func() { s.report(ctx, began, c, ref, version, op, wrapName(alg), len(out), err) }()
	if err != nil {
		return nil, err
	}
	defer c.done()
	w, ok := c.backend.(ports.KeyWrapper)
	if !ok {
		return nil, wrap(c.ref.String(), c.backend.Name(), notImplemented(op))
	}
	if op == core.OpWrapKey {
		out, err = w.WrapKey(ctx, c.ref.ID(), data, alg)
	} else {
		out, err = w.UnwrapKey(ctx, c.ref.ID(), data, alg)
	}
	err = wrap(c.ref.String(), c.backend.Name(), err)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Diagnosis is what a backend says about its own prerequisites.
type Diagnosis struct {
	Backend   string
	Supported bool
	Checks    []core.Check
}

// Diagnose asks the backend that serves a namespace (given as
// "managedhsm:MyHSM" or "managedhsm:MyHSM:") to check itself.
func (s *Service) Diagnose(ctx context.Context, namespaceRef string) (Diagnosis, error) {
	probe := strings.TrimSuffix(namespaceRef, ":") + ":hsmbridge-doctor"
	if strings.HasPrefix(namespaceRef, string(core.SchemeAzIHSM)) {
		// azihsm:// references have no namespace: the route is the scheme's.
		probe = "azihsm://hsmbridge-doctor;type=ec"
	}
	r, err := core.ParseKeyRef(probe)
	if err != nil || r.Version != "" {
		return Diagnosis{}, core.Errorf(core.KindInvalidReference, "%q does not name a namespace; expected e.g. managedhsm:MyHSM", namespaceRef)
	}
	t, done, err := s.acquire()
	if err != nil {
		return Diagnosis{}, err
	}
	defer done()
	b, err := t.route(r.String())
	if err != nil {
		return Diagnosis{}, err
	}
	d, ok := b.(ports.Diagnoser)
	if !ok {
		return Diagnosis{Backend: b.Name()}, nil
	}
	checks, err := d.Diagnose(ctx, r.Namespace)
	if errors.Is(err, core.ErrUnsupported) {
		return Diagnosis{Backend: b.Name()}, nil
	}
	if err != nil {
		return Diagnosis{}, wrap(strings.TrimSuffix(namespaceRef, ":"), b.Name(), err)
	}
	return Diagnosis{Backend: b.Name(), Supported: true, Checks: checks}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Random draws n bytes from the backend serving ref; an empty ref uses the
// catch-all route, or else the first backend that offers random bytes.
func (s *Service) Random(ctx context.Context, ref string, n int) ([]byte, error) {
	if n <= 0 || n > MaxRandom {
		return nil, core.Errorf(core.KindInvalidInput, "random: %d bytes asked for; between 1 and %d may be", n, MaxRandom)
	}
	var (
		b       Backend
		subject string
	)
	if ref != "" {
		c, err := s.begin(ctx, ref, "", core.OpRandom)
		if err != nil {
			return nil, err
		}
		defer c.done()
		b, subject = c.backend, c.ref.String()
	} else {
		t, done, err := s.acquire()
		if err != nil {
			return nil, err
		}
		defer done()
		for _, r := range t.routes {
			if r.Prefix == "" && t.backends[r.Backend].Description().Supports(core.OpRandom) {
				b = t.backends[r.Backend]
			}
		}
		for _, cand := range t.order {
			if b == nil && cand.Description().Supports(core.OpRandom) {
				b = cand
			}
		}
		if b == nil {
			return nil, core.Errorf(core.KindUnsupported, "random: no configured backend supplies random bytes")
		}
		subject = "random"
	}
	rs, ok := b.(ports.RandomSource)
	if !ok {
		return nil, wrap(subject, b.Name(), notImplemented(core.OpRandom))
	}
	out, err := rs.Random(ctx, n)
	if err == nil && len(out) != n {
		err = core.Errorf(core.KindInternal, "returned %d random bytes instead of %d", len(out), n)
	}
	if err != nil {
		return nil, wrap(subject, b.Name(), err)
	}
	return out, nil
}

func (s *Service) beginUnversioned(ctx context.Context, ref string, op core.Operation, what string) (*call, error) {
	c, err := s.begin(ctx, ref, "", op)
	if err != nil {
		return nil, err
	}
	if c.ref.Version != "" {
		c.done()
		return nil, core.Errorf(core.KindInvalidInput, "%s: %s takes a reference without ?version=", c.ref, what)
	}
	return c, nil
}

// CreateKey creates a key (a new version if the name exists).
func (s *Service) CreateKey(ctx context.Context, ref string, spec core.KeySpec) (k Key, err error) {
	began := nanotime()
	var c *call
	defer func() { s.report(ctx, began, c, ref, "", core.OpCreateKey, keyTypeName(spec.Type), 0, err) }()
	if err := spec.Validate(); err != nil {
		return Key{}, core.Errorf(core.KindOf(err), "%s: %s", ref, err)
	}
	c, err = s.beginUnversioned(ctx, ref, core.OpCreateKey, "creating a key")
	if err != nil {
		return Key{}, err
	}
	defer c.done()
	g, ok := c.backend.(ports.KeyGenerator)
	if !ok {
		return Key{}, wrap(c.ref.String(), c.backend.Name(), notImplemented(core.OpCreateKey))
	}
	info, err := g.CreateKey(ctx, c.ref.ID(), spec)
	if err != nil {
		return Key{}, wrap(c.ref.String(), c.backend.Name(), err)
	}
	return c.key(info), nil
}

// ImportKey imports a PKCS#8 private key.
func (s *Service) ImportKey(ctx context.Context, ref string, pkcs8 []byte, usages []core.KeyUsage) (k Key, err error) {
	began := nanotime()
	c, err := s.beginUnversioned(ctx, ref, core.OpImportKey, "importing a key")
	defer func() { s.report(ctx, began, c, ref, "", core.OpImportKey, keyTypeName(k.Type), 0, err) }()
	if err != nil {
		return Key{}, err
	}
	defer c.done()
	if len(usages) == 0 {
		return Key{}, core.Errorf(core.KindInvalidInput, "%s: a key needs at least one allowed operation", c.ref)
	}
	im, ok := c.backend.(ports.KeyImporter)
	if !ok {
		return Key{}, wrap(c.ref.String(), c.backend.Name(), notImplemented(core.OpImportKey))
	}
	info, err := im.ImportKey(ctx, c.ref.ID(), pkcs8, usages)
	if err != nil {
		return Key{}, wrap(c.ref.String(), c.backend.Name(), err)
	}
	return c.key(info), nil
}

// DeleteKey deletes every version of a key.
func (s *Service) DeleteKey(ctx context.Context, ref string) (n int, err error) {
	began := nanotime()
	c, err := s.beginUnversioned(ctx, ref, core.OpDeleteKey, "deleting a key (which removes every version)")
	defer func() { s.report(ctx, began, c, ref, "", core.OpDeleteKey, "", 0, err) }()
	if err != nil {
		return 0, err
	}
	defer c.done()
	d, ok := c.backend.(ports.KeyDeleter)
	if !ok {
		return 0, wrap(c.ref.String(), c.backend.Name(), notImplemented(core.OpDeleteKey))
	}
	n, err = d.DeleteKey(ctx, c.ref.ID())
	return n, wrap(c.ref.String(), c.backend.Name(), err)
}

// ListKeys lists the keys whose canonical reference (without version) starts
// with prefix, across every backend that routes could reach with it.
//
// Backends know keys by namespace and name only, so the reference of a
// listed key is rebuilt: the first scheme (the prefix's own, then those of
// the routes to that backend, then managedhsm, then hsmbridge) that makes a
// valid reference routed back to the same backend wins. With an access
// policy, the caller sees only the keys it may get_key.
func (s *Service) ListKeys(ctx context.Context, prefix string) ([]Key, error) {
	t, done, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer done()
	// Only backends some reference under prefix can reach are asked: the one
	// behind the longest route covering the whole prefix, and those behind
	// routes that extend it.
	relevant := map[string]bool{}
	covered := false
	for _, r := range t.routes { // longest first
		switch {
		case strings.HasPrefix(prefix, r.Prefix):
			if !covered {
				relevant[r.Backend] = true
				covered = true
			}
		case strings.HasPrefix(r.Prefix, prefix):
			relevant[r.Backend] = true
		}
	}
	var out []Key
	for _, b := range t.order {
		if !relevant[b.Name()] || !b.Description().Supports(core.OpListKeys) {
			continue
		}
		var schemes []string
		if sc, _, ok := strings.Cut(prefix, ":"); ok {
			schemes = append(schemes, sc)
		}
		for _, r := range t.routes {
			if sc, _, ok := strings.Cut(r.Prefix, ":"); ok && r.Backend == b.Name() {
				schemes = append(schemes, sc)
			}
		}
		schemes = append(schemes, string(core.SchemeManagedHSM), string(core.SchemeGeneric))
		l, ok := b.(ports.KeyLister)
		if !ok {
			return nil, wrap("listing keys", b.Name(), notImplemented(core.OpListKeys))
		}
		infos, err := l.ListKeys(ctx, namespaceOf(prefix))
		if err != nil {
			return nil, wrap("listing keys", b.Name(), err)
		}
		for _, info := range infos {
			ref, ok := t.referenceFor(b, info, schemes, prefix)
			if ok {
				out = append(out, Key{Reference: ref.WithVersion(info.ID.Version).String(), Backend: b.Name(), KeyInfo: info})
			}
		}
	}
	// With a policy, a caller sees the keys it may get_key.
	if c := CallerFrom(ctx); c != nil && t.access.Rules() > 0 {
		kept := out[:0]
		for _, k := range out {
			if r, err := core.ParseKeyRef(k.Reference); err == nil && t.access.Allowed(c, core.OpGetKey, keyOf(r, r.String())) {
				kept = append(kept, k)
			}
		}
		out = kept
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Reference < out[j].Reference })
	return out, nil
}

// namespaceOf is the namespace a listing prefix names in full
// ("managedhsm:MyHSM:…", "hsmbridge:ns:…"), so that a backend that lists
// per namespace (one HSM at a time) is asked for that one; "" otherwise.
func namespaceOf(prefix string) string {
	scheme, rest, ok := strings.Cut(prefix, ":")
	if !ok || (core.Scheme(scheme) != core.SchemeManagedHSM && core.Scheme(scheme) != core.SchemeGeneric) {
		return ""
	}
	if ns, _, ok := strings.Cut(rest, ":"); ok {
		return ns
	}
	return ""
}

func (t *table) referenceFor(b Backend, info core.KeyInfo, schemes []string, prefix string) (core.KeyRef, bool) {
	for _, sc := range schemes {
		var text string
		if core.Scheme(sc) == core.SchemeAzIHSM {
			typ := map[core.KeyType]string{core.KeyTypeEC: "ec", core.KeyTypeRSA: "rsa"}[info.Type]
			if info.ID.Namespace != "" || typ == "" {
				continue
			}
			text = "azihsm://" + info.ID.Name + ";type=" + typ
		} else {
			text = sc + ":" + info.ID.Namespace + ":" + info.ID.Name
		}
		ref, err := core.ParseKeyRef(text)
		if err != nil || !strings.HasPrefix(ref.String(), prefix) {
			continue
		}
		if rb, err := t.route(ref.String()); err == nil && rb == b {
			return ref, true
		}
	}
	return core.KeyRef{}, false
}
