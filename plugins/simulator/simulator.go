// Package simulator is a software HSM: an hsmbridge backend that keeps keys
// in files, for development, tests and demonstrations without hardware.
//
// It models Azure Managed HSM where that matters to callers: keys are named
// by (namespace, name); creating a key that exists adds a version; versions
// are 32 lowercase hex characters; an empty version means the latest; every
// key carries its allowed operations (Key Vault key_ops) and the backend
// itself refuses an operation the key does not allow.
//
// Layout on disk, under the state directory:
//
//	<state>/simulator/keys/<namespace>/<name>/<version>.json
//
// Names are escaped into single path elements (see escapeName). Each file
// holds one version: metadata, the public key (SPKI) and the private key
// (PKCS#8), mode 0600 in 0700 directories, written by temp file and rename
// so a reader never sees half a key. The private key is the simulator's
// secret: no method returns it, and errors never quote it.
//
// Signing is the hot path. Parsed keys are cached in memory, so a signature
// costs a map lookup, one stat of the key's directory (to notice versions
// added or keys deleted by another process, e.g. a CLI sharing the state
// directory) and the signature itself. Within one process all access goes
// through one RWMutex; between processes nothing is coordinated beyond
// atomic file replacement.
//
// RSA private-key operations (sign, decrypt, unwrap) and ECDSA on P-256,
// P-384 and P-521 run in OpenSSL's libcrypto when the simulator is built
// with cgo (internal/ossl), at OpenSSL's cost rather than Go's (a third of
// crypto/rsa's, about two thirds of crypto/ecdsa's) and outside the Go
// scheduler, so a plugin with GOMAXPROCS=1 signs on every core. Each key
// version loads its key into libcrypto once, with the parsed key, and
// releases it when the version leaves the cache (the key deleted, here or
// by another process, or the state directory changed); an operation that
// still holds a released version finishes on Go's crypto. P-256K (secp256k1, which Go's crypto lacks) on internal/secp256k1,
// the one implementation the Managed HSM backend and its stand-in use too:
// Go code, so the simulator keeps every curve with CGO_ENABLED=0, at about
// 0.3 ms a signature.
package simulator

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/aeskw"
	"github.com/hsmbridge/hsmbridge/internal/secp256k1"
	"github.com/hsmbridge/hsmbridge/plugins/simulator/internal/ossl"
	"github.com/hsmbridge/hsmbridge/ports"
)

// Name and Version are what the simulator declares in its description.
const (
	Name    = "simulator"
	Version = "0.1.0"
)

// SettingStateDir is the Configure setting that overrides the state directory.
const SettingStateDir = "state_dir"

// maxRandom bounds one Random call.
const maxRandom = 64 << 10

// racyWindow: a directory whose mtime is this close to the moment we read it
// may have changed again within the same timestamp tick, so it is read again
// on next use (the "racy git" problem).
const racyWindow = 100 * time.Millisecond

// Backend is the simulator. It is safe for concurrent use.
type Backend struct {
	mu       sync.RWMutex
	stateDir string
	opened   bool
	keys     map[keyName]*keyEntry

	masking maskingState // guarded by mu
	// masked holds the keys opened from masked blobs, by handle; they live
	// as long as this process (an application opens them again on need).
	masked    map[string]*keyVersion
	sessions  map[string]bool // live sessions that own session keys
	importKey *rsa.PrivateKey // what imports are wrapped under
}

type keyName struct{ ns, name string }

// keyEntry caches one key's versions as last read from its directory.
type keyEntry struct {
	dirMtime time.Time
	loadedAt time.Time
	stale    bool // changed by us since loaded; read again on next unpinned use
	versions map[string]*keyVersion
	latest   *keyVersion
}

// keyVersion is immutable once made, except for the lazily parsed key.
type keyVersion struct {
	info     core.KeyInfo
	seq      uint64
	pkcs8    []byte
	secret   []byte    // oct, secret and hmac keys
	session  string    // masked session keys only
	hmacHash core.Hash // hmac keys only

	once    sync.Once
	priv    crypto.Signer // *rsa.PrivateKey, *ecdsa.PrivateKey or *secp256k1.PrivateKey
	rsa     *ossl.Key     // RSA keys: priv loaded into libcrypto
	ec      *ossl.ECKey   // P-256/384/521 keys: priv loaded into libcrypto
	privErr error

	// relMu orders release against the once's setting of rsa: a version
	// dropped from the cache while its key is being parsed still gets its
	// libcrypto key released.
	relMu    sync.Mutex
	released bool
}

var (
	_ ports.KeyLookup      = (*Backend)(nil)
	_ ports.KeyWrapper     = (*Backend)(nil)
	_ ports.Masker         = (*Backend)(nil)
	_ ports.MaskedKeyMaker = (*Backend)(nil)
	_ ports.SessionEnder   = (*Backend)(nil)
	_ ports.Agreer         = (*Backend)(nil)
	_ ports.Deriver        = (*Backend)(nil)
	_ ports.MACer          = (*Backend)(nil)
	_ ports.KeyLister      = (*Backend)(nil)
	_ ports.KeyGenerator   = (*Backend)(nil)
	_ ports.KeyImporter    = (*Backend)(nil)
	_ ports.KeyDeleter     = (*Backend)(nil)
	_ ports.Signer         = (*Backend)(nil)
	_ ports.Decrypter      = (*Backend)(nil)
	_ ports.RandomSource   = (*Backend)(nil)
	_ ports.Configurer     = (*Backend)(nil)
	_ ports.SchemeLister   = (*Backend)(nil)
)

// DefaultStateDir is hsmbridge's state directory: $HSMBRIDGE_STATE_DIR if
// set; else /var/lib/hsmbridge for root; else $XDG_STATE_HOME/hsmbridge (if
// absolute, as the XDG spec requires) or ~/.local/state/hsmbridge; and, with
// no home directory at all, /tmp/hsmbridge-<uid>/state.
func DefaultStateDir() string {
	if d := os.Getenv("HSMBRIDGE_STATE_DIR"); d != "" {
		return d
	}
	if os.Getuid() == 0 {
		return "/var/lib/hsmbridge"
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "hsmbridge")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".local", "state", "hsmbridge")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("hsmbridge-%d", os.Getuid()), "state")
}

// New returns a simulator keeping its keys under stateDir (DefaultStateDir
// when empty). Nothing is created on disk until a key is written or
// Configure is called.
func New(stateDir string) (*Backend, error) {
	b := &Backend{keys: map[keyName]*keyEntry{}}
	if err := b.setStateDir(stateDir); err != nil {
		return nil, err
	}
	return b, nil
}

// NewDefault is New(DefaultStateDir()) for a plugin's main: the host may
// still move the store with the state_dir setting. The directory is made
// absolute when possible and kept as given otherwise, so it cannot fail.
func NewDefault() *Backend {
	b := &Backend{keys: map[keyName]*keyEntry{}}
	if b.setStateDir("") != nil {
		b.stateDir = DefaultStateDir()
	}
	return b
}

func (b *Backend) setStateDir(dir string) error {
	if dir == "" {
		dir = DefaultStateDir()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return core.Errorf(core.KindInvalidInput, "simulator: state directory %q: %w", dir, err)
	}
	b.stateDir = abs
	b.opened = false
	for _, e := range b.keys {
		e.release()
	}
	clear(b.keys)
	return nil
}

// StateDir is the directory the simulator keeps its keys under.
func (b *Backend) StateDir() string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.stateDir
}

// Describe is the simulator's backend description.
func (b *Backend) Describe() core.BackendDescription { return ports.Describe(Name, Version, b) }

// Configure accepts one setting, state_dir, and creates the store there.
// Unknown settings are refused so that a misspelt one does not go unnoticed.
func (b *Backend) Configure(ctx context.Context, settings map[string]string) error {
	var unknown []string
	for k := range settings {
		if k != SettingStateDir {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return core.Errorf(core.KindInvalidInput, "simulator: unknown setting(s) %s (known: %s)", strings.Join(unknown, ", "), SettingStateDir)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if dir, ok := settings[SettingStateDir]; ok {
		if dir == "" {
			return core.Errorf(core.KindInvalidInput, "simulator: setting %s is empty", SettingStateDir)
		}
		if err := b.setStateDir(dir); err != nil {
			return err
		}
	}
	return b.open()
}

// SignatureSchemes: everything core can express (PSS with any salt length,
// 0 included, and any MGF1 digest).
func (b *Backend) SignatureSchemes() []string { return core.AllSignatureSchemeNames() }

// EncryptionSchemes: RSA PKCS#1 v1.5 and OAEP with every digest.
func (b *Backend) EncryptionSchemes() []string {
	names := []string{core.EncryptionScheme{Padding: core.EncryptionPKCS1v15}.Name()}
	for _, h := range []core.Hash{core.SHA1, core.SHA224, core.SHA256, core.SHA384, core.SHA512} {
		names = append(names, core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: h}.Name())
	}
	return names
}

func notFound(id core.KeyID) error {
	key := id.Namespace + "/" + id.Name
	if id.Version != "" {
		return core.Errorf(core.KindNotFound, "key %q version %s not found", key, id.Version)
	}
	return core.Errorf(core.KindNotFound, "key %q not found", key)
}

// resolve finds a key version, from the cache when it is still current.
func (b *Backend) resolve(id core.KeyID) (*keyVersion, error) {
	if id.Namespace == maskedNamespace {
		return b.resolveMasked(id)
	}
	if err := checkName("namespace", id.Namespace); err != nil {
		return nil, err
	}
	if err := checkName("key name", id.Name); err != nil {
		return nil, err
	}
	k := keyName{id.Namespace, id.Name}
	if id.Version != "" {
		if !versionPattern.MatchString(id.Version) {
			return nil, notFound(id)
		}
		// Versions never change once written, so a cached one is current.
		b.mu.RLock()
		var v *keyVersion
		if e := b.keys[k]; e != nil {
			v = e.versions[id.Version]
		}
		b.mu.RUnlock()
		if v != nil {
			return v, nil
		}
		e, err := b.reload(k)
		if err != nil {
			return nil, err
		}
		if e == nil || e.versions[id.Version] == nil {
			return nil, notFound(id)
		}
		return e.versions[id.Version], nil
	}

	b.mu.RLock()
	dir := b.keyDir(k.ns, k.name)
	b.mu.RUnlock()
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			b.mu.Lock()
			b.dropLocked(k)
			b.mu.Unlock()
			return nil, notFound(id)
		}
		return nil, core.Errorf(core.KindUnavailable, "simulator: key %q: %w", k.ns+"/"+k.name, err)
	}
	b.mu.RLock()
	e := b.keys[k]
	fresh := e != nil && !e.stale && e.dirMtime.Equal(fi.ModTime()) && e.loadedAt.Sub(e.dirMtime) > racyWindow
	b.mu.RUnlock()
	if !fresh {
		if e, err = b.reload(k); err != nil {
			return nil, err
		}
	}
	if e == nil || e.latest == nil {
		return nil, notFound(id)
	}
	return e.latest, nil
}

// reload reads a key's directory into the cache, keeping versions already
// parsed. It returns nil when the key does not exist.
func (b *Backend) reload(k keyName) (*keyEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	dir := b.keyDir(k.ns, k.name)
	fi, statErr := os.Stat(dir) // before reading: a later change shows as a newer mtime
	recs, err := readKeyDir(dir)
	if err != nil {
		return nil, err
	}
	if statErr != nil || len(recs) == 0 {
		b.dropLocked(k)
		return nil, nil
	}
	old := b.keys[k]
	e := &keyEntry{dirMtime: fi.ModTime(), loadedAt: time.Now(), versions: make(map[string]*keyVersion, len(recs))}
	for _, rec := range recs {
		if rec.Namespace != k.ns || rec.Name != k.name || rec.Version == "" {
			continue // a file copied from elsewhere
		}
		v := (*keyVersion)(nil)
		if old != nil {
			v = old.versions[rec.Version]
		}
		if v == nil {
			v = versionFromRecord(rec, nil)
		}
		e.add(v)
	}
	if e.latest == nil {
		b.dropLocked(k)
		return nil, nil
	}
	if old != nil {
		for name, v := range old.versions {
			if e.versions[name] != v {
				v.release() // gone from the disk
			}
		}
	}
	b.keys[k] = e
	return e, nil
}

func (e *keyEntry) add(v *keyVersion) {
	e.versions[v.info.ID.Version] = v
	if l := e.latest; l == nil || later(v, l) {
		e.latest = v
	}
}

// later orders versions by creation: sequence number first (two versions
// can share a timestamp), then time, then version string for determinism.
func later(a, b *keyVersion) bool {
	if a.seq != b.seq {
		return a.seq > b.seq
	}
	if !a.info.Created.Equal(b.info.Created) {
		return a.info.Created.After(b.info.Created)
	}
	return a.info.ID.Version > b.info.ID.Version
}

func versionFromRecord(rec *record, priv crypto.Signer) *keyVersion {
	v := &keyVersion{
		info: core.KeyInfo{
			ID:   core.KeyID{Namespace: rec.Namespace, Name: rec.Name, Version: rec.Version},
			Type: rec.Type, Bits: rec.Bits, Curve: rec.Curve, Usages: slices.Clone(rec.Usages),
			PublicKeyDER: rec.PublicDER, Enabled: rec.Enabled, Created: rec.Created,
		},
		seq:    rec.Seq,
		pkcs8:  rec.PKCS8,
		secret: rec.Secret,
	}
	if priv != nil {
		v.once.Do(func() { v.setPrivate(priv) })
	}
	return v
}

// private parses the version's private key once.
func (v *keyVersion) private() (crypto.Signer, error) {
	v.once.Do(func() {
		k, err := parsePKCS8(v.pkcs8)
		if err != nil {
			v.privErr = core.Errorf(core.KindInternal, "simulator: key %s: stored private key does not parse", v.info.ID)
			return
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			v.privErr = core.Errorf(core.KindInternal, "simulator: key %s: stored private key is %T", v.info.ID, k)
			return
		}
		v.setPrivate(s)
	})
	return v.priv, v.privErr
}

// setPrivate records the parsed key, and loads an RSA or NIST-curve EC key
// into libcrypto; it runs in v.once.
func (v *keyVersion) setPrivate(s crypto.Signer) {
	var (
		r   *ossl.Key
		ec  *ossl.ECKey
		err error
	)
	switch k := s.(type) {
	case *rsa.PrivateKey:
		r, err = ossl.New(k)
	case *ecdsa.PrivateKey:
		ec, err = ossl.NewEC(k)
	default:
		v.priv = s
		return
	}
	if err != nil {
		v.privErr = core.Errorf(core.KindInternal, "simulator: key %s: %v", v.info.ID, err)
		return
	}
	v.relMu.Lock()
	defer v.relMu.Unlock()
	if v.released {
		// Dropped from the cache meanwhile: Go's crypto will do.
		if r != nil {
			r.Close()
		}
		if ec != nil {
			ec.Close()
		}
	}
	v.priv, v.rsa, v.ec = s, r, ec
}

// rsaKey is the version's RSA key, parsed and loaded on first use.
func (v *keyVersion) rsaKey() (*ossl.Key, error) {
	if _, err := v.private(); err != nil {
		return nil, err
	}
	if v.rsa == nil {
		return nil, core.Errorf(core.KindInternal, "simulator: key %s is not RSA", v.info.ID)
	}
	return v.rsa, nil
}

// release gives back what the version holds in libcrypto; the simulator
// calls it when the version leaves the cache. Operations already holding
// the version still succeed (on crypto/rsa).
func (v *keyVersion) release() {
	v.relMu.Lock()
	defer v.relMu.Unlock()
	v.released = true
	if v.rsa != nil {
		v.rsa.Close()
	}
	if v.ec != nil {
		v.ec.Close()
	}
}

// release releases every version of the entry.
func (e *keyEntry) release() {
	for _, v := range e.versions {
		v.release()
	}
}

// dropLocked removes a key from the cache and releases its versions; b.mu
// is held for writing.
func (b *Backend) dropLocked(k keyName) {
	if e := b.keys[k]; e != nil {
		e.release()
		delete(b.keys, k)
	}
}

// infoCopy returns the version's metadata; callers may not alter the cache.
func (v *keyVersion) infoCopy() core.KeyInfo {
	i := v.info
	i.Usages = slices.Clone(i.Usages)
	i.PublicKeyDER = slices.Clone(i.PublicKeyDER)
	return i
}

// GetKey returns a key version's metadata and public key.
func (b *Backend) GetKey(ctx context.Context, id core.KeyID) (core.KeyInfo, error) {
	v, err := b.resolve(id)
	if err != nil {
		return core.KeyInfo{}, err
	}
	return v.infoCopy(), nil
}

// ListKeys lists the latest version of every key in namespace (every
// namespace when empty), sorted by namespace and name.
func (b *Backend) ListKeys(ctx context.Context, namespace string) ([]core.KeyInfo, error) {
	b.mu.RLock()
	root := b.keysDir()
	b.mu.RUnlock()
	var nsDirs []string
	if namespace != "" {
		if err := checkName("namespace", namespace); err != nil {
			return nil, err
		}
		nsDirs = []string{escapeName(namespace)}
	} else {
		entries, err := os.ReadDir(root)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, core.Errorf(core.KindUnavailable, "simulator: listing keys: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() {
				nsDirs = append(nsDirs, e.Name())
			}
		}
	}
	var out []core.KeyInfo
	for _, nsDir := range nsDirs {
		ns, ok := unescapeName(nsDir)
		if !ok {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(root, nsDir))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, core.Errorf(core.KindUnavailable, "simulator: listing keys: %w", err)
		}
		for _, e := range entries {
			name, ok := unescapeName(e.Name())
			if !ok || !e.IsDir() {
				continue
			}
			v, err := b.resolve(core.KeyID{Namespace: ns, Name: name})
			if errors.Is(err, core.ErrNotFound) || errors.Is(err, core.ErrInvalidInput) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, v.infoCopy())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID.Namespace != out[j].ID.Namespace {
			return out[i].ID.Namespace < out[j].ID.Namespace
		}
		return out[i].ID.Name < out[j].ID.Name
	})
	return out, nil
}

func checkNewID(id core.KeyID) error {
	if err := checkName("namespace", id.Namespace); err != nil {
		return err
	}
	if err := checkName("key name", id.Name); err != nil {
		return err
	}
	if id.Version != "" {
		return core.Errorf(core.KindInvalidInput, "key %q: the backend chooses a new version's name; do not give one", id.Namespace+"/"+id.Name)
	}
	return nil
}

func normalizeUsages(us []core.KeyUsage) ([]core.KeyUsage, error) {
	if len(us) == 0 {
		return nil, core.Errorf(core.KindInvalidInput, "a key needs at least one allowed operation")
	}
	var out []core.KeyUsage
	for _, u := range us {
		p, err := core.ParseKeyUsage(string(u))
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// CreateKey generates a key; an existing name gets a new version.
func (b *Backend) CreateKey(ctx context.Context, id core.KeyID, spec core.KeySpec) (core.KeyInfo, error) {
	if err := checkNewID(id); err != nil {
		return core.KeyInfo{}, err
	}
	if err := spec.Validate(); err != nil {
		return core.KeyInfo{}, err
	}
	if len(spec.Usages) == 0 {
		spec.Usages = core.DefaultUsages(spec.Type) // what Managed HSM gives such a key
	}
	usages, err := normalizeUsages(spec.Usages)
	if err != nil {
		return core.KeyInfo{}, err
	}
	var priv crypto.Signer
	switch spec.Type {
	case core.KeyTypeOct:
		secret := make([]byte, spec.Bits/8)
		if _, err := rand.Read(secret); err != nil {
			return core.KeyInfo{}, core.Errorf(core.KindInternal, "simulator: generating key: %w", err)
		}
		return b.persist(id, &record{Type: core.KeyTypeOct, Bits: spec.Bits, Usages: usages, Secret: secret}, nil)
	case core.KeyTypeRSA:
		priv, err = rsa.GenerateKey(rand.Reader, spec.Bits)
	case core.KeyTypeEC:
		priv, err = generateEC(spec.Curve)
	default:
		return core.KeyInfo{}, core.Errorf(core.KindUnsupported, "simulator: key type %s is not supported (RSA, EC or oct)", spec.Type)
	}
	if err != nil {
		return core.KeyInfo{}, core.Errorf(core.KindInternal, "simulator: generating key: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return core.KeyInfo{}, core.Errorf(core.KindUnavailable, "simulator: creating key %q: %w", id.Namespace+"/"+id.Name, err)
	}
	return b.store(id, priv, usages)
}

// ImportKey stores a PKCS#8 private key (RSA 2048/3072/4096 or EC
// P-256/P-256K/P-384/P-521) as a new version.
func (b *Backend) ImportKey(ctx context.Context, id core.KeyID, pkcs8 []byte, usages []core.KeyUsage) (core.KeyInfo, error) {
	if err := checkNewID(id); err != nil {
		return core.KeyInfo{}, err
	}
	usages, err := normalizeUsages(usages)
	if err != nil {
		return core.KeyInfo{}, err
	}
	k, err := parsePKCS8(pkcs8)
	if err != nil {
		return core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "simulator: the key to import is not a valid PKCS#8 private key")
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if err := (core.KeySpec{Type: core.KeyTypeRSA, Bits: k.N.BitLen(), Usages: usages}).Validate(); err != nil {
			return core.KeyInfo{}, err
		}
		return b.store(id, k, usages)
	case *ecdsa.PrivateKey:
		if _, err := curveName(k.Curve); err != nil {
			return core.KeyInfo{}, err
		}
		return b.store(id, k, usages)
	case *secp256k1.PrivateKey:
		return b.store(id, k, usages)
	}
	return core.KeyInfo{}, core.Errorf(core.KindUnsupported, "simulator: cannot import a %T key (RSA or EC only)", k)
}

// generateEC makes a key on a curve of core's list: crypto/ecdsa for the
// NIST curves, internal/secp256k1 for P-256K.
func generateEC(c core.Curve) (crypto.Signer, error) {
	switch c {
	case core.CurveP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case core.CurveP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case core.CurveP521:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case core.CurveP256K:
		return secp256k1.GenerateKey(rand.Reader)
	}
	return nil, core.Errorf(core.KindUnsupported, "simulator: curve %q is not supported (P-256, P-256K, P-384 or P-521)", c)
}

// curveName names a crypto/ecdsa key's curve.
func curveName(c elliptic.Curve) (core.Curve, error) {
	switch c {
	case elliptic.P256():
		return core.CurveP256, nil
	case elliptic.P384():
		return core.CurveP384, nil
	case elliptic.P521():
		return core.CurveP521, nil
	}
	return "", core.Errorf(core.KindUnsupported, "simulator: curve %s is not supported (P-256, P-256K, P-384 or P-521)", c.Params().Name)
}

// parsePKCS8 reads a PKCS#8 private key: secp256k1's here, the others by
// crypto/x509 (which has no secp256k1).
func parsePKCS8(der []byte) (any, error) {
	if k, err := secp256k1.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	} else if !errors.Is(err, secp256k1.ErrOtherKey) {
		return nil, err
	}
	return x509.ParsePKCS8PrivateKey(der)
}

// keyShape is what the simulator records of a private key: PKCS#8, SPKI,
// type, size and curve.
type keyShape struct {
	pkcs8, spki []byte
	typ         core.KeyType
	bits        int
	curve       core.Curve
}

func shapeOf(priv crypto.Signer) (keyShape, error) {
	var s keyShape
	var err error
	if k, ok := priv.(*secp256k1.PrivateKey); ok {
		if s.pkcs8, err = secp256k1.MarshalPKCS8PrivateKey(k); err == nil {
			s.spki, err = secp256k1.MarshalPKIXPublicKey(&k.PublicKey)
		}
		if err != nil {
			return s, core.Errorf(core.KindInternal, "simulator: encoding key: %w", err)
		}
		s.typ, s.bits, s.curve = core.KeyTypeEC, 256, core.CurveP256K
		return s, nil
	}
	if s.pkcs8, err = x509.MarshalPKCS8PrivateKey(priv); err != nil {
		return s, core.Errorf(core.KindInternal, "simulator: encoding private key: %w", err)
	}
	if s.spki, err = x509.MarshalPKIXPublicKey(priv.Public()); err != nil {
		return s, core.Errorf(core.KindInternal, "simulator: encoding public key: %w", err)
	}
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		s.typ, s.bits = core.KeyTypeRSA, k.N.BitLen()
	case *ecdsa.PrivateKey:
		s.typ, s.bits = core.KeyTypeEC, k.Curve.Params().BitSize
		if s.curve, err = curveName(k.Curve); err != nil {
			return s, err
		}
	default:
		return s, core.Errorf(core.KindUnsupported, "simulator: %T keys are not supported", priv)
	}
	return s, nil
}

func newVersionName() (string, error) {
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", core.Errorf(core.KindInternal, "simulator: %w", err)
	}
	return hex.EncodeToString(r[:]), nil
}

// store writes priv as a new version of id and caches it.
func (b *Backend) store(id core.KeyID, priv crypto.Signer, usages []core.KeyUsage) (core.KeyInfo, error) {
	s, err := shapeOf(priv)
	if err != nil {
		return core.KeyInfo{}, err
	}
	rec := &record{Usages: usages, PublicDER: s.spki, PKCS8: s.pkcs8, Type: s.typ, Bits: s.bits, Curve: s.curve}
	return b.persist(id, rec, priv)
}

// persist writes rec (type, size, usages and material filled in) as a new
// version of id and caches it; priv is the parsed private key, if any.
func (b *Backend) persist(id core.KeyID, rec *record, priv crypto.Signer) (core.KeyInfo, error) {
	rec.Format, rec.Namespace, rec.Name = recordFormat, id.Namespace, id.Name
	rec.Enabled, rec.Created = true, time.Now().UTC()
	var err error

	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.open(); err != nil {
		return core.KeyInfo{}, err
	}
	k := keyName{id.Namespace, id.Name}
	dir := b.keyDir(k.ns, k.name)
	existing, err := readKeyDir(dir) // the disk, not the cache, decides order
	if err != nil {
		return core.KeyInfo{}, err
	}
	for _, r := range existing {
		rec.Seq = max(rec.Seq, r.Seq)
	}
	rec.Seq++
	for rec.Version == "" || slices.ContainsFunc(existing, func(r *record) bool { return r.Version == rec.Version }) {
		if rec.Version, err = newVersionName(); err != nil {
			return core.KeyInfo{}, err
		}
	}
	if err := writeRecord(dir, rec); err != nil {
		return core.KeyInfo{}, err
	}
	v := versionFromRecord(rec, priv)
	e := b.keys[k]
	if e == nil {
		e = &keyEntry{versions: map[string]*keyVersion{}}
		b.keys[k] = e
	}
	e.add(v)
	e.stale = true // other versions on disk may be missing from the cache
	return v.infoCopy(), nil
}

// DeleteKey deletes a key with all its versions.
func (b *Backend) DeleteKey(ctx context.Context, id core.KeyID) (int, error) {
	if err := checkName("namespace", id.Namespace); err != nil {
		return 0, err
	}
	if err := checkName("key name", id.Name); err != nil {
		return 0, err
	}
	if id.Version != "" {
		return 0, core.Errorf(core.KindInvalidInput, "key %q: delete removes every version; do not pin one", id.Namespace+"/"+id.Name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	k := keyName{id.Namespace, id.Name}
	b.dropLocked(k)
	dir := b.keyDir(k.ns, k.name)
	recs, err := readKeyDir(dir)
	if err != nil {
		return 0, err
	}
	if len(recs) == 0 {
		return 0, notFound(id)
	}
	// Rename first so that no reader sees a key with some versions gone.
	suffix, err := newVersionName()
	if err != nil {
		return 0, err
	}
	trash := filepath.Join(filepath.Dir(dir), ".deleted-"+suffix)
	if err := os.Rename(dir, trash); err != nil {
		return 0, core.Errorf(core.KindUnavailable, "simulator: deleting key %q: %w", id.Namespace+"/"+id.Name, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return 0, core.Errorf(core.KindUnavailable, "simulator: deleting key %q: %w", id.Namespace+"/"+id.Name, err)
	}
	return len(recs), nil
}

// usable resolves a key version and checks that it allows usage.
func (b *Backend) usable(id core.KeyID, usage core.KeyUsage) (*keyVersion, error) {
	v, err := b.resolve(id)
	if err != nil {
		return nil, err
	}
	if !v.info.Enabled {
		return nil, core.Errorf(core.KindOperationNotAllowed, "key %q is disabled", v.info.ID.String())
	}
	if !v.info.Allows(usage) {
		allowed := make([]string, len(v.info.Usages))
		for i, u := range v.info.Usages {
			allowed[i] = string(u)
		}
		return nil, core.Errorf(core.KindOperationNotAllowed, "key %q does not allow %s (allowed operations: %s)",
			v.info.ID.String(), usage, strings.Join(allowed, ", "))
	}
	return v, nil
}

// Sign signs a digest computed by the caller. ECDSA signatures are DER.
func (b *Backend) Sign(ctx context.Context, id core.KeyID, digest []byte, scheme core.SignatureScheme) ([]byte, error) {
	v, err := b.usable(id, core.UsageSign)
	if err != nil {
		return nil, err
	}
	if err := scheme.CheckFor(v.info, digest); err != nil {
		return nil, err
	}
	priv, err := v.private()
	if err != nil {
		return nil, err
	}
	h := scheme.Hash.Crypto()
	var sig []byte
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		switch scheme.Padding {
		case core.PaddingPKCS1v15:
			sig, err = v.rsa.Sign(nil, digest, h)
		case core.PaddingPSS:
			// Any salt length (0 included) and MGF1 digest.
			sig, err = v.rsa.Sign(nil, digest, &ossl.PSSOptions{Hash: h, SaltLength: scheme.SaltLength, MGF1Hash: scheme.EffectiveMGF1().Crypto()})
		}
	case *ecdsa.PrivateKey:
		if v.ec != nil {
			sig, err = v.ec.Sign(nil, digest, h)
		} else {
			sig, err = ecdsa.SignASN1(rand.Reader, k, digest)
		}
	case *secp256k1.PrivateKey:
		sig, err = k.Sign(rand.Reader, digest, nil) // DER, like SignASN1
	}
	if err != nil {
		return nil, core.Errorf(core.KindInternal, "simulator: signing with key %q: %w", v.info.ID.String(), err)
	}
	if sig == nil {
		return nil, core.Errorf(core.KindInternal, "simulator: key %q cannot sign with %s", v.info.ID.String(), scheme.Name())
	}
	return sig, nil
}

// Decrypt decrypts an RSA ciphertext (PKCS#1 v1.5 or OAEP).
func (b *Backend) Decrypt(ctx context.Context, id core.KeyID, ciphertext []byte, scheme core.EncryptionScheme) ([]byte, error) {
	v, err := b.usable(id, core.UsageDecrypt)
	if err != nil {
		return nil, err
	}
	if v.info.Type != core.KeyTypeRSA {
		return nil, core.Errorf(core.KindInvalidInput, "%s needs an RSA key, key %s is %s", scheme.Name(), v.info.ID, v.info.Type)
	}
	if size := (v.info.Bits + 7) / 8; len(ciphertext) != size {
		return nil, core.Errorf(core.KindInvalidInput, "ciphertext is %d bytes, key %s needs %d", len(ciphertext), v.info.ID, size)
	}
	k, err := v.rsaKey()
	if err != nil {
		return nil, err
	}
	var pt []byte
	switch scheme.Padding {
	case core.EncryptionPKCS1v15:
		pt, err = k.Decrypt(nil, ciphertext, nil)
	case core.EncryptionOAEP:
		if scheme.OAEPHash.Size() == 0 {
			return nil, core.Errorf(core.KindInvalidInput, "OAEP needs a digest algorithm")
		}
		mgf := scheme.MGF1Hash
		if mgf == core.HashUnspecified {
			mgf = scheme.OAEPHash
		}
		pt, err = k.Decrypt(nil, ciphertext, &rsa.OAEPOptions{Hash: scheme.OAEPHash.Crypto(), MGFHash: mgf.Crypto(), Label: scheme.Label})
	default:
		return nil, core.Errorf(core.KindInvalidInput, "encryption scheme has no padding")
	}
	if errors.Is(err, rsa.ErrDecryption) {
		// Say nothing more precise: which check failed is an oracle.
		return nil, core.Errorf(core.KindInvalidInput, "decryption with key %s failed", v.info.ID)
	}
	if err != nil { // the options or libcrypto, whatever the ciphertext
		return nil, core.Errorf(core.KindInternal, "simulator: decrypting with key %s: %v", v.info.ID, err)
	}
	return pt, nil
}

// WrapKey wraps key material: AES key wrap with an oct key, or RSA
// encryption with the public half of an RSA key.
func (b *Backend) WrapKey(ctx context.Context, id core.KeyID, key []byte, alg core.WrapAlgorithm) ([]byte, error) {
	v, err := b.wrappingKey(id, core.UsageWrapKey, alg)
	if err != nil {
		return nil, err
	}
	var out []byte
	switch alg {
	case core.WrapA128KW, core.WrapA192KW, core.WrapA256KW, core.WrapAESKeyWrap:
		out, err = aeskw.Wrap(v.secret, key)
	case core.WrapAESKeyWrapPad:
		out, err = aeskw.WrapPad(v.secret, key)
	default:
		priv, perr := v.private()
		if perr != nil {
			return nil, perr
		}
		pub := &priv.(*rsa.PrivateKey).PublicKey
		switch alg {
		case core.WrapRSA1_5:
			out, err = rsa.EncryptPKCS1v15(rand.Reader, pub, key)
		case core.WrapRSAOAEP:
			out, err = rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, key, nil)
		case core.WrapRSAOAEP256:
			out, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, key, nil)
		}
	}
	if err != nil {
		return nil, core.Errorf(core.KindInvalidInput, "wrapping with key %s (%s): %v", v.info.ID, alg, err)
	}
	return out, nil
}

// UnwrapKey reverses WrapKey. Any failure gets one message: which check
// failed would be an oracle.
func (b *Backend) UnwrapKey(ctx context.Context, id core.KeyID, wrapped []byte, alg core.WrapAlgorithm) ([]byte, error) {
	v, err := b.wrappingKey(id, core.UsageUnwrapKey, alg)
	if err != nil {
		return nil, err
	}
	var out []byte
	switch alg {
	case core.WrapA128KW, core.WrapA192KW, core.WrapA256KW, core.WrapAESKeyWrap:
		out, err = aeskw.Unwrap(v.secret, wrapped)
	case core.WrapAESKeyWrapPad:
		out, err = aeskw.UnwrapPad(v.secret, wrapped)
	default:
		k, kerr := v.rsaKey()
		if kerr != nil {
			return nil, kerr
		}
		switch alg {
		case core.WrapRSA1_5:
			out, err = k.Decrypt(nil, wrapped, nil)
		case core.WrapRSAOAEP:
			out, err = k.Decrypt(nil, wrapped, &rsa.OAEPOptions{Hash: crypto.SHA1})
		case core.WrapRSAOAEP256:
			out, err = k.Decrypt(nil, wrapped, &rsa.OAEPOptions{Hash: crypto.SHA256})
		}
	}
	if err != nil {
		return nil, core.Errorf(core.KindInvalidInput, "unwrapping with key %s (%s) failed", v.info.ID, alg)
	}
	return out, nil
}

func (b *Backend) wrappingKey(id core.KeyID, usage core.KeyUsage, alg core.WrapAlgorithm) (*keyVersion, error) {
	v, err := b.usable(id, usage)
	if err != nil {
		return nil, err
	}
	if err := alg.CheckFor(v.info); err != nil {
		return nil, err
	}
	return v, nil
}

// Random returns n random bytes (at most 64 KiB per call).
func (b *Backend) Random(ctx context.Context, n int) ([]byte, error) {
	if n < 0 || n > maxRandom {
		return nil, core.Errorf(core.KindInvalidInput, "random: %d bytes asked, between 0 and %d allowed", n, maxRandom)
	}
	out := make([]byte, n)
	if _, err := rand.Read(out); err != nil {
		return nil, core.Errorf(core.KindInternal, "random: %w", err)
	}
	return out, nil
}
