package ossl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
)

// ECKey is an ECDSA private key on P-256, P-384 or P-521 whose signatures
// are made in libcrypto; it is safe for concurrent use. Its lifetime is a
// Key's: Close releases the EVP_PKEY, and a signature asked for afterwards
// is made by crypto/ecdsa.
type ECKey struct {
	priv *ecdsa.PrivateKey
	h    *handle
}

var _ crypto.Signer = (*ECKey)(nil)

// NewEC loads k into libcrypto (with cgo); k must not be changed afterwards.
func NewEC(k *ecdsa.PrivateKey) (*ECKey, error) {
	switch k.Curve {
	case elliptic.P256(), elliptic.P384(), elliptic.P521():
	default:
		return nil, fmt.Errorf("ossl: curve %s is not one libcrypto signs for the simulator", k.Curve.Params().Name)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("ossl: %w", err)
	}
	h, err := newHandle(der)
	if err != nil {
		return nil, err
	}
	key := &ECKey{priv: k, h: h}
	h.attachEC(key)
	return key, nil
}

// Public is the public half, as crypto.Signer requires.
func (k *ECKey) Public() crypto.PublicKey { return &k.priv.PublicKey }

// Native reports whether signatures are made in libcrypto.
func (k *ECKey) Native() bool { return k.h.live() }

// Close releases the EVP_PKEY once the signatures in flight are done.
func (k *ECKey) Close() { k.h.close() }

// Sign signs a digest computed by the caller (opts names its hash, which
// ECDSA does not use) and returns the ASN.1 DER signature. rand is
// ignored: OpenSSL draws its nonces from its own DRBG.
func (k *ECKey) Sign(_ io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	if len(digest) == 0 {
		return nil, fmt.Errorf("ossl: empty digest")
	}
	if k.h.acquire() {
		defer k.h.release()
		return k.h.signEC(digest)
	}
	return ecdsa.SignASN1(rand.Reader, k.priv, digest)
}
