package simulator

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/aeskw"
)

// Masked keys (core/masked.go) are sealed under a masking key that belongs
// to the state directory: <state>/simulator/masking.key holds the 16-byte
// instance id and the 32-byte AES key, mode 0600. A blob made here opens
// only with the same state directory; one from another directory is
// refused as "another backend instance".
//
// An opened blob becomes a key handle in the reserved namespace "@masked"
// (not a valid name for stored keys), kept in memory by this process.

const maskedNamespace = core.MaskedNamespace

type maskingState struct {
	loaded   bool
	instance core.InstanceID
	key      []byte
}

// maskedPayload is the sealed plaintext: the key and its policy.
type maskedPayload struct {
	Type   core.KeyType    `json:"type"`
	Bits   int             `json:"bits"`
	Curve  core.Curve      `json:"curve,omitempty"`
	Usages []core.KeyUsage `json:"usages"`
	PKCS8  []byte          `json:"pkcs8,omitempty"`
	Secret []byte          `json:"secret,omitempty"`
	Public []byte          `json:"spki,omitempty"`
	From   string          `json:"from,omitempty"` // the stored key it was masked from
	// Session, when set, binds the key to an application session: once the
	// session ends the blob no longer opens.
	Session string `json:"session,omitempty"`
	// HMACHash is an HMAC key's kind: the only hash it MACs with.
	HMACHash string `json:"hmac_hash,omitempty"`
}

// maskingKeyLocked loads or, on first use, makes the masking key. The file
// is created exclusively, so two processes sharing a directory agree.
func (b *Backend) maskingKeyLocked() (maskingState, error) {
	if b.masking.loaded {
		return b.masking, nil
	}
	if err := b.open(); err != nil {
		return maskingState{}, err
	}
	path := filepath.Join(b.stateDir, "simulator", "masking.key")
	fresh := make([]byte, 48)
	if _, err := rand.Read(fresh); err != nil {
		return maskingState{}, core.Errorf(core.KindInternal, "simulator: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, werr := f.Write(fresh)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(path)
			return maskingState{}, core.Errorf(core.KindUnavailable, "simulator: writing %s: %w", path, werr)
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return maskingState{}, core.Errorf(core.KindUnavailable, "simulator: creating %s: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil || len(data) != 48 {
		return maskingState{}, core.Errorf(core.KindInternal, "simulator: %s is unreadable or not 48 bytes", path)
	}
	b.masking = maskingState{loaded: true, key: data[16:]}
	copy(b.masking.instance[:], data[:16])
	return b.masking, nil
}

// Mask seals a stored key version for keeping outside the backend.
func (b *Backend) Mask(ctx context.Context, id core.KeyID) (core.MaskedKey, error) {
	v, err := b.resolve(id)
	if err != nil {
		return nil, err
	}
	p := maskedPayload{Type: v.info.Type, Bits: v.info.Bits, Curve: v.info.Curve, Usages: slices.Clone(v.info.Usages),
		PKCS8: v.pkcs8, Secret: v.secret, Public: v.info.PublicKeyDER, From: v.info.ID.String()}
	plain, err := json.Marshal(p)
	if err != nil {
		return nil, core.Errorf(core.KindInternal, "simulator: %w", err)
	}
	defer clear(plain)
	b.mu.Lock()
	m, err := b.maskingKeyLocked()
	b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return core.SealMasked(m.key, m.instance, 0, plain)
}

// Unmask opens a blob made by this state directory and returns a handle to
// the key in it; operations name the handle's KeyID.
func (b *Backend) Unmask(ctx context.Context, blob core.MaskedKey) (core.KeyInfo, error) {
	b.mu.Lock()
	m, err := b.maskingKeyLocked()
	b.mu.Unlock()
	if err != nil {
		return core.KeyInfo{}, err
	}
	_, plain, err := core.OpenMasked(m.key, m.instance, blob)
	if err != nil {
		return core.KeyInfo{}, err
	}
	defer clear(plain)
	var p maskedPayload
	if err := json.Unmarshal(plain, &p); err != nil {
		return core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "masked key opened but its contents do not parse")
	}
	return b.openPayload(blob, &p)
}

// openPayload makes (or finds) the handle of an opened blob.
func (b *Backend) openPayload(blob core.MaskedKey, p *maskedPayload) (core.KeyInfo, error) {
	sum := sha256.Sum256(blob)
	handle := hex.EncodeToString(sum[:16])
	v := &keyVersion{
		info: core.KeyInfo{
			ID:   core.KeyID{Namespace: maskedNamespace, Name: handle, Version: handle},
			Type: p.Type, Bits: p.Bits, Curve: p.Curve, Usages: p.Usages, PublicKeyDER: p.Public, Enabled: true,
		},
		// Copies: callers wipe what they sealed.
		pkcs8:   slices.Clone(p.PKCS8),
		secret:  slices.Clone(p.Secret),
		session: p.Session,
	}
	if p.HMACHash != "" {
		h, err := core.ParseHash(p.HMACHash)
		if err != nil {
			return core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "masked HMAC key of unknown kind %q", p.HMACHash)
		}
		v.hmacHash = h
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.Session != "" && !b.sessions[p.Session] {
		return core.KeyInfo{}, core.Errorf(core.KindOperationNotAllowed,
			"session key: its session has ended (a session key works only while the process that made it runs)")
	}
	if b.masked == nil {
		b.masked = map[string]*keyVersion{}
	}
	if old := b.masked[handle]; old != nil {
		v = old // keep the parsed key
	} else {
		b.masked[handle] = v
	}
	return v.infoCopy(), nil
}

// seal masks a payload and opens it at once, so the caller gets a usable
// handle with the blob.
func (b *Backend) seal(p *maskedPayload) (core.MaskedKey, core.KeyInfo, error) {
	plain, err := json.Marshal(p)
	if err != nil {
		return nil, core.KeyInfo{}, core.Errorf(core.KindInternal, "simulator: %w", err)
	}
	defer clear(plain)
	b.mu.Lock()
	m, err := b.maskingKeyLocked()
	if err == nil && p.Session != "" {
		if b.sessions == nil {
			b.sessions = map[string]bool{}
		}
		b.sessions[p.Session] = true
	}
	b.mu.Unlock()
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	var flags byte
	if p.Session != "" {
		flags |= core.MaskedFlagSession
	}
	blob, err := core.SealMasked(m.key, m.instance, flags, plain)
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	info, err := b.openPayload(blob, p)
	return blob, info, err
}

// payloadFor describes a private key and its policy for sealing.
func payloadFor(priv crypto.Signer, usages []core.KeyUsage, session string) (*maskedPayload, error) {
	s, err := shapeOf(priv)
	if err != nil {
		return nil, err
	}
	return &maskedPayload{Usages: usages, PKCS8: s.pkcs8, Public: s.spki, Session: session,
		Type: s.typ, Bits: s.bits, Curve: s.curve}, nil
}

// GenerateMasked generates an RSA or EC key that exists only masked.
func (b *Backend) GenerateMasked(ctx context.Context, spec core.KeySpec, session string) (core.MaskedKey, core.KeyInfo, error) {
	if err := spec.Validate(); err != nil {
		return nil, core.KeyInfo{}, err
	}
	usages, err := normalizeUsages(spec.Usages)
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	var priv crypto.Signer
	switch spec.Type {
	case core.KeyTypeEC:
		priv, err = generateEC(spec.Curve)
	case core.KeyTypeRSA:
		priv, err = rsa.GenerateKey(rand.Reader, spec.Bits)
	default:
		return nil, core.KeyInfo{}, core.Errorf(core.KindUnsupported, "simulator: masked %s keys are not supported (RSA or EC)", spec.Type)
	}
	if err != nil {
		return nil, core.KeyInfo{}, core.Errorf(core.KindInternal, "simulator: generating key: %w", err)
	}
	p, err := payloadFor(priv, usages, session)
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	return b.seal(p)
}

// importKeyLocked loads or makes the RSA-3072 key imports are wrapped under
// (<state>/simulator/import.key, PKCS#8, mode 0600).
func (b *Backend) importKeyLocked() (*rsa.PrivateKey, error) {
	if b.importKey != nil {
		return b.importKey, nil
	}
	if err := b.open(); err != nil {
		return nil, err
	}
	path := filepath.Join(b.stateDir, "simulator", "import.key")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, gerr := rsa.GenerateKey(rand.Reader, 3072)
		if gerr != nil {
			return nil, core.Errorf(core.KindInternal, "simulator: %w", gerr)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		f, cerr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if cerr == nil {
			_, werr := f.Write(der)
			f.Close()
			if werr != nil {
				os.Remove(path)
				return nil, core.Errorf(core.KindUnavailable, "simulator: writing %s: %w", path, werr)
			}
		} else if !errors.Is(cerr, fs.ErrExist) {
			return nil, core.Errorf(core.KindUnavailable, "simulator: creating %s: %w", path, cerr)
		}
		data, err = os.ReadFile(path) // another process may have won the race
	}
	if err != nil {
		return nil, core.Errorf(core.KindUnavailable, "simulator: reading %s: %w", path, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(data)
	rk, ok := k.(*rsa.PrivateKey)
	if err != nil || !ok {
		return nil, core.Errorf(core.KindInternal, "simulator: %s is not an RSA PKCS#8 key", path)
	}
	b.importKey = rk
	return rk, nil
}

// ImportWrappingKey is the public half of the import key.
func (b *Backend) ImportWrappingKey(ctx context.Context) ([]byte, error) {
	b.mu.Lock()
	k, err := b.importKeyLocked()
	b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return x509.MarshalPKIXPublicKey(&k.PublicKey)
}

// ImportMasked unwraps a CKM_RSA_AES_KEY_WRAP'd PKCS#8 key and masks it.
func (b *Backend) ImportMasked(ctx context.Context, wrapped []byte, spec core.KeySpec, session string) (core.MaskedKey, core.KeyInfo, error) {
	usages, err := normalizeUsages(spec.Usages)
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	b.mu.Lock()
	ik, err := b.importKeyLocked()
	b.mu.Unlock()
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	n := ik.Size()
	failed := core.Errorf(core.KindInvalidInput, "the wrapped key does not unwrap with this backend's import key (%s)", core.ImportWrapAlgorithm)
	if len(wrapped) <= n+8 {
		return nil, core.KeyInfo{}, failed
	}
	aesKey, err := rsa.DecryptOAEP(sha256.New(), nil, ik, wrapped[:n], nil)
	if err != nil || len(aesKey) != 32 {
		return nil, core.KeyInfo{}, failed
	}
	defer clear(aesKey)
	pkcs8, err := aeskw.UnwrapPad(aesKey, wrapped[n:])
	if err != nil {
		return nil, core.KeyInfo{}, failed
	}
	defer clear(pkcs8)
	k, err := parsePKCS8(pkcs8)
	if err != nil {
		return nil, core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "the imported key is not a PKCS#8 private key")
	}
	priv, ok := k.(crypto.Signer)
	if !ok {
		return nil, core.KeyInfo{}, core.Errorf(core.KindUnsupported, "simulator: cannot import a %T key", k)
	}
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if err := (core.KeySpec{Type: core.KeyTypeRSA, Bits: k.N.BitLen(), Usages: usages}).Validate(); err != nil {
			return nil, core.KeyInfo{}, err
		}
	case *ecdsa.PrivateKey:
		if _, err := curveName(k.Curve); err != nil {
			return nil, core.KeyInfo{}, err
		}
	}
	p, err := payloadFor(priv, usages, session)
	if err != nil {
		return nil, core.KeyInfo{}, err
	}
	if err := matchImportSpec(spec, p); err != nil {
		return nil, core.KeyInfo{}, err
	}
	return b.seal(p)
}

// matchImportSpec refuses an imported key that is not what the caller said
// it is (an RSA key imported as -algorithm EC, or 3072 bits under
// rsa_keygen_bits:2048).
func matchImportSpec(spec core.KeySpec, p *maskedPayload) error {
	if spec.Type != "" && spec.Type != p.Type {
		return core.Errorf(core.KindInvalidInput, "the wrapped key is %s, not %s as the request says", p.Type, spec.Type)
	}
	if spec.Bits != 0 && p.Type == core.KeyTypeRSA && spec.Bits != p.Bits {
		return core.Errorf(core.KindInvalidInput, "the wrapped RSA key has %d bits, not %d as the request says (rsa_keygen_bits)", p.Bits, spec.Bits)
	}
	if spec.Curve != "" && p.Type == core.KeyTypeEC && spec.Curve != p.Curve {
		return core.Errorf(core.KindInvalidInput, "the wrapped EC key is on %s, not %s as the request says", p.Curve, spec.Curve)
	}
	return nil
}

// EndSession makes the session's keys unusable: their handles go, and
// their blobs no longer open.
func (b *Backend) EndSession(ctx context.Context, session string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.sessions, session)
	for h, v := range b.masked {
		if v.session == session {
			v.release()
			delete(b.masked, h)
		}
	}
	return nil
}

func (b *Backend) resolveMasked(id core.KeyID) (*keyVersion, error) {
	b.mu.RLock()
	v := b.masked[id.Name]
	b.mu.RUnlock()
	if v == nil || (id.Version != "" && id.Version != id.Name) {
		return nil, core.Errorf(core.KindNotFound, "masked key handle %s is not open in this backend (was it restarted?); open the masked key again", id.Name)
	}
	return v, nil
}
