package simulator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/hsmbridge/hsmbridge/core"
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
	sum := sha256.Sum256(blob)
	handle := hex.EncodeToString(sum[:16])
	v := &keyVersion{
		info: core.KeyInfo{
			ID:   core.KeyID{Namespace: maskedNamespace, Name: handle, Version: handle},
			Type: p.Type, Bits: p.Bits, Curve: p.Curve, Usages: p.Usages, PublicKeyDER: p.Public, Enabled: true,
		},
		pkcs8:  p.PKCS8,
		secret: p.Secret,
	}
	b.mu.Lock()
	if b.masked == nil {
		b.masked = map[string]*keyVersion{}
	}
	if old := b.masked[handle]; old != nil {
		v = old // keep the parsed key
	} else {
		b.masked[handle] = v
	}
	b.mu.Unlock()
	return v.infoCopy(), nil
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
