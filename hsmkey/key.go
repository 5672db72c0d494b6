package hsmkey

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
	"github.com/hsmbridge/hsmbridge/core"
)

// Key is a private key held by hsmhost's backend. Its values come from
// [Open] and [Client.Open]; RSA keys are also [Decrypter]s.
type Key interface {
	// Public is the key's public key: *rsa.PublicKey or *ecdsa.PublicKey.
	crypto.Signer
	// SignContext is Sign bounded by ctx as well as the client's timeout.
	SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error)
	// Reference is the key's canonical reference, pinned to the version
	// Open resolved (every operation names that version).
	Reference() string
	// Backend is the name of the backend hsmhost routes the key to.
	Backend() string
}

// Decrypter is an RSA [Key]: it also decrypts, with *rsa.OAEPOptions for
// OAEP (MGF1 over opts.MGFHash, else opts.Hash; the label), and with nil or
// *rsa.PKCS1v15DecryptOptions for PKCS #1 v1.5. With a SessionKeyLen, as
// TLS 1.2's RSA key exchange asks, a ciphertext the backend refuses yields
// random bytes of that length instead of an error, as in crypto/rsa; only
// an unavailable host is still an error.
type Decrypter interface {
	Key
	crypto.Decrypter
	// DecryptContext is Decrypt bounded by ctx as well as the client's timeout.
	DecryptContext(ctx context.Context, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error)
}

// Open looks the key up in hsmhost (its type, version and public key) and
// returns it; the reference is any form hsmhost takes
// ("managedhsm:MyHSM:mykey", "akv:vault=MyHSM,name=mykey",
// "hsmbridge:<namespace>:<key>", each with an optional version). The key
// must be RSA or EC.
func (c *Client) Open(ctx context.Context, ref string) (Key, error) {
	resp, err := c.do(ctx, ref, &hostapi.Request{Op: &hostapi.Request_GetKey{GetKey: &hostapi.GetKeyRequest{Reference: ref}}})
	if err != nil {
		return nil, err
	}
	info := resp.GetKey()
	if info == nil {
		return nil, unexpected(c.path, resp)
	}
	k := &key{c: c, ref: info.GetReference(), version: info.GetVersion(), backend: info.GetBackend()}
	switch info.GetKeyType() {
	case hostapi.KeyType_KEY_TYPE_RSA, hostapi.KeyType_KEY_TYPE_EC:
	default:
		return nil, core.Errorf(core.KindUnsupported, "%s is a %s key in backend %q; hsmkey opens RSA and EC keys",
			k.ref, info.GetKeyType(), k.backend)
	}
	if info.GetCurve() == string(core.CurveP256K) {
		return nil, core.Errorf(core.KindUnsupported, "%s is an EC key on P-256K (secp256k1), which Go's crypto/ecdsa does not support", k.ref)
	}
	pub, err := x509.ParsePKIXPublicKey(info.GetPublicKeyDer())
	if err != nil {
		return nil, core.Errorf(core.KindInternal, "%s: the public key backend %q returned does not parse: %v", k.ref, k.backend, err)
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if info.GetKeyType() == hostapi.KeyType_KEY_TYPE_RSA {
			k.pub, k.rsa = p, p
			return &rsaKey{k}, nil
		}
	case *ecdsa.PublicKey:
		if info.GetKeyType() == hostapi.KeyType_KEY_TYPE_EC {
			k.pub = p
			return &ecKey{k}, nil
		}
	}
	return nil, core.Errorf(core.KindInternal, "%s: backend %q returned a %T public key for a %s key", k.ref, k.backend, pub, info.GetKeyType())
}

type key struct {
	c       *Client
	ref     string // canonical, pinned to version
	version string
	backend string
	pub     crypto.PublicKey
	rsa     *rsa.PublicKey // nil for EC
}

type ecKey struct{ *key }

type rsaKey struct{ *key }

var (
	_ Key       = (*ecKey)(nil)
	_ Decrypter = (*rsaKey)(nil)
)

func (k *key) Public() crypto.PublicKey { return k.pub }
func (k *key) Reference() string        { return k.ref }
func (k *key) Backend() string          { return k.backend }

// String names the key for logs.
func (k *key) String() string { return fmt.Sprintf("%s (backend %q)", k.ref, k.backend) }

func (k *key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.SignContext(context.Background(), digest, opts)
}

func (k *key) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	scheme, err := k.signatureScheme(digest, opts)
	if err != nil {
		return nil, err
	}
	resp, err := k.c.do(ctx, k.ref, &hostapi.Request{Op: &hostapi.Request_Sign{Sign: &hostapi.SignRequest{
		Reference: k.ref, Version: k.version, Digest: digest, Scheme: scheme}}})
	if err != nil {
		return nil, err
	}
	if resp.GetSign() == nil {
		return nil, unexpected(k.c.path, resp)
	}
	return resp.GetSign().GetSignature(), nil
}

// signatureScheme reads opts as crypto/rsa and crypto/ecdsa do.
func (k *key) signatureScheme(digest []byte, opts crypto.SignerOpts) (*hostapi.SignatureScheme, error) {
	if opts == nil {
		return nil, core.Errorf(core.KindInvalidInput, "%s: signing needs opts naming the digest's hash (crypto.SHA256, ...)", k.ref)
	}
	h := opts.HashFunc()
	ph, err := k.hash(h, "signing")
	if err != nil {
		return nil, err
	}
	if len(digest) != h.Size() {
		return nil, core.Errorf(core.KindInvalidInput, "%s: the digest is %d bytes, %v needs %d", k.ref, len(digest), h, h.Size())
	}
	pss, isPSS := opts.(*rsa.PSSOptions)
	switch {
	case k.rsa == nil && isPSS:
		return nil, core.Errorf(core.KindInvalidInput, "%s: PSS options given for an EC key", k.ref)
	case k.rsa == nil:
		return &hostapi.SignatureScheme{Padding: hostapi.SignaturePadding_SIGNATURE_PADDING_ECDSA, Hash: ph}, nil
	case !isPSS:
		return &hostapi.SignatureScheme{Padding: hostapi.SignaturePadding_SIGNATURE_PADDING_PKCS1V15, Hash: ph}, nil
	}
	salt := pss.SaltLength
	switch salt {
	case rsa.PSSSaltLengthAuto: // as large as the key allows, as crypto/rsa
		salt = (k.rsa.N.BitLen()-1+7)/8 - 2 - h.Size()
		if salt < 0 {
			return nil, core.Errorf(core.KindInvalidInput, "%s: a %d-bit key is too small for PSS with %v", k.ref, k.rsa.N.BitLen(), h)
		}
		if fips140.Enabled() && salt > h.Size() { // FIPS 186-5 5.4(g), as crypto/rsa in FIPS mode
			salt = h.Size()
		}
	case rsa.PSSSaltLengthEqualsHash:
		salt = h.Size()
	default:
		if salt <= 0 {
			return nil, core.Errorf(core.KindInvalidInput, "%s: invalid PSS salt length %d", k.ref, salt)
		}
	}
	return &hostapi.SignatureScheme{Padding: hostapi.SignaturePadding_SIGNATURE_PADDING_PSS, Hash: ph,
		SaltLength: int32(salt), Mgf1Hash: ph}, nil
}

// hash is the wire's name for one of the digests the protocol carries.
func (k *key) hash(h crypto.Hash, what string) (hostapi.Hash, error) {
	switch h {
	case crypto.SHA1:
		return hostapi.Hash_HASH_SHA1, nil
	case crypto.SHA224:
		return hostapi.Hash_HASH_SHA224, nil
	case crypto.SHA256:
		return hostapi.Hash_HASH_SHA256, nil
	case crypto.SHA384:
		return hostapi.Hash_HASH_SHA384, nil
	case crypto.SHA512:
		return hostapi.Hash_HASH_SHA512, nil
	case 0:
		return 0, core.Errorf(core.KindInvalidInput, "%s: %s needs opts naming the digest's hash (crypto.SHA256, ...)", k.ref, what)
	}
	return 0, core.Errorf(core.KindUnsupported, "%s: %s with %v is not supported (SHA-1, SHA-224, SHA-256, SHA-384, SHA-512)", k.ref, what, h)
}

func (k *rsaKey) Decrypt(rnd io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	return k.decrypt(context.Background(), rnd, ciphertext, opts)
}

func (k *rsaKey) DecryptContext(ctx context.Context, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	return k.decrypt(ctx, nil, ciphertext, opts)
}

func (k *rsaKey) decrypt(ctx context.Context, rnd io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	scheme := &hostapi.EncryptionScheme{Padding: hostapi.EncryptionPadding_ENCRYPTION_PADDING_PKCS1V15}
	sessionKeyLen := 0
	switch o := opts.(type) {
	case nil:
	case *rsa.PKCS1v15DecryptOptions:
		sessionKeyLen = o.SessionKeyLen
	case *rsa.OAEPOptions:
		h, err := k.hash(o.Hash, "OAEP")
		if err != nil {
			return nil, err
		}
		mgf := h
		if o.MGFHash != 0 {
			if mgf, err = k.hash(o.MGFHash, "OAEP's MGF1"); err != nil {
				return nil, err
			}
		}
		scheme = &hostapi.EncryptionScheme{Padding: hostapi.EncryptionPadding_ENCRYPTION_PADDING_OAEP,
			OaepHash: h, Mgf1Hash: mgf, Label: o.Label}
	default:
		return nil, core.Errorf(core.KindInvalidInput, "%s: invalid options for Decrypt (%T): want nil, *rsa.PKCS1v15DecryptOptions or *rsa.OAEPOptions", k.ref, opts)
	}
	resp, err := k.c.do(ctx, k.ref, &hostapi.Request{Op: &hostapi.Request_Decrypt{Decrypt: &hostapi.DecryptRequest{
		Reference: k.ref, Version: k.version, Ciphertext: ciphertext, Scheme: scheme}}})
	if err == nil && resp.GetDecrypt() == nil {
		err = unexpected(k.c.path, resp)
	}
	if sessionKeyLen > 0 && !errors.Is(err, core.ErrUnavailable) {
		// crypto/rsa's DecryptPKCS1v15SessionKey: a wrong padding or length
		// is not told apart from success (Bleichenbacher); the protocol
		// that asked for it fails later, on the random key.
		if err == nil && len(resp.GetDecrypt().GetPlaintext()) == sessionKeyLen {
			return resp.GetDecrypt().GetPlaintext(), nil
		}
		if rnd == nil {
			rnd = rand.Reader
		}
		key := make([]byte, sessionKeyLen)
		if _, err := io.ReadFull(rnd, key); err != nil {
			return nil, err
		}
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	return resp.GetDecrypt().GetPlaintext(), nil
}
