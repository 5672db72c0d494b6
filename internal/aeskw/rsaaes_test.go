package aeskw

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"testing"
)

func TestRSAAESWrapUnwrapsWithTheWrappingKey(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	secret := []byte("a PKCS#8 key, or any bytes")
	w, err := RSAAESWrap(spki, secret)
	if err != nil {
		t.Fatal(err)
	}
	aesKey, err := rsa.DecryptOAEP(sha256.New(), nil, k, w[:k.Size()], nil)
	if err != nil || len(aesKey) != 32 {
		t.Fatalf("the head is not RSA-OAEP-SHA256 of an AES-256 key: %v", err)
	}
	got, err := UnwrapPad(aesKey, w[k.Size():])
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("the tail does not unwrap to the key material: %q, %v", got, err)
	}
	if _, err := RSAAESWrap([]byte("not a key"), secret); err == nil {
		t.Fatal("a wrapping key that is no SPKI was accepted")
	}
}
