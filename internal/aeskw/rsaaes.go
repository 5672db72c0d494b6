package aeskw

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
)

// RSAAESWrap is CKM_RSA_AES_KEY_WRAP as imports into hsmbridge's backends
// use it (core.ImportWrapAlgorithm): a fresh AES-256 key encrypted with
// RSA-OAEP-SHA256 under the wrapping key (a DER SubjectPublicKeyInfo),
// followed by the RFC 5649 wrap of keyMaterial (a PKCS#8 private key) under
// that AES key. The provider does the same in C (keygen.c); Go callers are
// tests and tools that import keys.
func RSAAESWrap(wrappingKeySPKI, keyMaterial []byte) ([]byte, error) {
	pub, err := x509.ParsePKIXPublicKey(wrappingKeySPKI)
	if err != nil {
		return nil, err
	}
	rk, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("aeskw: the wrapping key is not an RSA public key")
	}
	aesKey := make([]byte, 32)
	if _, err := rand.Read(aesKey); err != nil {
		return nil, err
	}
	defer clear(aesKey)
	head, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, rk, aesKey, nil)
	if err != nil {
		return nil, err
	}
	tail, err := WrapPad(aesKey, keyMaterial)
	if err != nil {
		return nil, err
	}
	return append(head, tail...), nil
}
