// Package ossl does the simulator's RSA and NIST-curve ECDSA private-key
// operations with OpenSSL's libcrypto: RSA about three times faster than
// Go's crypto/rsa (an RSA-2048 signature: 0.46 ms against 1.5 ms on the
// 2-CPU Xeon where this package's benchmarks were run; `openssl speed
// rsa2048` says 0.43 ms there), ECDSA P-256 about half as costly as
// crypto/ecdsa, and both outside the Go scheduler, so that a plugin run
// with GOMAXPROCS=1 still signs on every core. A Key (RSA) is a
// crypto.Signer and a crypto.Decrypter, with the options crypto/rsa takes,
// plus PSSOptions for what rsa.PSSOptions cannot say (an empty salt, an
// MGF1 digest other than the signature's); an ECKey is a crypto.Signer
// that makes ASN.1 DER signatures, as ecdsa.SignASN1 does.
//
// Build. With cgo the package links -lcrypto (OpenSSL 3.0 or later; the
// simulator is our own process, so the dependency is ours to choose). With
// CGO_ENABLED=0 it compiles to crypto/rsa alone: the same API, the same
// results, Go's speed. Native says which one a Key uses.
//
// Lifetime. New loads the key into an EVP_PKEY once; every operation makes
// its own EVP_PKEY_CTX from it, so a Key serves any number of goroutines
// without a lock (a context costs about 4 µs, 1% of a signature: not worth
// caching). Close releases the EVP_PKEY at once if no operation is using
// it, else when the last one returns (a reference count: each operation
// holds one, the Key holds one until Close). An operation that starts
// after Close still succeeds, with crypto/rsa: the caller that drops a key
// from its cache need not know who still holds it. A Key that is never
// closed releases its EVP_PKEY when the garbage collector finds it
// unreachable.
//
// Errors. Decrypt fails with rsa.ErrDecryption whatever was wrong with the
// ciphertext (bad padding, wrong label or digest), as crypto/rsa does;
// PKCS#1 v1.5 bad padding is an error, never the random plaintext of
// OpenSSL 3.2's implicit rejection, which is turned off. Other errors are
// about the options or the library, never about the ciphertext.
package ossl

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
)

// Key is an RSA private key whose operations run in libcrypto. It is safe
// for concurrent use.
type Key struct {
	priv *rsa.PrivateKey
	h    *handle // the EVP_PKEY; nil without cgo
}

var (
	_ crypto.Signer    = (*Key)(nil)
	_ crypto.Decrypter = (*Key)(nil)
)

// PSSOptions asks Key.Sign for RSASSA-PSS with exactly these parameters.
// Unlike rsa.PSSOptions, SaltLength is the salt's length in bytes and
// nothing else: 0 is an empty salt.
type PSSOptions struct {
	Hash       crypto.Hash // the digest's algorithm
	SaltLength int
	MGF1Hash   crypto.Hash // 0 means Hash
}

// HashFunc is the digest's algorithm.
func (o *PSSOptions) HashFunc() crypto.Hash { return o.Hash }

// New loads k into libcrypto (with cgo). The Key keeps k for Public and
// for the crypto/rsa path; k must not be changed afterwards.
func New(k *rsa.PrivateKey) (*Key, error) {
	h, err := newHandle(x509.MarshalPKCS1PrivateKey(k))
	if err != nil {
		return nil, err
	}
	key := &Key{priv: k, h: h}
	h.attach(key)
	return key, nil
}

// Public is the public half, as crypto.Signer requires.
func (k *Key) Public() crypto.PublicKey { return &k.priv.PublicKey }

// Size is the modulus length in bytes: the length of every signature and
// ciphertext.
func (k *Key) Size() int { return k.priv.Size() }

// Native reports whether operations run in libcrypto: true from New until
// Close in a cgo build, false always without cgo.
func (k *Key) Native() bool { return k.h.live() }

// Close releases the EVP_PKEY (once the operations in flight have
// returned); later operations use crypto/rsa. Closing twice is a no-op.
func (k *Key) Close() { k.h.close() }

// Sign signs a digest computed by the caller: PKCS#1 v1.5 when opts is a
// crypto.Hash, PSS when it is a *PSSOptions. rand is ignored: OpenSSL
// draws PSS salts from its own DRBG, and crypto/rsa from crypto/rand.
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var pss *PSSOptions
	switch o := opts.(type) {
	case crypto.Hash:
	case *PSSOptions:
		if o == nil {
			return nil, errors.New("ossl: nil PSSOptions")
		}
		p := *o
		if p.MGF1Hash == 0 {
			p.MGF1Hash = p.Hash
		}
		pss = &p
	default:
		return nil, fmt.Errorf("ossl: signer options %T (a crypto.Hash or *ossl.PSSOptions)", opts)
	}
	h := opts.HashFunc()
	if mdName(h) == "" {
		return nil, fmt.Errorf("ossl: digest %v is not supported", h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("ossl: digest is %d bytes, %v needs %d", len(digest), h, h.Size())
	}
	if pss != nil {
		if mdName(pss.MGF1Hash) == "" {
			return nil, fmt.Errorf("ossl: MGF1 digest %v is not supported", pss.MGF1Hash)
		}
		// RFC 8017 section 9.1.1: emLen >= hLen + sLen + 2.
		emLen := (k.priv.N.BitLen() - 1 + 7) / 8
		if pss.SaltLength < 0 || pss.SaltLength > emLen-h.Size()-2 {
			return nil, fmt.Errorf("ossl: PSS salt of %d bytes does not fit a %d-bit key with %v", pss.SaltLength, k.priv.N.BitLen(), h)
		}
	}
	if k.h.acquire() {
		defer k.h.release()
		return k.h.sign(k.Size(), digest, h, pss)
	}
	return goSign(k.priv, digest, h, pss)
}

// Decrypt decrypts a ciphertext: PKCS#1 v1.5 when opts is nil or a
// *rsa.PKCS1v15DecryptOptions (SessionKeyLen 0 only), OAEP when it is a
// *rsa.OAEPOptions (MGFHash 0 means Hash). rand is ignored.
func (k *Key) Decrypt(_ io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	var oaep *rsa.OAEPOptions
	switch o := opts.(type) {
	case nil:
	case *rsa.PKCS1v15DecryptOptions:
		if o != nil && o.SessionKeyLen != 0 {
			return nil, errors.New("ossl: PKCS#1 v1.5 session-key decryption (SessionKeyLen) is not supported")
		}
	case *rsa.OAEPOptions:
		if o == nil {
			return nil, errors.New("ossl: nil OAEPOptions")
		}
		p := *o
		if p.MGFHash == 0 {
			p.MGFHash = p.Hash
		}
		if mdName(p.Hash) == "" || mdName(p.MGFHash) == "" {
			return nil, fmt.Errorf("ossl: OAEP with %v and MGF1 %v is not supported", p.Hash, p.MGFHash)
		}
		oaep = &p
	default:
		return nil, fmt.Errorf("ossl: decrypter options %T (nil, *rsa.PKCS1v15DecryptOptions or *rsa.OAEPOptions)", opts)
	}
	if len(ciphertext) != k.Size() {
		return nil, rsa.ErrDecryption
	}
	if k.h.acquire() {
		defer k.h.release()
		return k.h.decrypt(k.Size(), ciphertext, oaep)
	}
	return goDecrypt(k.priv, ciphertext, oaep)
}

// mdName is OpenSSL's name of a digest this package supports, "" for the
// others.
func mdName(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return "SHA1"
	case crypto.SHA224:
		return "SHA2-224"
	case crypto.SHA256:
		return "SHA2-256"
	case crypto.SHA384:
		return "SHA2-384"
	case crypto.SHA512:
		return "SHA2-512"
	}
	return ""
}
