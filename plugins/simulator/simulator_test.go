package simulator

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/plugins/simulator/internal/rsatest"
)

var ctx = context.Background()

func newBackend(t testing.TB) (*Backend, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

func create(t testing.TB, b *Backend, ns, name string, spec core.KeySpec) core.KeyInfo {
	t.Helper()
	info, err := b.CreateKey(ctx, core.KeyID{Namespace: ns, Name: name}, spec)
	if err != nil {
		t.Fatalf("CreateKey %s/%s: %v", ns, name, err)
	}
	return info
}

func rsaSpec(bits int, us ...core.KeyUsage) core.KeySpec {
	return core.KeySpec{Type: core.KeyTypeRSA, Bits: bits, Usages: us}
}

func ecSpec(c core.Curve, us ...core.KeyUsage) core.KeySpec {
	return core.KeySpec{Type: core.KeyTypeEC, Curve: c, Usages: us}
}

// pub parses the public key with the standard library only.
func pub(t testing.TB, info core.KeyInfo) crypto.PublicKey {
	t.Helper()
	p, err := x509.ParsePKIXPublicKey(info.PublicKeyDER)
	if err != nil {
		t.Fatalf("public key of %s does not parse: %v", info.ID, err)
	}
	return p
}

func digest(h crypto.Hash, msg string) []byte {
	w := h.New()
	w.Write([]byte(msg))
	return w.Sum(nil)
}

// verify checks a signature with Go's crypto, independently of the backend.
func verify(t testing.TB, info core.KeyInfo, s core.SignatureScheme, d, sig []byte) error {
	t.Helper()
	switch p := pub(t, info).(type) {
	case *rsa.PublicKey:
		if s.Padding == core.PaddingPSS {
			// The exact salt length and MGF1 digest, which rsa.VerifyPSS
			// cannot be told (it reads salt 0 as "any").
			return rsatest.VerifyPSS(p, s.Hash.Crypto(), s.EffectiveMGF1().Crypto(), s.SaltLength, d, sig)
		}
		return rsa.VerifyPKCS1v15(p, s.Hash.Crypto(), d, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, d, sig) {
			return errors.New("ECDSA verification failed")
		}
		return nil
	}
	t.Fatalf("unexpected public key type")
	return nil
}

var versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestCreateGetAndSignEveryKeyType(t *testing.T) {
	b, _ := newBackend(t)
	cases := []struct {
		spec    core.KeySpec
		schemes []core.SignatureScheme
	}{
		{rsaSpec(2048, core.UsageSign), []core.SignatureScheme{
			{Padding: core.PaddingPKCS1v15, Hash: core.SHA256},
			{Padding: core.PaddingPKCS1v15, Hash: core.SHA1},
			{Padding: core.PaddingPKCS1v15, Hash: core.SHA512},
			{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 32},
			{Padding: core.PaddingPSS, Hash: core.SHA384, SaltLength: 20},
			{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 256 - 32 - 2, MGF1Hash: core.SHA256},
			{Padding: core.PaddingPKCS1v15, Hash: core.SHA224},
			{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 0},
			{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 32, MGF1Hash: core.SHA1},
			{Padding: core.PaddingPSS, Hash: core.SHA512, SaltLength: 0, MGF1Hash: core.SHA256},
			{Padding: core.PaddingPSS, Hash: core.SHA1, SaltLength: 20},
			{Padding: core.PaddingPSS, Hash: core.SHA224, SaltLength: 256 - 28 - 2, MGF1Hash: core.SHA384},
		}},
		{rsaSpec(3072, core.UsageSign), []core.SignatureScheme{
			{Padding: core.PaddingPKCS1v15, Hash: core.SHA384},
			{Padding: core.PaddingPSS, Hash: core.SHA512, SaltLength: 64},
		}},
		{rsaSpec(4096, core.UsageSign), []core.SignatureScheme{
			{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 32},
		}},
		{ecSpec(core.CurveP256, core.UsageSign), []core.SignatureScheme{{Padding: core.PaddingECDSA, Hash: core.SHA256}, {Padding: core.PaddingECDSA, Hash: core.SHA1}}},
		{ecSpec(core.CurveP384, core.UsageSign), []core.SignatureScheme{{Padding: core.PaddingECDSA, Hash: core.SHA384}}},
		{ecSpec(core.CurveP521, core.UsageSign), []core.SignatureScheme{{Padding: core.PaddingECDSA, Hash: core.SHA512}, {Padding: core.PaddingECDSA, Hash: core.SHA256}}},
	}
	for _, c := range cases {
		name := strings.ToLower(string(c.spec.Type) + "-" + string(c.spec.Curve))
		if c.spec.Type == core.KeyTypeRSA {
			name = "rsa-" + strings.Repeat("x", c.spec.Bits/1024)
		}
		info := create(t, b, "ns", name, c.spec)
		if !versionRE.MatchString(info.ID.Version) || !info.Enabled || info.Created.IsZero() {
			t.Errorf("%s: bad metadata %+v", name, info)
		}
		switch p := pub(t, info).(type) {
		case *rsa.PublicKey:
			if p.N.BitLen() != c.spec.Bits || info.Bits != c.spec.Bits {
				t.Errorf("%s: %d bits, KeyInfo says %d, want %d", name, p.N.BitLen(), info.Bits, c.spec.Bits)
			}
		case *ecdsa.PublicKey:
			if p.Curve.Params().Name != string(c.spec.Curve) || info.Curve != c.spec.Curve {
				t.Errorf("%s: curve %s, KeyInfo says %s", name, p.Curve.Params().Name, info.Curve)
			}
		}
		got, err := b.GetKey(ctx, core.KeyID{Namespace: "ns", Name: name})
		if err != nil || got.ID != info.ID || !bytes.Equal(got.PublicKeyDER, info.PublicKeyDER) {
			t.Fatalf("%s: GetKey latest = %+v, %v", name, got.ID, err)
		}
		for _, s := range c.schemes {
			d := digest(s.Hash.Crypto(), "hello "+s.Name())
			sig, err := b.Sign(ctx, core.KeyID{Namespace: "ns", Name: name}, d, s)
			if err != nil {
				t.Errorf("%s %s: %v", name, s.Name(), err)
				continue
			}
			if err := verify(t, info, s, d, sig); err != nil {
				t.Errorf("%s %s: signature does not verify: %v", name, s.Name(), err)
			}
			other := digest(s.Hash.Crypto(), "something else")
			if verify(t, info, s, other, sig) == nil {
				t.Errorf("%s %s: signature verifies over another digest", name, s.Name())
			}
		}
	}
}

func TestPersistenceAcrossInstances(t *testing.T) {
	b1, dir := newBackend(t)
	ec := create(t, b1, "hsm1", "ec", ecSpec(core.CurveP256, core.UsageSign))
	rs := create(t, b1, "hsm1", "rsa", rsaSpec(2048, core.UsageSign, core.UsageDecrypt))

	b2, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []core.KeyInfo{ec, rs} {
		got, err := b2.GetKey(ctx, core.KeyID{Namespace: "hsm1", Name: want.ID.Name})
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != want.ID || !bytes.Equal(got.PublicKeyDER, want.PublicKeyDER) || got.Bits != want.Bits ||
			got.Curve != want.Curve || len(got.Usages) != len(want.Usages) || !got.Created.Equal(want.Created) {
			t.Errorf("after reopening: %+v, want %+v", got, want)
		}
	}
	s := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
	d := digest(crypto.SHA256, "persist")
	sig, err := b2.Sign(ctx, ec.ID, d, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, ec, s, d, sig); err != nil {
		t.Fatal(err)
	}
}

func TestFilesArePrivate(t *testing.T) {
	b, dir := newBackend(t)
	create(t, b, "ns", "k", ecSpec(core.CurveP256, core.UsageSign))
	create(t, b, "ns", "k", ecSpec(core.CurveP256, core.UsageSign))
	files := 0
	err := filepath.WalkDir(filepath.Join(dir, "simulator"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
			if !strings.HasSuffix(path, ".json") {
				t.Errorf("stray file %s", path)
			}
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != 2 {
		t.Fatalf("%d key files, want 2", files)
	}
}

func TestVersions(t *testing.T) {
	b, _ := newBackend(t)
	var made []core.KeyInfo
	for i := 0; i < 4; i++ { // same second, very likely the same timestamp tick
		made = append(made, create(t, b, "ns", "multi", ecSpec(core.CurveP256, core.UsageSign)))
	}
	seen := map[string]bool{}
	for _, m := range made {
		if seen[m.ID.Version] {
			t.Fatalf("version %s repeated", m.ID.Version)
		}
		seen[m.ID.Version] = true
		got, err := b.GetKey(ctx, m.ID)
		if err != nil || !bytes.Equal(got.PublicKeyDER, m.PublicKeyDER) {
			t.Fatalf("pinned %s: %v", m.ID, err)
		}
	}
	latest, err := b.GetKey(ctx, core.KeyID{Namespace: "ns", Name: "multi"})
	if err != nil || latest.ID != made[3].ID {
		t.Fatalf("latest = %v %v, want %v", latest.ID, err, made[3].ID)
	}
	// A fresh instance must agree on the order from disk alone.
	b2, _ := New(b.StateDir())
	latest, err = b2.GetKey(ctx, core.KeyID{Namespace: "ns", Name: "multi"})
	if err != nil || latest.ID != made[3].ID {
		t.Fatalf("reopened latest = %v %v, want %v", latest.ID, err, made[3].ID)
	}
	// Signing with a pinned old version uses that version's key.
	s := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
	d := digest(crypto.SHA256, "old")
	sig, err := b.Sign(ctx, made[0].ID, d, s)
	if err != nil || verify(t, made[0], s, d, sig) != nil || verify(t, made[3], s, d, sig) == nil {
		t.Fatalf("pinned signing used the wrong key (%v)", err)
	}
}

func TestNewVersionFromAnotherInstanceIsSeen(t *testing.T) {
	a, dir := newBackend(t)
	first := create(t, a, "ns", "shared", ecSpec(core.CurveP256, core.UsageSign))
	if got, _ := a.GetKey(ctx, core.KeyID{Namespace: "ns", Name: "shared"}); got.ID != first.ID {
		t.Fatal("latest is not the first version")
	}
	other, _ := New(dir)
	second := create(t, other, "ns", "shared", ecSpec(core.CurveP256, core.UsageSign))
	got, err := a.GetKey(ctx, core.KeyID{Namespace: "ns", Name: "shared"})
	if err != nil || got.ID != second.ID {
		t.Fatalf("instance a sees %v (%v), want the other instance's %v", got.ID, err, second.ID)
	}
	if _, err := other.DeleteKey(ctx, core.KeyID{Namespace: "ns", Name: "shared"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetKey(ctx, core.KeyID{Namespace: "ns", Name: "shared"}); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("deleted elsewhere, still found: %v", err)
	}
}

func TestNotFound(t *testing.T) {
	b, _ := newBackend(t)
	create(t, b, "ns", "k", ecSpec(core.CurveP256, core.UsageSign))
	_, err := b.GetKey(ctx, core.KeyID{Namespace: "ns", Name: "nokey"})
	if !errors.Is(err, core.ErrNotFound) || err.Error() != `key "ns/nokey" not found` {
		t.Errorf("unknown key: %v", err)
	}
	_, err = b.GetKey(ctx, core.KeyID{Namespace: "other", Name: "k"})
	if !errors.Is(err, core.ErrNotFound) {
		t.Errorf("unknown namespace: %v", err)
	}
	v := strings.Repeat("ab", 16)
	_, err = b.GetKey(ctx, core.KeyID{Namespace: "ns", Name: "k", Version: v})
	if !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), `"ns/k"`) || !strings.Contains(err.Error(), v) {
		t.Errorf("unknown version: %v", err)
	}
	_, err = b.Sign(ctx, core.KeyID{Namespace: "ns", Name: "k", Version: "../../etc"}, make([]byte, 32),
		core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	if !errors.Is(err, core.ErrNotFound) {
		t.Errorf("malformed version: %v", err)
	}
}

func TestUsageEnforcement(t *testing.T) {
	b, _ := newBackend(t)
	dec := create(t, b, "ns", "deconly", rsaSpec(2048, core.UsageDecrypt))
	sig := create(t, b, "ns", "signonly", rsaSpec(2048, core.UsageSign))
	d := digest(crypto.SHA256, "x")
	_, err := b.Sign(ctx, dec.ID, d, core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256})
	if !errors.Is(err, core.ErrOperationNotAllowed) || !strings.Contains(err.Error(), "ns/deconly") || !strings.Contains(err.Error(), "sign") {
		t.Errorf("sign with a decrypt-only key: %v", err)
	}
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub(t, sig).(*rsa.PublicKey), []byte("m"), nil)
	_, err = b.Decrypt(ctx, sig.ID, ct, core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256})
	if !errors.Is(err, core.ErrOperationNotAllowed) || !strings.Contains(err.Error(), "ns/signonly") || !strings.Contains(err.Error(), "decrypt") {
		t.Errorf("decrypt with a sign-only key: %v", err)
	}
}

func TestSchemeRefusals(t *testing.T) {
	b, _ := newBackend(t)
	r := create(t, b, "ns", "r", rsaSpec(2048, core.UsageSign))
	e := create(t, b, "ns", "e", ecSpec(core.CurveP256, core.UsageSign))
	d := digest(crypto.SHA256, "x")
	cases := []struct {
		id     core.KeyID
		d      []byte
		s      core.SignatureScheme
		expect error
	}{
		{r.ID, d, core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}, core.ErrInvalidInput},
		{e.ID, d, core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256}, core.ErrInvalidInput},
		{r.ID, d[:31], core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256}, core.ErrInvalidInput},
		{e.ID, d, core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA384}, core.ErrInvalidInput},
		{r.ID, d, core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 300}, core.ErrInvalidInput},
	}
	for _, c := range cases {
		if _, err := b.Sign(ctx, c.id, c.d, c.s); !errors.Is(err, c.expect) {
			t.Errorf("%s (%+v) on %s: %v, want kind %v", c.s.Name(), c.s, c.id, err, c.expect)
		}
	}
}

func TestDecryptRoundTrip(t *testing.T) {
	b, _ := newBackend(t)
	k := create(t, b, "ns", "dec", rsaSpec(2048, core.UsageDecrypt))
	p := pub(t, k).(*rsa.PublicKey)
	msg := []byte("a 32-byte session key, or so...!")

	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, p, msg, []byte("label"))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := b.Decrypt(ctx, k.ID, ct, core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256, Label: []byte("label")})
	if err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("OAEP-SHA256: %q %v", pt, err)
	}
	if _, err := b.Decrypt(ctx, k.ID, ct, core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256}); !errors.Is(err, core.ErrInvalidInput) {
		t.Fatalf("wrong label accepted: %v", err)
	}

	ct, _ = rsa.EncryptOAEP(sha1.New(), rand.Reader, p, msg, nil)
	if pt, err := b.Decrypt(ctx, k.ID, ct, core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA1}); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("OAEP-SHA1: %v", err)
	}

	ct, err = rsa.EncryptOAEPWithOptions(rand.Reader, p, msg, &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := b.Decrypt(ctx, k.ID, ct, core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256, MGF1Hash: core.SHA1}); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("OAEP-SHA256/MGF1-SHA1: %v", err)
	}

	ct, _ = rsa.EncryptPKCS1v15(rand.Reader, p, msg)
	if pt, err := b.Decrypt(ctx, k.ID, ct, core.EncryptionScheme{Padding: core.EncryptionPKCS1v15}); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("PKCS#1 v1.5: %v", err)
	}
	if _, err := b.Decrypt(ctx, k.ID, ct[1:], core.EncryptionScheme{Padding: core.EncryptionPKCS1v15}); !errors.Is(err, core.ErrInvalidInput) {
		t.Fatalf("short ciphertext: %v", err)
	}
}

func TestImport(t *testing.T) {
	b, _ := newBackend(t)
	local, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(local)
	info, err := b.ImportKey(ctx, core.KeyID{Namespace: "ns", Name: "imp"}, der, []core.KeyUsage{"Sign"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Curve != core.CurveP384 || !info.Allows(core.UsageSign) {
		t.Fatalf("imported: %+v", info)
	}
	if !local.PublicKey.Equal(pub(t, info)) {
		t.Fatal("imported key's public key differs")
	}
	d := digest(crypto.SHA384, "imported")
	sig, err := b.Sign(ctx, info.ID, d, core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA384})
	if err != nil || !ecdsa.VerifyASN1(&local.PublicKey, d, sig) {
		t.Fatalf("signature by imported key: %v", err)
	}

	rsaLocal, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ = x509.MarshalPKCS8PrivateKey(rsaLocal)
	rinfo, err := b.ImportKey(ctx, core.KeyID{Namespace: "ns", Name: "imp-rsa"}, der, []core.KeyUsage{core.UsageDecrypt})
	if err != nil || rinfo.Bits != 2048 {
		t.Fatalf("RSA import: %+v %v", rinfo, err)
	}

	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	der, _ = x509.MarshalPKCS8PrivateKey(small)
	if _, err := b.ImportKey(ctx, core.KeyID{Namespace: "ns", Name: "x"}, der, []core.KeyUsage{core.UsageSign}); !errors.Is(err, core.ErrUnsupported) {
		t.Errorf("RSA-1024 import: %v", err)
	}
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ = x509.MarshalPKCS8PrivateKey(edPriv)
	if _, err := b.ImportKey(ctx, core.KeyID{Namespace: "ns", Name: "x"}, der, []core.KeyUsage{core.UsageSign}); !errors.Is(err, core.ErrUnsupported) {
		t.Errorf("Ed25519 import: %v", err)
	}
	if _, err := b.ImportKey(ctx, core.KeyID{Namespace: "ns", Name: "x"}, []byte("junk"), []core.KeyUsage{core.UsageSign}); !errors.Is(err, core.ErrInvalidInput) {
		t.Errorf("junk import: %v", err)
	}
}

func TestCreateRefusals(t *testing.T) {
	b, _ := newBackend(t)
	id := core.KeyID{Namespace: "ns", Name: "k"}
	cases := []struct {
		id     core.KeyID
		spec   core.KeySpec
		expect error
	}{
		{id, core.KeySpec{Type: core.KeyTypeOct, Bits: 512, Usages: []core.KeyUsage{core.UsageWrapKey}}, core.ErrUnsupported},
		{id, rsaSpec(1024, core.UsageSign), core.ErrUnsupported},
		{id, ecSpec("secp256k1", core.UsageSign), core.ErrUnsupported},
		{id, ecSpec(core.CurveP256, "fly"), core.ErrInvalidInput},
		{core.KeyID{Namespace: "ns", Name: "k", Version: strings.Repeat("0", 32)}, ecSpec(core.CurveP256, core.UsageSign), core.ErrInvalidInput},
		{core.KeyID{Namespace: "", Name: "k"}, ecSpec(core.CurveP256, core.UsageSign), core.ErrInvalidInput},
	}
	for _, c := range cases {
		if _, err := b.CreateKey(ctx, c.id, c.spec); !errors.Is(err, c.expect) {
			t.Errorf("%+v %+v: %v, want %v", c.id, c.spec, err, c.expect)
		}
	}
}

func TestListAndDelete(t *testing.T) {
	b, _ := newBackend(t)
	create(t, b, "a", "k1", ecSpec(core.CurveP256, core.UsageSign))
	create(t, b, "a", "k1", ecSpec(core.CurveP256, core.UsageSign))
	last := create(t, b, "a", "k1", ecSpec(core.CurveP256, core.UsageSign))
	create(t, b, "a", "k2", ecSpec(core.CurveP256, core.UsageSign))
	create(t, b, "b", "k1", ecSpec(core.CurveP256, core.UsageSign))

	all, err := b.ListKeys(ctx, "")
	if err != nil || len(all) != 3 {
		t.Fatalf("ListKeys all: %d %v", len(all), err)
	}
	if all[0].ID != last.ID {
		t.Errorf("first listed %v, want latest %v", all[0].ID, last.ID)
	}
	inA, _ := b.ListKeys(ctx, "a")
	if len(inA) != 2 || inA[1].ID.Name != "k2" {
		t.Errorf("ListKeys a: %+v", inA)
	}
	none, err := b.ListKeys(ctx, "zzz")
	if err != nil || len(none) != 0 {
		t.Errorf("empty namespace: %v %v", none, err)
	}

	n, err := b.DeleteKey(ctx, core.KeyID{Namespace: "a", Name: "k1"})
	if err != nil || n != 3 {
		t.Fatalf("DeleteKey: %d %v", n, err)
	}
	if _, err := b.GetKey(ctx, last.ID); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("deleted version still found: %v", err)
	}
	if _, err := b.DeleteKey(ctx, core.KeyID{Namespace: "a", Name: "k1"}); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if all, _ := b.ListKeys(ctx, ""); len(all) != 2 {
		t.Errorf("after delete: %d keys", len(all))
	}
}

func TestNamesStayInsideTheStore(t *testing.T) {
	b, dir := newBackend(t)
	names := []string{"../escape", "a/b", ".hidden", "..", "per%cent", "ünïcode"}
	for _, n := range names {
		create(t, b, n, n, ecSpec(core.CurveP256, core.UsageSign))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "simulator" {
		t.Fatalf("state dir holds %v", entries)
	}
	all, err := b.ListKeys(ctx, "")
	if err != nil || len(all) != len(names) {
		t.Fatalf("listed %d of %d: %v", len(all), len(names), err)
	}
	for _, k := range all {
		if k.ID.Namespace != k.ID.Name {
			t.Errorf("name did not round-trip: %+v", k.ID)
		}
	}
	for _, n := range names {
		if _, err := b.GetKey(ctx, core.KeyID{Namespace: n, Name: n}); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
}

func TestConcurrentSigning(t *testing.T) {
	b, _ := newBackend(t)
	ec := create(t, b, "ns", "ec", ecSpec(core.CurveP256, core.UsageSign))
	rs := create(t, b, "ns", "rsa", rsaSpec(2048, core.UsageSign))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				info, s := ec, core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
				if (g+i)%4 == 0 {
					info, s = rs, core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 32}
				}
				id := core.KeyID{Namespace: "ns", Name: info.ID.Name}
				d := digest(crypto.SHA256, time.Now().String())
				sig, err := b.Sign(ctx, id, d, s)
				if err == nil {
					err = verify(t, info, s, d, sig)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	// Keys created meanwhile must not disturb the signers.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 5; i++ {
			if _, err := b.CreateKey(ctx, core.KeyID{Namespace: "ns", Name: "other"}, ecSpec(core.CurveP256, core.UsageSign)); err != nil {
				errs <- err
			}
			if _, err := b.ListKeys(ctx, ""); err != nil {
				errs <- err
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestConfigure(t *testing.T) {
	b, first := newBackend(t)
	create(t, b, "ns", "k", ecSpec(core.CurveP256, core.UsageSign))
	second := t.TempDir()
	if err := b.Configure(ctx, map[string]string{"state_dir": second}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(second, "simulator", "keys")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("store not created by Configure: %v", err)
	}
	if _, err := b.GetKey(ctx, core.KeyID{Namespace: "ns", Name: "k"}); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("key from %s visible after switching: %v", first, err)
	}
	if err := b.Configure(ctx, map[string]string{"state-dir": "x"}); !errors.Is(err, core.ErrInvalidInput) || !strings.Contains(err.Error(), "state-dir") {
		t.Fatalf("misspelt setting: %v", err)
	}
}

func TestDescriptionAndRandom(t *testing.T) {
	b, _ := newBackend(t)
	d := b.Describe()
	for _, op := range []core.Operation{core.OpGetKey, core.OpListKeys, core.OpCreateKey, core.OpImportKey, core.OpDeleteKey, core.OpSign, core.OpDecrypt, core.OpRandom, core.OpWrapKey, core.OpUnwrapKey, core.OpMask, core.OpUnmask,
		core.OpGenerateMasked, core.OpImportMasked, core.OpAgree, core.OpDerive, core.OpMAC} {
		if !d.Supports(op) {
			t.Errorf("%s not declared", op)
		}
	}
	r1, err := b.Random(ctx, 32)
	r2, _ := b.Random(ctx, 32)
	if err != nil || len(r1) != 32 || bytes.Equal(r1, r2) {
		t.Fatalf("Random: %x %x %v", r1, r2, err)
	}
	if _, err := b.Random(ctx, 1<<20); !errors.Is(err, core.ErrInvalidInput) {
		t.Fatalf("huge Random: %v", err)
	}
}

func TestDefaultStateDir(t *testing.T) {
	t.Setenv("HSMBRIDGE_STATE_DIR", "/srv/state")
	if got := DefaultStateDir(); got != "/srv/state" {
		t.Fatalf("with HSMBRIDGE_STATE_DIR: %q", got)
	}
	t.Setenv("HSMBRIDGE_STATE_DIR", "")
	t.Setenv("XDG_STATE_HOME", "/home/u/.st")
	want := "/home/u/.st/hsmbridge"
	if os.Getuid() == 0 {
		want = "/var/lib/hsmbridge"
	}
	if got := DefaultStateDir(); got != want {
		t.Fatalf("DefaultStateDir = %q, want %q", got, want)
	}
}

func benchSign(b *testing.B, spec core.KeySpec, s core.SignatureScheme) {
	be, _ := newBackend(b)
	info := create(b, be, "bench", "k", spec)
	id := core.KeyID{Namespace: "bench", Name: "k"}
	d := digest(s.Hash.Crypto(), "bench")
	time.Sleep(racyWindow) // let the cache settle as it does in a long-running host
	if _, err := be.Sign(ctx, id, d, s); err != nil {
		b.Fatal(err)
	}
	_ = info
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := be.Sign(ctx, id, d, s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignP256(b *testing.B) {
	benchSign(b, ecSpec(core.CurveP256, core.UsageSign), core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
}

func BenchmarkSignRSA2048(b *testing.B) {
	benchSign(b, rsaSpec(2048, core.UsageSign), core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256})
}

// BenchmarkECDSASignBaseline is the floor the simulator's P-256 signing is
// measured against.
func BenchmarkECDSASignBaseline(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := digest(crypto.SHA256, "bench")
	for i := 0; i < b.N; i++ {
		if _, err := ecdsa.SignASN1(rand.Reader, k, d); err != nil {
			b.Fatal(err)
		}
	}
}

// A create with no allowed operations gets what Managed HSM gives such a
// key (checked against the service's recorded answers in core.DefaultUsages).
func TestCreateWithoutOperationsGetsTheServiceDefaults(t *testing.T) {
	b, _ := newBackend(t)
	for _, spec := range []core.KeySpec{rsaSpec(2048), ecSpec(core.CurveP256), {Type: core.KeyTypeOct, Bits: 256}} {
		info, err := b.CreateKey(ctx, core.KeyID{Namespace: "ns", Name: "d-" + string(spec.Type)}, spec)
		if err != nil {
			t.Fatal(err)
		}
		want := core.DefaultUsages(spec.Type)
		if len(info.Usages) != len(want) {
			t.Fatalf("%s key got %v, want %v", spec.Type, info.Usages, want)
		}
		for _, u := range want {
			if !info.Allows(u) {
				t.Fatalf("%s key got %v, want %v", spec.Type, info.Usages, want)
			}
		}
	}
}
