package simulator

import (
	"crypto"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/secp256k1"
)

// opensslVerifies checks an ECDSA signature with the openssl CLI (the
// default provider), which shares no code with the simulator; it skips the
// test when there is no openssl.
func opensslVerifies(t *testing.T, spki, digest, sig []byte) bool {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl CLI not found")
	}
	dir := t.TempDir()
	files := map[string][]byte{"pub.pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}), "d.bin": digest, "sig.der": sig}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-in", "d.bin", "-sigfile", "sig.der")
	cmd.Dir = dir
	return cmd.Run() == nil
}

// P-256K (secp256k1): created, stored, read back by another instance,
// signed with over every digest the simulator takes for ECDSA, each
// signature checked by OpenSSL's default provider against the public key
// the simulator reports (and refused over another digest).
func TestP256KCreateSignAndReload(t *testing.T) {
	b, dir := newBackend(t)
	info := create(t, b, "ns", "k1", ecSpec(core.CurveP256K, core.UsageSign, core.UsageVerify))
	if info.Type != core.KeyTypeEC || info.Curve != core.CurveP256K || info.Bits != 256 {
		t.Fatalf("created %+v", info)
	}
	if _, err := secp256k1.ParsePKIXPublicKey(info.PublicKeyDER); err != nil {
		t.Fatalf("the public key is not a secp256k1 SubjectPublicKeyInfo: %v", err)
	}
	again, err := New(dir) // another process: the key is parsed from its file
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA1} {
		ch := map[crypto.Hash]core.Hash{crypto.SHA256: core.SHA256, crypto.SHA384: core.SHA384, crypto.SHA512: core.SHA512, crypto.SHA1: core.SHA1}[h]
		for name, be := range map[string]*Backend{"same": b, "reloaded": again} {
			d := digest(h, "secp256k1 "+name)
			sig, err := be.Sign(ctx, core.KeyID{Namespace: "ns", Name: "k1"}, d, core.SignatureScheme{Padding: core.PaddingECDSA, Hash: ch})
			if err != nil {
				t.Fatalf("%s %s: %v", name, ch, err)
			}
			if !opensslVerifies(t, info.PublicKeyDER, d, sig) {
				t.Fatalf("%s %s: OpenSSL rejects the signature", name, ch)
			}
			if opensslVerifies(t, info.PublicKeyDER, digest(h, "other"), sig) {
				t.Fatalf("%s %s: OpenSSL accepts the signature over another digest", name, ch)
			}
		}
	}
	// RSA schemes are refused for it, as for any EC key.
	if _, err := b.Sign(ctx, info.ID, digest(crypto.SHA256, "x"), core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256}); !errors.Is(err, core.ErrInvalidInput) {
		t.Fatalf("PKCS#1 v1.5 with a P-256K key: %v", err)
	}
}

// A secp256k1 PKCS#8 key imports (OpenSSL's, when the CLI is there) and
// signs as itself; ECDH on P-256K is refused as unsupported, not
// attempted.
func TestP256KImportAndRefusals(t *testing.T) {
	b, _ := newBackend(t)
	local, _ := secp256k1.GenerateKey(nil)
	der, _ := secp256k1.MarshalPKCS8PrivateKey(local)
	if openssl, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command(openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1").Output()
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(out)
		if local, err = secp256k1.ParsePKCS8PrivateKey(block.Bytes); err != nil {
			t.Fatal(err)
		}
		der = block.Bytes
	}
	info, err := b.ImportKey(ctx, core.KeyID{Namespace: "ns", Name: "imp"}, der, []core.KeyUsage{core.UsageSign, core.UsageDeriveKey})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := secp256k1.ParsePKIXPublicKey(info.PublicKeyDER)
	if info.Curve != core.CurveP256K || pub == nil || !pub.Equal(&local.PublicKey) {
		t.Fatalf("imported %+v", info)
	}
	d := digest(crypto.SHA256, "imported secp256k1")
	sig, err := b.Sign(ctx, info.ID, d, core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	if err != nil || !secp256k1.VerifyASN1(&local.PublicKey, d, sig) {
		t.Fatalf("signature by the imported key: %v", err)
	}
	peer, _ := secp256k1.GenerateKey(nil)
	peerDER, _ := secp256k1.MarshalPKIXPublicKey(&peer.PublicKey)
	if _, err := b.Agree(ctx, info.ID, peerDER); !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("ECDH on P-256K: %v", err)
	}
}

// Masked P-256K keys (generated masked, or a named key masked) open and
// sign like named ones.
func TestP256KMasked(t *testing.T) {
	b, _ := newBackend(t)
	_, handle, err := b.GenerateMasked(ctx, ecSpec(core.CurveP256K, core.UsageSign), "")
	if err != nil {
		t.Fatal(err)
	}
	named := create(t, b, "ns", "k1", ecSpec(core.CurveP256K, core.UsageSign))
	blob, err := b.Mask(ctx, named.ID)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := b.Unmask(ctx, blob)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []core.KeyInfo{handle, opened} {
		if k.Curve != core.CurveP256K {
			t.Fatalf("masked key %+v", k)
		}
		d := digest(crypto.SHA256, "masked secp256k1")
		sig, err := b.Sign(ctx, k.ID, d, core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
		if err != nil {
			t.Fatal(err)
		}
		if !opensslVerifies(t, k.PublicKeyDER, d, sig) {
			t.Fatal("OpenSSL rejects the masked key's signature")
		}
	}
}
