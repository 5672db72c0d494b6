package core

import (
	"errors"
	"testing"
)

// Every curve has its Key Vault name (in any case, as az takes it), its
// OpenSSL group name and a size; P-256K is secp256k1.
func TestCurveNames(t *testing.T) {
	for in, want := range map[string]Curve{
		"P-256": CurveP256, "p-256": CurveP256, "prime256v1": CurveP256, "secp256r1": CurveP256,
		"P-256K": CurveP256K, "p-256k": CurveP256K, "secp256k1": CurveP256K, "SECP256K1": CurveP256K,
		"P-384": CurveP384, "secp384r1": CurveP384, "P-521": CurveP521, "SECP521R1": CurveP521,
	} {
		if got, err := ParseCurve(in); err != nil || got != want {
			t.Errorf("ParseCurve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "P-256-K", "P256K", "secp224r1", "X25519", "P-192"} {
		if _, err := ParseCurve(bad); !errors.Is(err, ErrUnsupported) {
			t.Errorf("ParseCurve(%q): %v, want unsupported", bad, err)
		}
	}
	want := map[Curve]struct {
		bits    int
		openssl string
	}{CurveP256: {256, "prime256v1"}, CurveP256K: {256, "secp256k1"}, CurveP384: {384, "secp384r1"}, CurveP521: {521, "secp521r1"}}
	if got := Curves(); len(got) != len(want) || got[1] != CurveP256K {
		t.Fatalf("Curves() = %v", got)
	}
	for _, c := range Curves() {
		bits, err := c.Size()
		if err != nil || bits != want[c].bits || c.OpenSSLName() != want[c].openssl {
			t.Errorf("%s: size %d %v, OpenSSL name %q", c, bits, err, c.OpenSSLName())
		}
		if err := (KeySpec{Type: KeyTypeEC, Curve: c}).Validate(); err != nil {
			t.Errorf("EC %s: %v", c, err)
		}
	}
	if _, err := Curve("secp256k1").Size(); err == nil {
		t.Error("a curve is named by its canonical name only once parsed")
	}
	if err := (KeySpec{Type: KeyTypeEC, Curve: "P-192"}).Validate(); err == nil {
		t.Error("P-192 validated")
	}
	// Go's crypto/x509 has no secp256k1: PublicKey says so.
	if _, err := (KeyInfo{Type: KeyTypeEC, Curve: CurveP256K, PublicKeyDER: []byte{0x30}}).PublicKey(); !errors.Is(err, ErrUnsupported) {
		t.Errorf("P-256K PublicKey: %v", err)
	}
}
