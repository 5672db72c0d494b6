//go:build cgo

package ossl

import (
	"crypto"
	"crypto/rsa"
	"runtime"
	"testing"
	"time"
)

const cgoBuild = true

// TestLifetime: Close frees the EVP_PKEY at once when nothing uses it, and
// only when the last operation returns otherwise; the Key keeps working
// on crypto/rsa.
func TestLifetime(t *testing.T) {
	priv, _ := testKey(t, 2048)
	before := loaded.Load()
	k, err := New(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Native() || loaded.Load() != before+1 {
		t.Fatalf("after New: Native %v, %d EVP_PKEYs loaded, want %d", k.Native(), loaded.Load(), before+1)
	}
	k.Close()
	k.Close()
	if k.Native() || loaded.Load() != before {
		t.Fatalf("after Close: Native %v, %d loaded, want %d", k.Native(), loaded.Load(), before)
	}
	d := digestOf(crypto.SHA256, "after close")
	sig, err := k.Sign(nil, d, crypto.SHA256)
	if err != nil || rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, d, sig) != nil {
		t.Fatalf("signing after Close: %v", err)
	}

	// An operation in flight holds the EVP_PKEY past Close.
	k, _ = New(priv)
	if !k.h.acquire() {
		t.Fatal("acquire failed on a fresh Key")
	}
	k.Close()
	if loaded.Load() != before+1 {
		t.Fatalf("freed under an operation in flight")
	}
	if k.h.acquire() {
		t.Fatal("acquire succeeded after Close")
	}
	k.h.release()
	if loaded.Load() != before {
		t.Fatalf("not freed when the last operation returned: %d loaded, want %d", loaded.Load(), before)
	}
}

// TestUnclosedKeyIsFreedByTheCollector: a Key dropped without Close still
// gives its EVP_PKEY back.
func TestUnclosedKeyIsFreedByTheCollector(t *testing.T) {
	priv, _ := testKey(t, 2048)
	before := loaded.Load()
	func() {
		k, err := New(priv)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.Sign(nil, digestOf(crypto.SHA256, "x"), crypto.SHA256); err != nil {
			t.Fatal(err)
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); loaded.Load() != before; {
		if time.Now().After(deadline) {
			t.Fatalf("%d EVP_PKEYs loaded, want %d", loaded.Load(), before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
