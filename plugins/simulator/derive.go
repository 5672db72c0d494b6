package simulator

import (
	"context"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/x509"
	"encoding/json"
	"hash"

	"github.com/hsmbridge/hsmbridge/core"
)

// Key agreement, derivation and MACs, the Integrated HSM's chain: an ECDH
// secret never leaves the backend in clear; HKDF or KBKDF (kbkdf.go) turns
// it into an AES or HMAC key, masked again; the HMAC key MACs only with its
// own hash.

// Agree runs ECDH between a deriveKey (keyAgreement) EC key and the peer's
// public key, and returns the shared secret masked.
func (b *Backend) Agree(ctx context.Context, id core.KeyID, peerPublicKeyDER []byte) (core.MaskedKey, error) {
	v, err := b.usable(id, core.UsageDeriveKey)
	if err != nil {
		return nil, err
	}
	if v.info.Type != core.KeyTypeEC {
		return nil, core.Errorf(core.KindInvalidInput, "ECDH needs an EC key, key %s is %s", v.info.ID, v.info.Type)
	}
	if v.info.Curve == core.CurveP256K {
		return nil, core.Errorf(core.KindUnsupported, "simulator: ECDH on P-256K (key %s) is not supported (P-256, P-384 or P-521)", v.info.ID)
	}
	pub, err := x509.ParsePKIXPublicKey(peerPublicKeyDER)
	peer, ok := pub.(*ecdsa.PublicKey)
	if err != nil || !ok {
		return nil, core.Errorf(core.KindInvalidInput, "the peer key is not an EC public key")
	}
	priv, err := v.private()
	if err != nil {
		return nil, err
	}
	mine, ok := priv.(*ecdsa.PrivateKey)
	if !ok {
		return nil, core.Errorf(core.KindInternal, "simulator: key %s is not an ECDSA key", v.info.ID)
	}
	if peer.Curve != mine.Curve {
		return nil, core.Errorf(core.KindInvalidInput, "the peer key is on %s, key %s on %s", peer.Curve.Params().Name, v.info.ID, mine.Curve.Params().Name)
	}
	a, err := mine.ECDH()
	if err != nil {
		return nil, core.Errorf(core.KindInternal, "simulator: %w", err)
	}
	p, err := peer.ECDH()
	if err != nil {
		return nil, core.Errorf(core.KindInvalidInput, "the peer key is not a valid point: %v", err)
	}
	z, err := a.ECDH(p)
	if err != nil {
		return nil, core.Errorf(core.KindInvalidInput, "ECDH failed: %v", err)
	}
	defer clear(z)
	blob, _, err := b.seal(&maskedPayload{Type: core.KeyTypeSecret, Bits: len(z) * 8, Usages: []core.KeyUsage{core.UsageDeriveKey},
		Secret: z, Session: v.session, From: "ECDH with " + v.info.ID.String()})
	return blob, err
}

// Derive runs HKDF (RFC 5869, extract and expand) or KBKDF (SP 800-108
// counter mode, HMAC PRF; Salt is the label, Info the context) over a
// masked secret and returns the derived key masked.
func (b *Backend) Derive(ctx context.Context, params core.DeriveParams) (core.MaskedKey, error) {
	var name string
	var kdf func(h func() hash.Hash, secret, salt, info []byte, n int) ([]byte, error)
	switch params.KDF {
	case "hkdf":
		name = "HKDF"
		kdf = func(h func() hash.Hash, secret, salt, info []byte, n int) ([]byte, error) {
			return hkdf.Key(h, secret, salt, string(info), n)
		}
	case "kbkdf":
		name, kdf = "KBKDF", kbkdfCounter
	default:
		return nil, core.Errorf(core.KindUnsupported, "KDF %q is not supported (hkdf or kbkdf)", params.KDF)
	}
	if params.Hash != core.SHA256 && params.Hash != core.SHA384 && params.Hash != core.SHA512 {
		return nil, core.Errorf(core.KindUnsupported, "%s with %s is not supported (SHA256, SHA384 or SHA512)", name, params.Hash)
	}
	in, err := b.openBlob(params.Input)
	if err != nil {
		return nil, err
	}
	defer clear(in.Secret)
	if len(in.Secret) == 0 || !containsUsage(in.Usages, core.UsageDeriveKey) {
		return nil, core.Errorf(core.KindOperationNotAllowed, "the input key does not allow key derivation (it must be an ECDH secret or allow deriveKey)")
	}
	out := &maskedPayload{Session: in.Session, Bits: params.OutputBits, From: name + "-" + params.Hash.String()}
	switch params.OutputType {
	case "aes":
		if params.OutputBits != 128 && params.OutputBits != 192 && params.OutputBits != 256 {
			return nil, core.Errorf(core.KindInvalidInput, "an AES key has 128, 192 or 256 bits, not %d", params.OutputBits)
		}
		out.Type = core.KeyTypeOct
		out.Usages = []core.KeyUsage{core.UsageEncrypt, core.UsageDecrypt, core.UsageWrapKey, core.UsageUnwrapKey}
	case "hmac":
		if params.OutputBits != params.Hash.Size()*8 {
			return nil, core.Errorf(core.KindInvalidInput, "an HMAC-%s key has %d bits, not %d", params.Hash, params.Hash.Size()*8, params.OutputBits)
		}
		out.Type, out.HMACHash = core.KeyTypeHMAC, params.Hash.String()
		out.Usages = []core.KeyUsage{core.UsageSign, core.UsageVerify}
	default:
		return nil, core.Errorf(core.KindInvalidInput, "derived key type %q is not aes or hmac", params.OutputType)
	}
	out.Secret, err = kdf(params.Hash.Crypto().New, in.Secret, params.Salt, params.Info, params.OutputBits/8)
	if err != nil {
		return nil, core.Errorf(core.KindInvalidInput, "%s: %v", name, err)
	}
	defer clear(out.Secret)
	blob, _, err := b.seal(out)
	return blob, err
}

// MAC computes an HMAC with an HMAC key, with its own hash only.
func (b *Backend) MAC(ctx context.Context, id core.KeyID, hash core.Hash, data []byte) ([]byte, error) {
	v, err := b.usable(id, core.UsageSign)
	if err != nil {
		return nil, err
	}
	if v.info.Type != core.KeyTypeHMAC {
		return nil, core.Errorf(core.KindInvalidInput, "key %s is %s, not an HMAC key", v.info.ID, v.info.Type)
	}
	if hash != v.hmacHash {
		return nil, core.Errorf(core.KindInvalidInput, "key %s is an HMAC-%s key; the MAC digest must be %s, not %s", v.info.ID, v.hmacHash, v.hmacHash, hash)
	}
	m := hmac.New(hash.Crypto().New, v.secret)
	m.Write(data)
	return m.Sum(nil), nil
}

// openBlob opens a blob's payload without making a handle.
func (b *Backend) openBlob(blob core.MaskedKey) (*maskedPayload, error) {
	b.mu.Lock()
	m, err := b.maskingKeyLocked()
	b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	_, plain, err := core.OpenMasked(m.key, m.instance, blob)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	var p maskedPayload
	if err := json.Unmarshal(plain, &p); err != nil {
		return nil, core.Errorf(core.KindInvalidInput, "masked key opened but its contents do not parse")
	}
	if p.Session != "" {
		b.mu.RLock()
		live := b.sessions[p.Session]
		b.mu.RUnlock()
		if !live {
			return nil, core.Errorf(core.KindOperationNotAllowed, "session key: its session has ended (a session key works only while the process that made it runs)")
		}
	}
	return &p, nil
}

func containsUsage(us []core.KeyUsage, u core.KeyUsage) bool {
	for _, x := range us {
		if x == u {
			return true
		}
	}
	return false
}
