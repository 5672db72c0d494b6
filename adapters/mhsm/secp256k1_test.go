package mhsm

// P-256K (secp256k1, JWS ES256K): on the real service's recorded answers
// (the Azure SDK's Go TestSignVerify/MHSM and TestCRUD/EC_MHSM sessions)
// and on the stand-in. Signatures are checked with internal/secp256k1,
// which its own tests check against OpenSSL and that recording.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/secp256k1"
)

// replayGoRecording is replayBackend for the Go SDK's recordings, whose
// sanitized 401 challenge names the resource https://local: azkeys' check
// of it is off, as for a stand-in reached by another name.
func replayGoRecording(t *testing.T, name string) (*Backend, *player, *recording) {
	t.Helper()
	rec := loadRecording(t, name)
	p := newPlayer(t, rec)
	b := New(WithTransport(p), WithCredential(&staticCred{token: "replay"}, "the replay credential"))
	if err := b.Configure(context.Background(), map[string]string{SettingRetryDelay: "1ms", SettingDisableChallengeResourceVerification: "true"}); err != nil {
		t.Fatal(err)
	}
	return b, p, rec
}

// recordedK1 is the public key of a recorded P-256K JSON Web Key, with the
// recorded bytes only.
func recordedK1(t *testing.T, body []byte) *secp256k1.PublicKey {
	t.Helper()
	if crv := field(t, body, "key", "crv"); crv != "P-256K" {
		t.Fatalf("recorded crv %v", crv)
	}
	pub, err := secp256k1.NewPublicKey(b64(t, field(t, body, "key", "x")), b64(t, field(t, body, "key", "y")))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// The recorded session: create EC P-256K with sign and verify, sign with
// ES256K. The backend sends crv P-256K and alg ES256K, reads the key as
// EC P-256K (256 bits, a secp256k1 SubjectPublicKeyInfo of the recorded
// point) and returns the service's r‖s as DER that verifies with it.
func TestReplaySignES256K(t *testing.T) {
	b, p, rec := replayGoRecording(t, "go-TestSignVerify-MHSM.json")
	ctx := context.Background()
	create := rec.entry(t, "POST", "create")
	id := core.KeyID{Namespace: hsmOf(t, rec), Name: keyNameOf(t, create)}
	info, err := b.CreateKey(ctx, id, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256K, Usages: []core.KeyUsage{core.UsageSign, core.UsageVerify}})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	sent, _ := p.sentFor(t, "POST", "create")
	if sent["crv"] != "P-256K" || sent["kty"] != "EC-HSM" {
		t.Errorf("the backend sent %v, want crv P-256K", sent)
	}
	pub := recordedK1(t, create.ResponseBody)
	wantDER, _ := secp256k1.MarshalPKIXPublicKey(pub)
	if info.Curve != core.CurveP256K || info.Bits != 256 || !bytes.Equal(info.PublicKeyDER, wantDER) {
		t.Fatalf("CreateKey returned %s %s %d bits; public key matches the recording: %v", info.Type, info.Curve, info.Bits, bytes.Equal(info.PublicKeyDER, wantDER))
	}

	digest := b64(t, field(t, rec.entry(t, "POST", "sign").RequestBody, "value"))
	sig, err := b.Sign(ctx, info.ID, digest, core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if sent, _ := p.sentFor(t, "POST", "sign"); sent["alg"] != "ES256K" || !bytes.Equal(b64(t, sent["value"]), digest) {
		t.Errorf("the backend sent %v, want alg ES256K and the digest", sent)
	}
	if !secp256k1.VerifyASN1(pub, digest, sig) {
		t.Fatal("the replayed ES256K signature (as DER) does not verify against the recorded key")
	}
	digest[0] ^= 1
	if secp256k1.VerifyASN1(pub, digest, sig) {
		t.Fatal("the signature verifies over a different digest")
	}
}

// A P-256K key made without key_ops (recorded: the service gives verify,
// deriveKey, sign) reads back as such.
func TestReplayCreateP256KWithoutOperations(t *testing.T) {
	b, _, rec := replayGoRecording(t, "go-TestCRUD-EC_MHSM.json")
	create := rec.entry(t, "POST", "create")
	id := core.KeyID{Namespace: hsmOf(t, rec), Name: keyNameOf(t, create)}
	info, err := b.CreateKey(context.Background(), id, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256K})
	if err != nil {
		t.Fatal(err)
	}
	wantDER, _ := secp256k1.MarshalPKIXPublicKey(recordedK1(t, create.ResponseBody))
	if !bytes.Equal(info.PublicKeyDER, wantDER) || !info.Allows(core.UsageSign) || !info.Allows(core.UsageDeriveKey) || info.Allows(core.UsageDecrypt) {
		t.Fatalf("created %+v", info)
	}
}

// On the stand-in: create (also by a new version), sign over SHA-256 only
// (ES256K is the only algorithm for the curve), import a PKCS#8 secp256k1
// key, and read it back with GetKey.
func TestP256KOnTheStandIn(t *testing.T) {
	s := startStandin(t)
	b, _ := s.backend(t, testToken)
	ctx := context.Background()
	id := core.KeyID{Namespace: "contract-tests", Name: "k1"}
	info, err := b.CreateKey(ctx, id, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256K, Usages: []core.KeyUsage{core.UsageSign}})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := secp256k1.ParsePKIXPublicKey(info.PublicKeyDER)
	if err != nil || info.Curve != core.CurveP256K || info.Bits != 256 {
		t.Fatalf("created %+v: %v", info, err)
	}
	d := sha256.Sum256([]byte("ES256K through azkeys"))
	sig, err := b.Sign(ctx, id, d[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	if err != nil || !secp256k1.VerifyASN1(pub, d[:], sig) {
		t.Fatalf("sign: %v", err)
	}
	if _, err := b.Sign(ctx, id, make([]byte, 48), core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA384}); !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("SHA-384 with P-256K: %v, want unsupported", err)
	}

	local, _ := secp256k1.GenerateKey(nil)
	der, _ := secp256k1.MarshalPKCS8PrivateKey(local)
	imp := core.KeyID{Namespace: "contract-tests", Name: "k1-imported"}
	got, err := b.ImportKey(ctx, imp, der, []core.KeyUsage{core.UsageSign})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := secp256k1.ParsePKIXPublicKey(got.PublicKeyDER); p == nil || !p.Equal(&local.PublicKey) || got.Curve != core.CurveP256K {
		t.Fatalf("imported %+v", got)
	}
	sig, err = b.Sign(ctx, imp, d[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	if err != nil || !secp256k1.VerifyASN1(&local.PublicKey, d[:], sig) {
		t.Fatalf("signature by the imported key: %v", err)
	}
	again, err := b.GetKey(ctx, imp)
	if err != nil || !bytes.Equal(again.PublicKeyDER, got.PublicKeyDER) {
		t.Fatalf("GetKey: %v", err)
	}
}
