package hsmkey_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/hsmkey"
)

var hashes = []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512}

func digestOf(h crypto.Hash, msg string) []byte {
	w := h.New()
	w.Write([]byte(msg))
	return w.Sum(nil)
}

// Every ECDSA signature verifies with ecdsa.VerifyASN1, for each curve and
// digest.
func TestECDSASignaturesVerifyWithCryptoECDSA(t *testing.T) {
	t.Parallel()
	for _, spec := range []core.KeySpec{ecP256, ecP384, ecP521} {
		t.Run(string(spec.Curve), func(t *testing.T) {
			t.Parallel()
			k := newKey(t, spec)
			pub := k.Public().(*ecdsa.PublicKey)
			if _, ok := k.(crypto.Decrypter); ok {
				t.Fatal("an EC key claims to decrypt")
			}
			for _, h := range hashes {
				d := digestOf(h, "message for "+h.String())
				sig, err := k.Sign(rand.Reader, d, h)
				if err != nil {
					t.Fatalf("%v: %v", h, err)
				}
				if !ecdsa.VerifyASN1(pub, d, sig) {
					t.Fatalf("%v: the signature does not verify", h)
				}
				if d[0] ^= 1; ecdsa.VerifyASN1(pub, d, sig) {
					t.Fatalf("%v: the signature verifies another digest", h)
				}
			}
		})
	}
}

// RSA PKCS #1 v1.5 and PSS verify with crypto/rsa; PSS salts follow
// crypto/rsa's rules: Auto is the largest the key allows, EqualsHash the
// hash's length, a number that number.
func TestRSASignaturesVerifyWithCryptoRSA(t *testing.T) {
	t.Parallel()
	for _, spec := range []core.KeySpec{rsa2048, rsa3072} {
		t.Run(fmt.Sprint(spec.Bits), func(t *testing.T) {
			t.Parallel()
			k := newKey(t, spec)
			pub := k.Public().(*rsa.PublicKey)
			if pub.N.BitLen() != spec.Bits {
				t.Fatalf("public key of %d bits", pub.N.BitLen())
			}
			for _, h := range hashes {
				d := digestOf(h, "message for "+h.String())
				sig, err := k.Sign(nil, d, h)
				if err != nil {
					t.Fatalf("PKCS#1 v1.5 %v: %v", h, err)
				}
				if err := rsa.VerifyPKCS1v15(pub, h, d, sig); err != nil {
					t.Fatalf("PKCS#1 v1.5 %v: %v", h, err)
				}
				maxSalt := (pub.N.BitLen()-1+7)/8 - 2 - h.Size()
				for _, c := range []struct{ opt, want int }{
					{rsa.PSSSaltLengthAuto, maxSalt},
					{rsa.PSSSaltLengthEqualsHash, h.Size()},
					{20, 20},
				} {
					sig, err := k.Sign(rand.Reader, d, &rsa.PSSOptions{SaltLength: c.opt, Hash: h})
					if err != nil {
						t.Fatalf("PSS %v salt %d: %v", h, c.opt, err)
					}
					if err := rsa.VerifyPSS(pub, h, d, sig, &rsa.PSSOptions{SaltLength: c.want}); err != nil {
						t.Fatalf("PSS %v salt option %d: not a signature with salt %d: %v", h, c.opt, c.want, err)
					}
					if err := rsa.VerifyPSS(pub, h, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}); err != nil {
						t.Fatalf("PSS %v salt %d: %v", h, c.opt, err)
					}
				}
			}
		})
	}
}

// What crypto/rsa and crypto/ecdsa refuse is refused before a request is
// sent, with a message that names the key.
func TestSignRefusesWhatTheStandardLibraryRefuses(t *testing.T) {
	t.Parallel()
	r, e := newKey(t, rsa2048), newKey(t, ecP256)
	d := digestOf(crypto.SHA256, "x")
	for name, c := range map[string]struct {
		k      hsmkey.Key
		digest []byte
		opts   crypto.SignerOpts
		kind   error
	}{
		"no hash":            {r, d, crypto.Hash(0), core.ErrInvalidInput},
		"nil opts":           {e, d, nil, core.ErrInvalidInput},
		"short digest":       {e, d[:31], crypto.SHA256, core.ErrInvalidInput},
		"digest of another":  {r, d, crypto.SHA384, core.ErrInvalidInput},
		"MD5+SHA1":           {r, make([]byte, 36), crypto.MD5SHA1, core.ErrUnsupported},
		"SHA3":               {e, make([]byte, 32), crypto.SHA3_256, core.ErrUnsupported},
		"PSS on EC":          {e, d, &rsa.PSSOptions{Hash: crypto.SHA256}, core.ErrInvalidInput},
		"PSS without a hash": {r, d, &rsa.PSSOptions{}, core.ErrInvalidInput},
		"PSS salt -2":        {r, d, &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: -2}, core.ErrInvalidInput},
	} {
		_, err := c.k.Sign(rand.Reader, c.digest, c.opts)
		if !errors.Is(err, c.kind) || !strings.HasPrefix(err.Error(), c.k.Reference()+": ") {
			t.Errorf("%s: %v, want %v naming %s", name, err, c.kind, c.k.Reference())
		}
	}
	// A salt too long for the key is the host's refusal.
	_, err := r.Sign(rand.Reader, d, &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: 300})
	if !errors.Is(err, core.ErrInvalidInput) || !strings.Contains(err.Error(), "salt") {
		t.Errorf("salt 300 on a 2048-bit key: %v", err)
	}
}

// OAEP (each hash, a label, another MGF1 hash) and PKCS #1 v1.5
// ciphertexts made by crypto/rsa decrypt in the backend.
func TestDecryptCiphertextsOfCryptoRSA(t *testing.T) {
	t.Parallel()
	k := newKey(t, rsa2048)
	dec, ok := k.(hsmkey.Decrypter)
	if !ok {
		t.Fatal("an RSA key is not a Decrypter")
	}
	pub := k.Public().(*rsa.PublicKey)
	msg := []byte("a session key, say")
	for _, h := range hashes {
		for _, label := range [][]byte{nil, []byte("label")} {
			ct, err := rsa.EncryptOAEP(h.New(), rand.Reader, pub, msg, label)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := dec.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: h, Label: label})
			if err != nil || !bytes.Equal(pt, msg) {
				t.Fatalf("OAEP %v label %q: %q, %v", h, label, pt, err)
			}
		}
	}
	ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, pub, msg, &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := dec.DecryptContext(context.Background(), ct, &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1}); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("OAEP SHA-256 with MGF1 SHA-1: %q, %v", pt, err)
	}
	ct, err = rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []crypto.DecrypterOpts{nil, &rsa.PKCS1v15DecryptOptions{}, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: len(msg)}} {
		if pt, err := dec.Decrypt(rand.Reader, ct, opts); err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("PKCS#1 v1.5 %#v: %q, %v", opts, pt, err)
		}
	}
	// A bad ciphertext is an error, except where a session key is asked
	// for: then, as crypto/rsa, random bytes of its length and no error.
	bad := bytes.Clone(ct)
	bad[len(bad)-1] ^= 1
	if _, err := dec.Decrypt(rand.Reader, bad, nil); err == nil || errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("a corrupt ciphertext: %v", err)
	}
	pt, err := dec.Decrypt(rand.Reader, bad, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 48})
	if err != nil || len(pt) != 48 {
		t.Fatalf("session key from a corrupt ciphertext: %d bytes, %v", len(pt), err)
	}
	// The right padding with the wrong length is no different.
	if pt, err := dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 48}); err != nil || len(pt) != 48 || bytes.Contains(pt, msg) {
		t.Fatalf("session key of the wrong length: %q, %v", pt, err)
	}
	if _, err := dec.Decrypt(rand.Reader, ct, &rsa.PSSOptions{}); !errors.Is(err, core.ErrInvalidInput) {
		t.Fatalf("PSS options to Decrypt: %v", err)
	}
}

// Public is the key hsmhost's CLI prints (hsmhost key pubkey), and the
// reference is canonical and pinned to a version.
func TestPublicKeyIsTheBackendsAndTheReferenceIsPinned(t *testing.T) {
	t.Parallel()
	for _, spec := range []core.KeySpec{rsa2048, ecP384} {
		ref := createKey(t, mainHost, spec)
		k, err := hsmkey.Open(context.Background(), "akv:vault=Test,name="+strings.TrimPrefix(ref, "managedhsm:Test:"))
		if err != nil {
			t.Fatal(err)
		}
		out, err := mainHost.cli("key", "pubkey", ref)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		b, _ := pem.Decode([]byte(out))
		if b == nil {
			t.Fatalf("hsmhost key pubkey printed %q", out)
		}
		want, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !want.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
			t.Fatalf("%s: Public() %v, hsmhost key pubkey %v", ref, k.Public(), want)
		}
		if !strings.HasPrefix(k.Reference(), ref+"?version=") || k.Backend() != "simulator" {
			t.Fatalf("Reference() %q, Backend() %q", k.Reference(), k.Backend())
		}
	}
}

// A key opened before its rotation keeps signing with the version it
// opened; opening it again gets the new one.
func TestOpenedKeyKeepsItsVersionAcrossRotation(t *testing.T) {
	t.Parallel()
	ref := createKey(t, mainHost, ecP256)
	old, err := hsmkey.Open(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := mainHost.cli("key", "create", ref, "--kty", "EC", "--curve", "P-256", "--ops", "sign"); err != nil {
		t.Fatalf("new version: %v\n%s", err, out)
	}
	cur, err := hsmkey.Open(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Reference() == old.Reference() || cur.Public().(*ecdsa.PublicKey).Equal(old.Public()) {
		t.Fatalf("no new version: %s, %s", old.Reference(), cur.Reference())
	}
	d := digestOf(crypto.SHA256, "rotated")
	for _, k := range []hsmkey.Key{old, cur} {
		sig, err := k.Sign(rand.Reader, d, crypto.SHA256)
		if err != nil || !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), d, sig) {
			t.Fatalf("%s: %v (or not verified)", k.Reference(), err)
		}
	}
}

// Errors carry the host's message, which names the reference, the backend
// and the cause, and errors.Is works on their kind.
func TestErrorsCarryTheHostsMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, err := hsmkey.Open(ctx, "managedhsm:MyHSM:nokey")
	if !errors.Is(err, core.ErrNotFound) || !strings.HasPrefix(err.Error(), "managedhsm:MyHSM:nokey: ") ||
		!strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), `backend "simulator"`) {
		t.Errorf("missing key: %v", err)
	}
	_, err = hsmkey.Open(ctx, "managedhsm:")
	if !errors.Is(err, core.ErrInvalidReference) || !strings.Contains(err.Error(), `"managedhsm:"`) {
		t.Errorf("bad reference: %v", err)
	}
	aes := createKey(t, mainHost, core.KeySpec{Type: core.KeyTypeOct, Bits: 256})
	if _, err = hsmkey.Open(ctx, aes); !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), aes) {
		t.Errorf("AES key: %v", err)
	}
	k1 := createKey(t, mainHost, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256K})
	if _, err = hsmkey.Open(ctx, k1); !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), "secp256k1") {
		t.Errorf("P-256K key: %v", err)
	}
	// A key that may only decrypt refuses to sign, and one that may only
	// sign refuses to decrypt: the host says so.
	decOnly := newKey(t, core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048, Usages: []core.KeyUsage{core.UsageDecrypt}})
	_, err = decOnly.Sign(rand.Reader, digestOf(crypto.SHA256, "x"), crypto.SHA256)
	if !errors.Is(err, core.ErrOperationNotAllowed) || !strings.HasPrefix(err.Error(), decOnly.Reference()) || !strings.Contains(err.Error(), `backend "simulator"`) {
		t.Errorf("sign with a decrypt-only key: %v", err)
	}
	signOnly := newKey(t, core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048, Usages: []core.KeyUsage{core.UsageSign}})
	ct, _ := rsa.EncryptPKCS1v15(rand.Reader, signOnly.Public().(*rsa.PublicKey), []byte("x"))
	_, err = signOnly.(crypto.Decrypter).Decrypt(rand.Reader, ct, nil)
	if !errors.Is(err, core.ErrOperationNotAllowed) || !strings.HasPrefix(err.Error(), signOnly.Reference()) {
		t.Errorf("decrypt with a sign-only key: %v", err)
	}
	// No host: the error names the reference and the socket and says what to do.
	c := hsmkey.NewClient(hsmkey.WithSocket(t.TempDir() + "/none.sock"))
	_, err = c.Open(ctx, "managedhsm:MyHSM:myeckey")
	if !errors.Is(err, core.ErrUnavailable) || !strings.HasPrefix(err.Error(), "managedhsm:MyHSM:myeckey: cannot reach hsmhost at "+c.Socket()) ||
		!strings.Contains(err.Error(), "hsmhost serve") {
		t.Errorf("no host: %v", err)
	}
}

// A key from a closed client fails, and says why.
func TestClosedClient(t *testing.T) {
	t.Parallel()
	c := hsmkey.NewClient()
	k, err := c.Open(context.Background(), "managedhsm:MyHSM:myeckey")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := k.Sign(rand.Reader, digestOf(crypto.SHA256, "x"), crypto.SHA256); !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("%v", err)
	}
}

// The curves of Go's crypto/elliptic come back as such (x509 and tls
// match on them).
func TestECPublicKeyCurves(t *testing.T) {
	t.Parallel()
	for spec, want := range map[*core.KeySpec]elliptic.Curve{&ecP256: elliptic.P256(), &ecP384: elliptic.P384(), &ecP521: elliptic.P521()} {
		if got := newKey(t, *spec).Public().(*ecdsa.PublicKey).Curve; got != want {
			t.Errorf("%s: curve %v", spec.Curve, got.Params().Name)
		}
	}
}
