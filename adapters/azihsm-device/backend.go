package azihsmdevice

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/ports"
)

// Name and Version are what the backend declares.
const (
	Name    = "azihsm-device"
	Version = "0.1.0"
)

// Opener loads the native library (native.Open for the real one).
type Opener func(path string) (devapi.Library, error)

// Backend is the Integrated HSM backend. It is safe for concurrent use.
type Backend struct {
	opener Opener
	getenv func(string) string
	log    hclog.Logger

	mu         sync.RWMutex
	cfg        config
	configured bool
	lib        devapi.Library
	libErr     error // why the device could not be opened, for doctor
	part       devapi.Handle
	partPath   string
	rev        devapi.APIRev
	main       *session
	apps       map[string]*session // application session -> its device session
	keys       map[string]*openKey // by name (hex of the blob's SHA-256, 16 bytes)
	unwrap     *openKey            // the import key pair, in the main session
	appBlobs   map[string]string   // key name -> application session, for blobs made in one
	gen        uint64              // bumped by every recovery
	clock      atomic.Uint64       // ticks once per key use
}

// session is one device session: the main one (app == "") or an
// application session's.
type session struct {
	h      devapi.Handle
	app    string
	broken bool // closed by a failed recovery: open again before use
}

// openKey is a key the device has open: its handles and what the backend
// needs to open it again after a fault.
type openKey struct {
	name     string
	blob     []byte
	kind     devapi.KeyKind
	priv     devapi.Handle // the key itself for secrets
	pub      devapi.Handle // 0 for secrets
	sess     *session
	info     core.KeyInfo
	hmacHash core.Hash
	lost     bool          // a session key whose device session had to be replaced
	used     atomic.Uint64 // b.clock when last used, for eviction
}

// DefaultMaxOpenKeys bounds the keys the backend keeps open in the device
// (whose key table is finite; setting max_open_keys). Past it the least
// recently used eighth are closed; an application that names one again gets
// not_found and opens its blob anew, as after a restart.
const DefaultMaxOpenKeys = 1024

var (
	_ ports.KeyLookup      = (*Backend)(nil)
	_ ports.Masker         = (*Backend)(nil)
	_ ports.MaskedKeyMaker = (*Backend)(nil)
	_ ports.SessionEnder   = (*Backend)(nil)
	_ ports.Signer         = (*Backend)(nil)
	_ ports.MessageSigner  = (*Backend)(nil)
	_ ports.Decrypter      = (*Backend)(nil)
	_ ports.Agreer         = (*Backend)(nil)
	_ ports.Deriver        = (*Backend)(nil)
	_ ports.MACer          = (*Backend)(nil)
	_ ports.Configurer     = (*Backend)(nil)
	_ ports.Diagnoser      = (*Backend)(nil)
	_ ports.SchemeLister   = (*Backend)(nil)
)

// New makes a backend that loads the library with opener when first used.
func New(opener Opener) *Backend {
	return &Backend{opener: opener, getenv: os.Getenv, log: hclog.NewNullLogger(),
		apps: map[string]*session{}, keys: map[string]*openKey{}, appBlobs: map[string]string{}}
}

// SetLogger gives the backend a logger for what it says at start-up (the
// plugin passes sdk.Logger, whose lines hsmhost logs at their level).
func (b *Backend) SetLogger(l hclog.Logger) { b.log = l }

// Configure takes the backend's settings and opens the device, so that a
// missing library or device is reported at start-up; a device that cannot
// be opened now is tried again at the next operation.
func (b *Backend) Configure(ctx context.Context, settings map[string]string) error {
	cfg, err := parseConfig(settings, b.getenv)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closeLocked()
	b.cfg, b.configured = cfg, true
	if err := b.openLocked(); err != nil {
		b.log.Warn("the Integrated HSM device is not available; operations will fail until it is", "error", err.Error())
	} else {
		b.log.Info("Integrated HSM device opened", "library", b.lib.Path(), "partition", b.partPath, "api_revision", b.rev.String())
	}
	return nil
}

// Close closes every session and the partition and unloads the library.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closeLocked()
	return nil
}

func (b *Backend) closeLocked() {
	if b.lib == nil {
		return
	}
	for _, k := range b.keys {
		k.deleteHandles(b.lib)
	}
	if b.unwrap != nil {
		b.unwrap.deleteHandles(b.lib)
	}
	for _, s := range b.apps {
		b.lib.CloseSession(s.h)
	}
	if b.main != nil && !b.main.broken {
		b.lib.CloseSession(b.main.h)
	}
	b.lib.ClosePartition(b.part)
	b.lib.Close()
	b.lib, b.main, b.unwrap = nil, nil, nil
	b.apps, b.keys, b.appBlobs = map[string]*session{}, map[string]*openKey{}, map[string]string{}
}

func (k *openKey) deleteHandles(lib devapi.Library) {
	lib.DeleteKey(k.priv)
	if k.pub != 0 {
		lib.DeleteKey(k.pub)
	}
}

// openLocked loads the library, opens and initialises the partition and
// opens the main session.
func (b *Backend) openLocked() (err error) {
	if b.lib != nil {
		return nil
	}
	defer func() { b.libErr = err }()
	if !b.configured {
		b.cfg, _ = parseConfig(nil, b.getenv)
		b.configured = true
	}
	lib, err := b.opener(b.cfg.library)
	if err != nil {
		return core.Errorf(core.KindUnavailable, "Integrated HSM: the native library is not available: %v "+
			"(set %q in the backend's settings to its path; without a path the dynamic loader searches LD_LIBRARY_PATH, /etc/ld.so.cache and the system library folders)",
			err, SettingLibrary)
	}
	fail := func(what string, err error) error {
		lib.Close()
		return deviceError("Integrated HSM: "+what, err)
	}
	parts, err := lib.Partitions()
	if err != nil {
		return fail("listing partitions", err)
	}
	var chosen *devapi.PartitionInfo
	for i := range parts {
		if b.cfg.device == "" || parts[i].Path == b.cfg.device {
			chosen = &parts[i]
			break
		}
	}
	if chosen == nil {
		lib.Close()
		var paths []string
		for _, p := range parts {
			paths = append(paths, p.Path)
		}
		if len(paths) == 0 {
			return core.Errorf(core.KindUnavailable, "Integrated HSM: the library (%s) lists no partition: is the device present and its driver loaded?", lib.Path())
		}
		return core.Errorf(core.KindUnavailable, "Integrated HSM: no partition %q (the library lists %v)", b.cfg.device, paths)
	}
	rev := chosen.MaxRev
	if b.cfg.apiRev != nil {
		rev = *b.cfg.apiRev
	}
	if !b.cfg.hasCredentials() {
		lib.Close()
		return b.cfg.missingCredentials()
	}
	part, err := lib.OpenPartition(chosen.Path, rev)
	if err != nil {
		return fail(fmt.Sprintf("opening partition %s with API revision %s (it supports %s to %s)", chosen.Path, rev, chosen.MinRev, chosen.MaxRev), err)
	}
	init, err := b.cfg.partitionInit(lib, part)
	if err == nil {
		err = lib.InitPartition(part, b.cfg.creds, init)
		if err != nil {
			err = deviceError(fmt.Sprintf("Integrated HSM: initialising partition %s with the credential from %s", chosen.Path, b.cfg.credsSource), err)
		}
	}
	if err == nil {
		b.cfg.keepPartitionKeys(lib, part)
	}
	var sh devapi.Handle
	if err == nil {
		sh, err = lib.OpenSession(part, b.cfg.creds, nil)
		if err != nil {
			err = deviceError(fmt.Sprintf("Integrated HSM: opening a session on %s", chosen.Path), err)
		}
	}
	if err != nil {
		lib.ClosePartition(part)
		lib.Close()
		return err
	}
	b.lib, b.part, b.partPath, b.rev = lib, part, chosen.Path, rev
	b.main = &session{h: sh}
	return nil
}

// ready opens the device if it is not open yet; callers then take the read
// lock and check b.lib again (Configure or a failed recovery may close it).
func (b *Backend) ready() error {
	b.mu.RLock()
	ok := b.lib != nil && !b.main.broken
	b.mu.RUnlock()
	if ok {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.openLocked(); err != nil {
		return err
	}
	if b.main.broken {
		return b.reopenLocked(b.main)
	}
	return nil
}

// run calls op under the read lock and, when the device answers with a
// transient fault, recovers the session op used and calls it once more.
// op returns the session it used (nil if none) with its error.
func (b *Backend) run(op func() (*session, error)) error {
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		if err := b.ready(); err != nil {
			if lastErr != nil {
				return core.Errorf(core.KindUnavailable, "%v (the fault persisted: %v)", lastErr, err)
			}
			return err
		}
		b.mu.RLock()
		gen := b.gen
		var s *session
		var err error = core.Errorf(core.KindUnavailable, "Integrated HSM: the device was closed")
		if b.lib != nil {
			s, err = op()
		}
		b.mu.RUnlock()
		if err == nil {
			return nil
		}
		st, isStatus := devapi.StatusOf(err)
		if !isStatus || !st.Transient() || s == nil {
			return err
		}
		lastErr = err
		if attempt == 0 {
			if rerr := b.recover(s, gen); rerr != nil {
				return core.Errorf(core.KindUnavailable, "%v (the fault persisted: %v)", err, rerr)
			}
		}
	}
	return core.Errorf(core.KindUnavailable, "%v (the fault persisted after the session was opened again and its keys reloaded)", lastErr)
}

// recover replaces s with a new device session and reloads the keys that
// were open in it, unless another caller already did since gen.
func (b *Backend) recover(s *session, gen uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen != gen || b.lib == nil {
		return nil
	}
	b.gen++
	return b.reopenLocked(s)
}

// reopenLocked opens a new session in place of s and unmasks again the keys
// that were open in it. If the device still fails, s stays broken and its
// keys stay listed, so the next operation tries again.
func (b *Backend) reopenLocked(s *session) error {
	if !s.broken {
		b.lib.CloseSession(s.h) // its key handles go with it
	}
	s.broken = true
	h, err := b.lib.OpenSession(b.part, b.cfg.creds, nil)
	if err != nil {
		return deviceError("opening a new session", err)
	}
	s.h = h
	reload := func(k *openKey) error {
		var priv, pub devapi.Handle
		var err error
		if isPair(k.kind) {
			priv, pub, err = b.lib.UnmaskPair(s.h, k.kind, k.blob)
		} else {
			priv, err = b.lib.Unmask(s.h, k.kind, k.blob)
		}
		if err == nil {
			k.priv, k.pub = priv, pub
		}
		return err
	}
	var failed error
	try := func(k *openKey) bool {
		if failed != nil {
			return true
		}
		err := reload(k)
		if st, ok := devapi.StatusOf(err); ok && st.Transient() {
			failed = deviceError("reloading the keys into the new session", err)
			return true
		}
		return err == nil
	}
	for _, k := range b.keys {
		if k.sess != s {
			continue
		}
		if s.app != "" {
			k.lost = true // bound to the closed session by the device
			continue
		}
		if !try(k) {
			delete(b.keys, k.name) // the device refuses it now: opened again on next use
		}
	}
	if s == b.main && b.unwrap != nil && !try(b.unwrap) {
		b.unwrap = nil // a new import key is made on next use
	}
	if failed != nil {
		b.lib.CloseSession(s.h)
		return failed
	}
	s.broken = false
	return nil
}

// sessionFor returns the device session for an application session (the
// main one for ""), opening it on first use. Caller holds b.mu.
func (b *Backend) sessionForLocked(app string) (*session, error) {
	if app == "" {
		return b.main, nil
	}
	if s := b.apps[app]; s != nil {
		return s, nil
	}
	h, err := b.lib.OpenSession(b.part, b.cfg.creds, nil)
	if err != nil {
		return nil, deviceError("opening a session for an application session", err)
	}
	s := &session{h: h, app: app}
	b.apps[app] = s
	return s, nil
}

// appSession opens (under the write lock) the device session of app.
func (b *Backend) appSession(app string) (*session, error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lib == nil {
		return nil, core.Errorf(core.KindUnavailable, "Integrated HSM: the device was closed")
	}
	return b.sessionForLocked(app)
}

// EndSession closes an application's device session: the device deletes
// its session keys, and their blobs no longer unmask anywhere.
func (b *Backend) EndSession(ctx context.Context, app string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.apps[app]
	if s == nil {
		return nil
	}
	delete(b.apps, app)
	for name, k := range b.keys {
		if k.sess == s {
			delete(b.keys, name)
		}
	}
	for name, a := range b.appBlobs {
		if a == app {
			delete(b.appBlobs, name)
		}
	}
	if b.lib != nil && !s.broken {
		if err := b.lib.CloseSession(s.h); err != nil {
			return deviceError("closing an application's session", err)
		}
	}
	return nil
}

func blobName(blob []byte) string {
	sum := sha256.Sum256(blob)
	return hex.EncodeToString(sum[:16])
}

// key finds an open key by its KeyID. Caller holds b.mu.
func (b *Backend) keyLocked(id core.KeyID) (*openKey, error) {
	k := b.keys[id.Name]
	if id.Namespace != core.MaskedNamespace || k == nil || (id.Version != "" && id.Version != id.Name) {
		return nil, core.Errorf(core.KindNotFound, "masked key handle %s is not open in the Integrated HSM backend (was it restarted?); open the masked key again", id.Name)
	}
	if k.lost {
		return nil, core.Errorf(core.KindUnavailable, "session key %s was lost: the device had to open its session again after a fault, and a session key lives only in the session that made it", id)
	}
	return k, nil
}

// deviceError gives a device error hsmbridge's kind and a message that
// says what was being done.
func deviceError(what string, err error) error {
	return keyError(what, core.KeyID{}, "", err)
}

// keyError is deviceError for an operation op on key id.
func keyError(what string, id core.KeyID, op string, err error) error {
	if err == nil {
		return nil
	}
	if r := refusal(err, id, op); r != nil {
		return r
	}
	var ce *core.Error
	if errors.As(err, &ce) && errors.Is(err, ce) && ce.Err == nil {
		return err
	}
	return &core.Error{Kind: kindOf(err), Message: what + ": " + err.Error(), Err: err}
}

// refusal words a device refusal the way hsmbridge's other backends word
// the same refusal, keeping the device's status as the cause: the device
// decides, the message says what it decided.
func refusal(err error, id core.KeyID, op string) error {
	st, ok := devapi.StatusOf(err)
	if !ok {
		return nil
	}
	switch st {
	case devapi.StatusUnsupportedKeyOperation:
		return &core.Error{Kind: core.KindOperationNotAllowed, Err: err,
			Message: fmt.Sprintf("key %s does not allow %s (the device refused: %v)", id, op, err)}
	case devapi.StatusInvalidSession:
		return &core.Error{Kind: core.KindOperationNotAllowed, Err: err,
			Message: fmt.Sprintf("session key: its session has ended (a session key works only in the session that made it; the device refused: %v)", err)}
	}
	return nil
}

var kindSentinels = []*core.Error{core.ErrInvalidInput, core.ErrNotFound, core.ErrOperationNotAllowed, core.ErrUnsupported,
	core.ErrUnavailable, core.ErrUnauthenticated, core.ErrPermissionDenied, core.ErrAlreadyExists, core.ErrInvalidReference}

func kindOf(err error) core.ErrorKind {
	for _, k := range kindSentinels {
		if errors.Is(err, k) {
			return k.Kind
		}
	}
	return core.KindInternal
}
