package ossl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"sync"
	"testing"
)

// Every ECKey signature is checked by crypto/ecdsa.
func TestECSignEveryCurve(t *testing.T) {
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		t.Run(c.Params().Name, func(t *testing.T) {
			priv, err := ecdsa.GenerateKey(c, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			k, err := NewEC(priv)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			for _, d := range [][]byte{digest256("a"), digest512("b"), digest256("c")[:20]} {
				sig, err := k.Sign(nil, d, crypto.SHA256)
				if err != nil {
					t.Fatal(err)
				}
				if !ecdsa.VerifyASN1(&priv.PublicKey, d, sig) {
					t.Fatalf("a %d-byte digest's signature does not verify", len(d))
				}
			}
		})
	}
}

func TestECKeyAfterCloseSignsWithGo(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, err := NewEC(priv)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	if k.Native() {
		t.Fatal("a closed key still reports libcrypto")
	}
	d := digest256("x")
	sig, err := k.Sign(nil, d, crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(&priv.PublicKey, d, sig) {
		t.Fatalf("signing after Close: %v", err)
	}
}

func TestECConcurrentUse(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, err := NewEC(priv)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				if i == 0 && j == 10 {
					k.Close()
				}
				d := digest256(string(rune('a' + i)))
				sig, err := k.Sign(nil, d, crypto.SHA256)
				if err != nil || !ecdsa.VerifyASN1(&priv.PublicKey, d, sig) {
					t.Errorf("goroutine %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func digest256(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }
func digest512(s string) []byte { d := sha512.Sum512([]byte(s)); return d[:] }

func BenchmarkECSignP256(b *testing.B) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, _ := NewEC(priv)
	d := digest256("bench")
	b.Run("libcrypto", func(b *testing.B) {
		for b.Loop() {
			k.Sign(nil, d, crypto.SHA256)
		}
	})
	b.Run("crypto/ecdsa", func(b *testing.B) {
		for b.Loop() {
			ecdsa.SignASN1(rand.Reader, priv, d)
		}
	})
}
