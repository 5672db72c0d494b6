package mhsm

import (
	"context"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/hsmbridge/hsmbridge/core"
)

var signatureHashes = []core.Hash{core.SHA256, core.SHA384, core.SHA512}

// SignatureSchemes are the service's RS*, PS* and ES* algorithms; ES256K
// is ecdsa-sha256 on a P-256K key (Sign picks the algorithm by curve).
func (b *Backend) SignatureSchemes() []string {
	var names []string
	for _, p := range []core.SignaturePadding{core.PaddingPKCS1v15, core.PaddingPSS, core.PaddingECDSA} {
		for _, h := range signatureHashes {
			names = append(names, core.SignatureScheme{Padding: p, Hash: h}.Name())
		}
	}
	return names
}

// EncryptionSchemes are RSA1_5, RSA-OAEP (SHA-1) and RSA-OAEP-256.
func (b *Backend) EncryptionSchemes() []string {
	return []string{
		core.EncryptionScheme{Padding: core.EncryptionPKCS1v15}.Name(),
		core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA1}.Name(),
		core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256}.Name(),
	}
}

// signAlgorithm maps a scheme to the service's algorithm, refusing what the
// service cannot do: it signs PSS with salt = digest length and MGF1 with
// the signature digest only.
func signAlgorithm(s core.SignatureScheme) (azkeys.SignatureAlgorithm, error) {
	names := map[core.SignaturePadding]string{core.PaddingPKCS1v15: "RS", core.PaddingPSS: "PS", core.PaddingECDSA: "ES"}
	prefix, ok := names[s.Padding]
	bits := map[core.Hash]string{core.SHA256: "256", core.SHA384: "384", core.SHA512: "512"}[s.Hash]
	if !ok || bits == "" {
		return "", core.Errorf(core.KindUnsupported, "mhsm: signature scheme %s is not supported by Managed HSM (RS256/384/512, PS256/384/512, ES256/384/512)", s.Name())
	}
	if s.Padding == core.PaddingPSS {
		if s.SaltLength != s.Hash.Size() {
			return "", core.Errorf(core.KindUnsupported, "mhsm: Managed HSM signs PSS with a %d-byte salt (the digest length) only, not %d", s.Hash.Size(), s.SaltLength)
		}
		if s.EffectiveMGF1() != s.Hash {
			return "", core.Errorf(core.KindUnsupported, "mhsm: Managed HSM signs PSS with MGF1 over the signature digest (%s) only, not %s", s.Hash, s.EffectiveMGF1())
		}
	}
	return azkeys.SignatureAlgorithm(prefix + bits), nil
}

// curveHash is the one digest Managed HSM signs with on each curve.
var curveHash = map[core.Curve]core.Hash{core.CurveP256: core.SHA256, core.CurveP256K: core.SHA256, core.CurveP384: core.SHA384, core.CurveP521: core.SHA512}

// Sign signs a digest. ECDSA signatures come back as raw r||s and are
// returned DER-encoded, as crypto.Signer returns them.
func (b *Backend) Sign(ctx context.Context, id core.KeyID, digest []byte, scheme core.SignatureScheme) ([]byte, error) {
	if err := checkID(id, true); err != nil {
		return nil, err
	}
	alg, err := signAlgorithm(scheme)
	if err != nil {
		return nil, err
	}
	c, err := b.client(id.Namespace)
	if err != nil {
		return nil, err
	}
	info, err := b.usable(ctx, c, id, core.UsageSign)
	if err != nil {
		return nil, err
	}
	if err := scheme.CheckFor(info, digest); err != nil {
		return nil, err
	}
	if info.Type == core.KeyTypeEC && curveHash[info.Curve] != scheme.Hash {
		return nil, core.Errorf(core.KindUnsupported, "mhsm: Managed HSM signs with %s keys using %s only, not %s", info.Curve, curveHash[info.Curve], scheme.Hash)
	}
	if info.Curve == core.CurveP256K {
		alg = azkeys.SignatureAlgorithmES256K // each ES algorithm names its curve: ES256 is P-256's
	}
	var resp azkeys.SignResponse
	err = c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = c.kc.Sign(ctx, id.Name, info.ID.Version, azkeys.SignParameters{Algorithm: to.Ptr(alg), Value: digest}, nil)
		return err
	})
	if err != nil {
		return nil, b.mapErr(c, "signing with", info.ID, err)
	}
	if info.Type != core.KeyTypeEC {
		if len(resp.Result) != (info.Bits+7)/8 {
			return nil, core.Errorf(core.KindInternal, "mhsm: signing with %s: the service returned %d bytes for a %d-bit key", info.ID, len(resp.Result), info.Bits)
		}
		return resp.Result, nil
	}
	return rawToDER(resp.Result, (info.Bits+7)/8)
}

// rawToDER turns JWS's r||s into an ECDSA-Sig-Value.
func rawToDER(raw []byte, size int) ([]byte, error) {
	if len(raw) != 2*size {
		return nil, core.Errorf(core.KindInternal, "mhsm: the service returned a %d-byte ECDSA signature, want %d", len(raw), 2*size)
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:size]), new(big.Int).SetBytes(raw[size:])})
	if err != nil {
		return nil, core.Errorf(core.KindInternal, "mhsm: encoding ECDSA signature: %v", err)
	}
	return der, nil
}

// encryptionAlgorithm maps a scheme to the service's algorithm: RSA-OAEP is
// SHA-1 throughout, RSA-OAEP-256 SHA-256; labels cannot be given.
func encryptionAlgorithm(s core.EncryptionScheme) (azkeys.EncryptionAlgorithm, error) {
	switch s.Padding {
	case core.EncryptionPKCS1v15:
		return azkeys.EncryptionAlgorithmRSA15, nil
	case core.EncryptionOAEP:
		if len(s.Label) > 0 {
			return "", core.Errorf(core.KindUnsupported, "mhsm: Managed HSM does not take an OAEP label")
		}
		mgf := s.MGF1Hash
		if mgf == core.HashUnspecified {
			mgf = s.OAEPHash
		}
		switch {
		case s.OAEPHash == core.SHA1 && mgf == core.SHA1:
			return azkeys.EncryptionAlgorithmRSAOAEP, nil
		case s.OAEPHash == core.SHA256 && mgf == core.SHA256:
			return azkeys.EncryptionAlgorithmRSAOAEP256, nil
		}
		return "", core.Errorf(core.KindUnsupported, "mhsm: OAEP with %s (MGF1 %s) is not supported by Managed HSM (RSA-OAEP is SHA-1, RSA-OAEP-256 SHA-256)", s.OAEPHash, mgf)
	}
	return "", core.Errorf(core.KindUnsupported, "mhsm: encryption scheme %s is not supported (RSA1_5, RSA-OAEP, RSA-OAEP-256)", s.Name())
}

// Decrypt decrypts an RSA ciphertext inside the HSM.
func (b *Backend) Decrypt(ctx context.Context, id core.KeyID, ciphertext []byte, scheme core.EncryptionScheme) ([]byte, error) {
	if err := checkID(id, true); err != nil {
		return nil, err
	}
	alg, err := encryptionAlgorithm(scheme)
	if err != nil {
		return nil, err
	}
	c, err := b.client(id.Namespace)
	if err != nil {
		return nil, err
	}
	info, err := b.usable(ctx, c, id, core.UsageDecrypt)
	if err != nil {
		return nil, err
	}
	if info.Type != core.KeyTypeRSA {
		return nil, core.Errorf(core.KindInvalidInput, "%s needs an RSA key, key %s is %s", scheme.Name(), info.ID, info.Type)
	}
	if size := (info.Bits + 7) / 8; len(ciphertext) != size {
		return nil, core.Errorf(core.KindInvalidInput, "ciphertext is %d bytes, key %s needs %d", len(ciphertext), info.ID, size)
	}
	var resp azkeys.DecryptResponse
	err = c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = c.kc.Decrypt(ctx, id.Name, info.ID.Version, azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: ciphertext}, nil)
		return err
	})
	if err != nil {
		mapped := b.mapErr(c, "decrypting with", info.ID, err)
		if core.KindOf(mapped) == core.KindInvalidInput {
			// Say nothing more precise: which check failed is an oracle.
			return nil, core.Errorf(core.KindInvalidInput, "decryption with key %s failed", info.ID)
		}
		return nil, mapped
	}
	return resp.Result, nil
}

// Key-wrapping algorithms: AES key wrap (RFC 3394; _PAD is RFC 5649) with
// oct keys, and the RSA encryption algorithms with RSA keys.
var wrapAlgorithms = map[azkeys.EncryptionAlgorithm]core.KeyType{
	azkeys.EncryptionAlgorithmA128KW:           core.KeyTypeOct,
	azkeys.EncryptionAlgorithmA192KW:           core.KeyTypeOct,
	azkeys.EncryptionAlgorithmA256KW:           core.KeyTypeOct,
	azkeys.EncryptionAlgorithmCKMAESKEYWRAP:    core.KeyTypeOct,
	azkeys.EncryptionAlgorithmCKMAESKEYWRAPPAD: core.KeyTypeOct,
	azkeys.EncryptionAlgorithmRSA15:            core.KeyTypeRSA,
	azkeys.EncryptionAlgorithmRSAOAEP:          core.KeyTypeRSA,
	azkeys.EncryptionAlgorithmRSAOAEP256:       core.KeyTypeRSA,
}

// WrapAlgorithms lists the algorithms WrapKey and UnwrapKey accept.
func WrapAlgorithms() []string {
	return []string{"A128KW", "A192KW", "A256KW", "CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD", "RSA1_5", "RSA-OAEP", "RSA-OAEP-256"}
}

// WrapKey encrypts key material with a key in the HSM (wrapKey), the
// ports.KeyWrapper way.
func (b *Backend) WrapKey(ctx context.Context, id core.KeyID, plaintext []byte, alg core.WrapAlgorithm) ([]byte, error) {
	return b.wrap(ctx, id, string(alg), plaintext, true)
}

// UnwrapKey decrypts what WrapKey made (unwrapKey).
func (b *Backend) UnwrapKey(ctx context.Context, id core.KeyID, wrapped []byte, alg core.WrapAlgorithm) ([]byte, error) {
	return b.wrap(ctx, id, string(alg), wrapped, false)
}

func (b *Backend) wrap(ctx context.Context, id core.KeyID, alg string, data []byte, wrap bool) ([]byte, error) {
	if err := checkID(id, true); err != nil {
		return nil, err
	}
	a := azkeys.EncryptionAlgorithm(alg)
	typ, ok := wrapAlgorithms[a]
	if !ok {
		return nil, core.Errorf(core.KindUnsupported, "mhsm: key wrap algorithm %q is not supported (%s)", alg, strings.Join(WrapAlgorithms(), ", "))
	}
	if len(data) == 0 {
		return nil, core.Errorf(core.KindInvalidInput, "mhsm: nothing to wrap or unwrap")
	}
	usage, op := core.UsageWrapKey, "wrapping with"
	if !wrap {
		usage, op = core.UsageUnwrapKey, "unwrapping with"
	}
	c, err := b.client(id.Namespace)
	if err != nil {
		return nil, err
	}
	info, err := b.usable(ctx, c, id, usage)
	if err != nil {
		return nil, err
	}
	if info.Type != typ {
		return nil, core.Errorf(core.KindInvalidInput, "mhsm: %s needs a key of type %s, key %s is %s", alg, typ, info.ID, info.Type)
	}
	params := azkeys.KeyOperationParameters{Algorithm: to.Ptr(a), Value: data}
	var result []byte
	err = c.call(ctx, func(ctx context.Context) error {
		if wrap {
			resp, err := c.kc.WrapKey(ctx, id.Name, info.ID.Version, params, nil)
			result = resp.Result
			return err
		}
		resp, err := c.kc.UnwrapKey(ctx, id.Name, info.ID.Version, params, nil)
		result = resp.Result
		return err
	})
	bits := core.WrapAlgorithm(alg).AESKeyBits()
	if err != nil {
		if bits != 0 && info.Bits == 0 {
			// The size is unknown here, so the service judged the
			// algorithm against the key; say what to do if it refused.
			return nil, wrongSizeHint(b.mapErr(c, op, info.ID, err), alg)
		}
		return nil, b.mapErr(c, op, info.ID, err)
	}
	if bits != 0 && info.Bits == 0 {
		// The service took AnnnKW: the key has n bits. Managed HSM never
		// says an oct key's size, so this is how the backend learns it.
		info.Bits = bits
		b.remember(info)
	}
	return result, nil
}

// wrongSizeHint adds, to a refusal of A128KW/A192KW/A256KW on an AES key
// of unknown size, that CKM_AES_KEY_WRAP needs no size.
func wrongSizeHint(err error, alg string) error {
	var ce *core.Error
	if !errors.As(err, &ce) || ce.Kind != core.KindInvalidInput {
		return err
	}
	if ce.Message == "" {
		return err
	}
	return &core.Error{Kind: ce.Kind, Err: ce.Err, Message: ce.Message + " (" + alg + " needs an AES key of exactly that size; CKM_AES_KEY_WRAP is the same RFC 3394 wrap with a key of any size)"}
}

// maxRandom bounds one Random call, as the host does; the service gives at
// most rngChunk bytes per request.
const (
	maxRandom = 64 << 10
	rngChunk  = 128
)

// Random draws n bytes from the HSM's RNG (/rng): the first HSM of the hsms
// setting, or the one endpoint when it names no {hsm}.
func (b *Backend) Random(ctx context.Context, n int) ([]byte, error) {
	if n < 0 || n > maxRandom {
		return nil, core.Errorf(core.KindInvalidInput, "random: %d bytes asked, between 0 and %d allowed", n, maxRandom)
	}
	b.mu.RLock()
	var hsm string
	remember := true
	if len(b.cfg.hsms) > 0 {
		hsm = b.cfg.hsms[0]
	} else if !strings.Contains(b.cfg.endpoint, "{hsm}") {
		// One fixed endpoint: its host names it in messages, but it is not
		// an HSM name to list keys under.
		if u, err := url.Parse(b.cfg.endpoint); err == nil {
			hsm, remember = u.Hostname(), false
		}
	}
	b.mu.RUnlock()
	if hsm == "" {
		return nil, core.Errorf(core.KindInvalidInput, "mhsm: random bytes: which HSM? name it first in the backend's %s setting (e.g. hsms = \"MyHSM\")", SettingHSMs)
	}
	c, err := b.clientFor(hsm, remember)
	if err != nil {
		return nil, err
	}
	out := make([]byte, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 8)
	for off := 0; off < n; off += rngChunk {
		count := min(rngChunk, n-off)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var resp azkeys.GetRandomBytesResponse
			err := c.call(ctx, func(ctx context.Context) (err error) {
				resp, err = c.kc.GetRandomBytes(ctx, azkeys.GetRandomBytesParameters{Count: to.Ptr(int32(count))}, nil)
				return err
			})
			if err == nil && len(resp.Value) != count {
				err = core.Errorf(core.KindInternal, "mhsm: /rng returned %d bytes, %d asked", len(resp.Value), count)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = b.mapErr(c, "drawing random bytes from", core.KeyID{}, err)
				}
				return
			}
			copy(out[off:], resp.Value)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}
