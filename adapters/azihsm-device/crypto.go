package azihsmdevice

import (
	"context"
	_ "crypto/sha1" // SignMessage hashes
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/asn1"
	"fmt"
	"math/big"
	"slices"

	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
	"github.com/hsmbridge/hsmbridge/core"
)

// withKey runs fn on an open key, recovering once from a device fault.
func (b *Backend) withKey(id core.KeyID, fn func(k *openKey) error) error {
	return b.run(func() (*session, error) {
		k, err := b.keyLocked(id)
		if err != nil {
			return nil, err
		}
		k.used.Store(b.clock.Add(1))
		return k.sess, fn(k)
	})
}

func hashAlgo(h core.Hash) (devapi.AlgoID, devapi.MGF1, error) {
	switch h {
	case core.SHA1:
		return devapi.AlgoSHA1, devapi.MGF1SHA1, nil
	case core.SHA256:
		return devapi.AlgoSHA256, devapi.MGF1SHA256, nil
	case core.SHA384:
		return devapi.AlgoSHA384, devapi.MGF1SHA384, nil
	case core.SHA512:
		return devapi.AlgoSHA512, devapi.MGF1SHA512, nil
	}
	return 0, 0, core.Errorf(core.KindUnsupported, "the Integrated HSM has no %s", h)
}

func hmacAlgo(h core.Hash) (devapi.AlgoID, devapi.KeyKind, error) {
	switch h {
	case core.SHA256:
		return devapi.AlgoHMACSHA256, devapi.KindHMACSHA256, nil
	case core.SHA384:
		return devapi.AlgoHMACSHA384, devapi.KindHMACSHA384, nil
	case core.SHA512:
		return devapi.AlgoHMACSHA512, devapi.KindHMACSHA512, nil
	}
	return 0, 0, core.Errorf(core.KindUnsupported, "the Integrated HSM has HMAC with SHA256, SHA384 and SHA512, not %s", h)
}

func pkcs1Algo(h core.Hash) (devapi.AlgoID, error) {
	switch h {
	case core.SHA1:
		return devapi.AlgoRSAPKCS1SHA1, nil
	case core.SHA256:
		return devapi.AlgoRSAPKCS1SHA256, nil
	case core.SHA384:
		return devapi.AlgoRSAPKCS1SHA384, nil
	case core.SHA512:
		return devapi.AlgoRSAPKCS1SHA512, nil
	}
	return 0, core.Errorf(core.KindUnsupported, "the Integrated HSM has no RSA PKCS#1 v1.5 signature with %s", h)
}

// Sign signs a digest: ECDSA (the device's raw r‖s becomes DER) and PSS.
// The device signs PKCS#1 v1.5 only over a message it hashes itself
// (SignMessage), so a bare digest with that padding is refused.
func (b *Backend) Sign(ctx context.Context, id core.KeyID, digest []byte, scheme core.SignatureScheme) ([]byte, error) {
	var algo devapi.Algo
	switch scheme.Padding {
	case core.PaddingECDSA:
		algo = devapi.Algo{ID: devapi.AlgoECDSA}
	case core.PaddingPSS:
		h, _, err := hashAlgo(scheme.Hash)
		if err != nil {
			return nil, err
		}
		_, mgf, err := hashAlgo(scheme.EffectiveMGF1())
		if err != nil {
			return nil, err
		}
		algo = devapi.Algo{ID: devapi.AlgoRSAPSS, Params: &devapi.PSSParams{Hash: h, MGF1: mgf, SaltLen: uint32(scheme.SaltLength)}}
	}
	var sig []byte
	err := b.withKey(id, func(k *openKey) error {
		// The request must fit the key (family, digest length): the device
		// is given only well-formed requests, and decides the rest.
		if err := scheme.CheckFor(k.info, digest); err != nil {
			return err
		}
		if scheme.Padding == core.PaddingPKCS1v15 {
			return core.Errorf(core.KindUnsupported, "key %s: the Integrated HSM signs RSA PKCS#1 v1.5 only over the whole message, which it hashes itself; "+
				"a pre-hashed digest (openssl pkeyutl -sign) cannot be signed: use openssl dgst -sign, or PSS", id)
		}
		var err error
		sig, err = b.lib.Sign(algo, k.priv, digest)
		if err == nil && scheme.Padding == core.PaddingECDSA {
			sig, err = ecdsaDER(sig)
		}
		return err
	})
	return sig, keyError("key "+id.String()+": the Integrated HSM did not sign", id, "sign", err)
}

// SignMessage signs a whole message. PKCS#1 v1.5 streams it through the
// device's hash-and-sign; the other schemes hash here and sign the digest.
func (b *Backend) SignMessage(ctx context.Context, id core.KeyID, message []byte, scheme core.SignatureScheme) ([]byte, error) {
	if scheme.Padding != core.PaddingPKCS1v15 {
		h := scheme.Hash.Crypto()
		if !h.Available() {
			return nil, core.Errorf(core.KindUnsupported, "signature scheme %s", scheme.Name())
		}
		m := h.New()
		m.Write(message)
		return b.Sign(ctx, id, m.Sum(nil), scheme)
	}
	algo, err := pkcs1Algo(scheme.Hash)
	if err != nil {
		return nil, err
	}
	var sig []byte
	err = b.withKey(id, func(k *openKey) error {
		var err error
		sig, err = b.lib.SignStream(devapi.Algo{ID: algo}, k.priv, message)
		return err
	})
	return sig, keyError("key "+id.String()+": the Integrated HSM did not sign", id, "sign", err)
}

// ecdsaDER turns the device's fixed-width r‖s into an ECDSA-Sig-Value.
func ecdsaDER(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 {
		return nil, core.Errorf(core.KindInternal, "the device returned a %d-byte ECDSA signature", len(raw))
	}
	n := len(raw) / 2
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:n]), new(big.Int).SetBytes(raw[n:])})
}

// Decrypt decrypts with an RSA keyEncipherment key: OAEP or PKCS#1 v1.5.
func (b *Backend) Decrypt(ctx context.Context, id core.KeyID, ciphertext []byte, scheme core.EncryptionScheme) ([]byte, error) {
	var algo devapi.Algo
	switch scheme.Padding {
	case core.EncryptionOAEP:
		h, _, err := hashAlgo(scheme.OAEPHash)
		if err != nil {
			return nil, err
		}
		mh := scheme.MGF1Hash
		if mh == 0 {
			mh = scheme.OAEPHash
		}
		_, mgf, err := hashAlgo(mh)
		if err != nil {
			return nil, err
		}
		algo = devapi.Algo{ID: devapi.AlgoRSAOAEP, Params: &devapi.OAEPParams{Hash: h, MGF1: mgf, Label: scheme.Label}}
	case core.EncryptionPKCS1v15:
		algo = devapi.Algo{ID: devapi.AlgoRSAPKCS1}
	default:
		return nil, core.Errorf(core.KindUnsupported, "encryption scheme %s", scheme.Name())
	}
	var plain []byte
	err := b.withKey(id, func(k *openKey) error {
		var err error
		plain, err = b.lib.Decrypt(algo, k.priv, ciphertext)
		return err
	})
	return plain, keyError("key "+id.String()+": the Integrated HSM did not decrypt", id, "decrypt", err)
}

// secretProps are the properties of a derived secret in session s.
func secretProps(s *session, kind devapi.KeyKind, bits int, usage ...devapi.KeyPropID) []devapi.KeyProp {
	p := []devapi.KeyProp{devapi.U32(devapi.PropClass, uint32(devapi.ClassSecret)), devapi.U32(devapi.PropKind, uint32(kind))}
	if bits > 0 {
		p = append(p, devapi.U32(devapi.PropBitLen, uint32(bits)))
	}
	for _, u := range usage {
		p = append(p, devapi.Bool(u, true))
	}
	if s.app != "" {
		p = append(p, devapi.Bool(devapi.PropSession, true))
	}
	return p
}

// maskAndDelete reads a transient key's blob and deletes its handle.
func (b *Backend) maskAndDelete(h devapi.Handle) ([]byte, error) {
	defer b.lib.DeleteKey(h)
	return b.lib.KeyProperty(h, devapi.PropMaskedKey)
}

// Agree runs ECDH in the device with a keyAgreement key; the shared secret
// stays in the device and comes back masked.
func (b *Backend) Agree(ctx context.Context, id core.KeyID, peerPublicKeyDER []byte) (core.MaskedKey, error) {
	var blob []byte
	var app string
	err := b.withKey(id, func(k *openKey) error {
		h, err := b.lib.Derive(k.sess.h, devapi.Algo{ID: devapi.AlgoECDH, Params: &devapi.ECDHParams{PeerPublicKeyDER: peerPublicKeyDER}},
			k.priv, secretProps(k.sess, devapi.KindSharedSecret, k.info.Bits, devapi.PropDerive)) // the secret has the curve's size
		if err != nil {
			return err
		}
		blob, err = b.maskAndDelete(h)
		app = k.sess.app
		return err
	})
	if err != nil {
		return nil, keyError("key "+id.String()+": the Integrated HSM did not run ECDH", id, "deriveKey", err)
	}
	b.noteAppBlob(blob, app)
	return blob, nil
}

// noteAppBlob records that a blob was made in an application's session, so
// that it is opened there.
func (b *Backend) noteAppBlob(blob []byte, app string) {
	if app == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.apps[app] != nil {
		b.appBlobs[blobName(blob)] = app
	}
}

// Derive runs HKDF or KBKDF (SP 800-108 counter mode, HMAC PRF) in the
// device over a masked shared secret and returns the AES or HMAC key masked.
func (b *Backend) Derive(ctx context.Context, params core.DeriveParams) (core.MaskedKey, error) {
	hmacID, _, err := hmacAlgo(params.Hash)
	if err != nil {
		return nil, err
	}
	var algo devapi.Algo
	switch params.KDF {
	case "hkdf", "":
		algo = devapi.Algo{ID: devapi.AlgoHKDF, Params: &devapi.HKDFParams{HMAC: hmacID, Salt: params.Salt, Info: params.Info}}
	case "kbkdf":
		algo = devapi.Algo{ID: devapi.AlgoKBKDFCounter, Params: &devapi.KBKDFParams{HMAC: hmacID, Label: params.Salt, Context: params.Info}}
	default:
		return nil, core.Errorf(core.KindUnsupported, "KDF %q is not offered by the Integrated HSM (hkdf, kbkdf)", params.KDF)
	}
	var kind devapi.KeyKind
	var usage []devapi.KeyPropID
	switch params.OutputType {
	case "aes":
		kind, usage = devapi.KindAES, []devapi.KeyPropID{devapi.PropEncrypt, devapi.PropDecrypt}
	case "hmac":
		// The key's kind follows the KDF's digest; the device checks the size.
		_, kind, _ = hmacAlgo(params.Hash)
		usage = []devapi.KeyPropID{devapi.PropSign, devapi.PropVerify}
	default:
		return nil, core.Errorf(core.KindInvalidInput, "derived key type %q is not aes or hmac", params.OutputType)
	}
	name := blobName(params.Input)
	b.mu.RLock()
	app := b.appBlobs[name]
	b.mu.RUnlock()
	s, err := b.sessionOf(app)
	if err != nil {
		return nil, err
	}
	var blob []byte
	err = b.run(func() (*session, error) {
		base, err := b.lib.Unmask(s.h, devapi.KindSharedSecret, params.Input)
		if st, ok := devapi.StatusOf(err); ok && st == devapi.StatusInvalidKey {
			return s, &core.Error{Kind: core.KindOperationNotAllowed, Err: err, Message: fmt.Sprintf(
				"the input key does not allow key derivation (it must be an ECDH secret; the device refused: %v)", err)}
		}
		if err != nil {
			return s, err
		}
		defer b.lib.DeleteKey(base)
		h, err := b.lib.Derive(s.h, algo, base, secretProps(s, kind, params.OutputBits, usage...))
		if err != nil {
			return s, err
		}
		blob, err = b.maskAndDelete(h)
		return s, err
	})
	if err != nil {
		if st, ok := devapi.StatusOf(err); ok && st == devapi.StatusInvalidKeyProps && params.OutputType == "hmac" && params.OutputBits != params.Hash.Size()*8 {
			return nil, &core.Error{Kind: core.KindInvalidInput, Err: err, Message: fmt.Sprintf(
				"an HMAC-%s key has %d bits, not %d (the device refused: %v)", params.Hash, params.Hash.Size()*8, params.OutputBits, err)}
		}
		if st, ok := devapi.StatusOf(err); ok && st == devapi.StatusUnsupportedKeyOperation {
			return nil, &core.Error{Kind: core.KindOperationNotAllowed, Err: err, Message: fmt.Sprintf(
				"the input key does not allow key derivation (it must be an ECDH secret; the device refused: %v)", err)}
		}
		return nil, keyError("the Integrated HSM did not derive the key", core.KeyID{}, "key derivation", err)
	}
	b.noteAppBlob(blob, app)
	return blob, nil
}

// MAC computes an HMAC in the device with an HMAC key of the same hash.
func (b *Backend) MAC(ctx context.Context, id core.KeyID, hash core.Hash, data []byte) ([]byte, error) {
	algo, _, err := hmacAlgo(hash)
	if err != nil {
		return nil, err
	}
	var mac []byte
	var kind core.Hash
	err = b.withKey(id, func(k *openKey) error {
		var err error
		kind = k.hmacHash
		mac, err = b.lib.Sign(devapi.Algo{ID: algo}, k.priv, data)
		return err
	})
	if err != nil {
		if _, ok := devapi.StatusOf(err); ok && kind != 0 && kind != hash {
			return nil, &core.Error{Kind: core.KindInvalidInput, Err: err, Message: fmt.Sprintf(
				"key %s is an HMAC-%s key; the MAC digest must be %s, not %s (the device refused: %v)", id, kind, kind, hash, err)}
		}
		return nil, keyError("key "+id.String()+": the Integrated HSM did not compute the HMAC", id, "sign", err)
	}
	return slices.Clip(mac), nil
}

// deviceHashes are the hashes the device's signature and OAEP algorithms
// name (it has no SHA-224).
var deviceHashes = []core.Hash{core.SHA1, core.SHA256, core.SHA384, core.SHA512}

// SignatureSchemes: PKCS#1 v1.5 (over the message), PSS and ECDSA with
// each of the device's hashes.
func (b *Backend) SignatureSchemes() []string {
	var names []string
	for _, p := range []core.SignaturePadding{core.PaddingPKCS1v15, core.PaddingPSS, core.PaddingECDSA} {
		for _, h := range deviceHashes {
			names = append(names, core.SignatureScheme{Padding: p, Hash: h}.Name())
		}
	}
	return names
}

// EncryptionSchemes: RSA PKCS#1 v1.5 and OAEP with each of the device's hashes.
func (b *Backend) EncryptionSchemes() []string {
	names := []string{core.EncryptionScheme{Padding: core.EncryptionPKCS1v15}.Name()}
	for _, h := range deviceHashes {
		names = append(names, core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: h}.Name())
	}
	return names
}
