package simulator

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
)

// A masked key opens in a new process on the same state directory, signs
// with the original key (verified with Go's crypto against the stored
// public key), keeps the key's policy, and is refused by another directory.
func TestMaskUnmaskAcrossInstances(t *testing.T) {
	b, dir := newBackend(t)
	info := create(t, b, "ns", "ec", core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}})
	blob, err := b.Mask(ctx, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "simulator", "masking.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("masking key file: %v %v", fi, err)
	}

	again, err := New(dir) // another process on the same directory
	if err != nil {
		t.Fatal(err)
	}
	handle, err := again.Unmask(ctx, blob)
	if err != nil {
		t.Fatal(err)
	}
	if string(handle.PublicKeyDER) != string(info.PublicKeyDER) || !handle.Allows(core.UsageSign) || handle.Allows(core.UsageDecrypt) {
		t.Fatalf("unmasked key differs: %+v", handle)
	}
	digest := sha256.Sum256([]byte("masked"))
	sig, err := again.Sign(ctx, handle.ID, digest[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.ParsePKIXPublicKey(info.PublicKeyDER)
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatal("the unmasked key's signature does not verify with the original public key")
	}
	if _, err := again.Decrypt(ctx, handle.ID, make([]byte, 32), core.EncryptionScheme{Padding: core.EncryptionPKCS1v15}); !errors.Is(err, core.ErrOperationNotAllowed) {
		t.Fatalf("the masked key's policy was not kept: %v", err)
	}

	other, _ := newBackend(t)
	if _, err := other.Unmask(ctx, blob); err == nil || !strings.Contains(err.Error(), "another backend instance") {
		t.Fatalf("a foreign state directory opened the blob: %v", err)
	}
	fresh, _ := New(dir)
	if _, err := fresh.Sign(ctx, handle.ID, digest[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}); !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "open the masked key again") {
		t.Fatalf("a handle used in a process that never opened it: %v", err)
	}
}
