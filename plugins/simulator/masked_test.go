package simulator

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/aeskw"
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

// wrapForImport does what the front end does with OpenSSL: RSA-OAEP-256 of
// a fresh AES-256 key, then the RFC 5649 wrap of the PKCS#8 key.
func wrapForImport(t *testing.T, wrappingSPKI []byte, priv crypto.Signer) []byte {
	t.Helper()
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(priv)
	w, err := aeskw.RSAAESWrap(wrappingSPKI, pkcs8)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestGenerateAndImportMaskedWithUsageAndSessions(t *testing.T) {
	b, dir := newBackend(t)
	usage, _ := core.ParseUsageWords([]string{"keyAgreement"})
	blob, info, err := b.GenerateMasked(ctx, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP384, Usages: usage}, "")
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	ecdsa384 := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
	if _, err := b.Sign(ctx, info.ID, digest[:], ecdsa384); !errors.Is(err, core.ErrOperationNotAllowed) {
		t.Fatalf("a keyAgreement key signed: %v", err)
	}
	if h, _ := core.ParseMaskedHeader(blob); h.Flags&core.MaskedFlagSession != 0 {
		t.Fatal("a persistent key is flagged as a session key")
	}

	// Import: the key that comes back is the one that went in.
	spki, err := b.ImportWrappingKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	external, _ := rsa.GenerateKey(rand.Reader, 2048)
	signing, _ := core.ParseUsageWords([]string{"digitalSignature"})
	_, imported, err := b.ImportMasked(ctx, wrapForImport(t, spki, external), core.KeySpec{Usages: signing}, "")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := b.Sign(ctx, imported.ID, digest[:], core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(&external.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		t.Fatal("the imported key does not sign as the external key")
	}
	bad := wrapForImport(t, spki, external)
	bad[len(bad)-1] ^= 1
	if _, _, err := b.ImportMasked(ctx, bad, core.KeySpec{Usages: signing}, ""); !errors.Is(err, core.ErrInvalidInput) {
		t.Fatalf("a damaged import: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "simulator", "import.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("import key file: %v %v", fi, err)
	}

	// A session key works until its session ends, then neither its handle
	// nor its blob does; other keys are untouched.
	sblob, skey, err := b.GenerateMasked(ctx, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: signing}, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := core.ParseMaskedHeader(sblob); h.Flags&core.MaskedFlagSession == 0 {
		t.Fatal("a session key is not flagged")
	}
	if _, err := b.Sign(ctx, skey.ID, digest[:], ecdsa384); err != nil {
		t.Fatalf("session key before its session ended: %v", err)
	}
	if err := b.EndSession(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sign(ctx, skey.ID, digest[:], ecdsa384); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("session key handle after its session ended: %v", err)
	}
	if _, err := b.Unmask(ctx, sblob); !errors.Is(err, core.ErrOperationNotAllowed) || !strings.Contains(err.Error(), "session has ended") {
		t.Fatalf("session key blob after its session ended: %v", err)
	}
	if _, err := b.Sign(ctx, imported.ID, digest[:], core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256}); err != nil {
		t.Fatalf("a persistent key after another session ended: %v", err)
	}
}

// PSS with an empty salt (OpenSSL's, or without cgo the simulator's own
// PSS encoding): Go's verifier checks it. (A different MGF1 digest, which
// rsa.VerifyPSS cannot be told, is checked by rsatest.VerifyPSS in
// TestCreateGetAndSignEveryKeyType and by OpenSSL in the e2e conformance
// table.)
func TestPSSEmptySaltVerifiesWithStandardLibrary(t *testing.T) {
	b, _ := newBackend(t)
	info := create(t, b, "ns", "rsa", core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048, Usages: []core.KeyUsage{core.UsageSign}})
	digest := sha256.Sum256([]byte("pss"))
	sig, err := b.Sign(ctx, info.ID, digest[:], core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 0})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.ParsePKIXPublicKey(info.PublicKeyDER)
	if err := rsa.VerifyPSS(pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}); err != nil {
		t.Fatalf("empty-salt PSS does not verify: %v", err)
	}
	if err := rsa.VerifyPSS(pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: 32}); err == nil {
		t.Fatal("an empty-salt signature verified as a 32-byte-salt one")
	}
}
