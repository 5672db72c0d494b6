package core

import "testing"

func TestSignatureSchemeNamesRoundTrip(t *testing.T) {
	for _, n := range AllSignatureSchemeNames() {
		s, err := ParseSignatureSchemeName(n)
		if err != nil || s.Name() != n {
			t.Errorf("%q: %+v %v", n, s, err)
		}
	}
	for _, bad := range []string{"", "rsa", "ecdsa-md5", "dsa-sha256", "rsa-pss-"} {
		if _, err := ParseSignatureSchemeName(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseHashSpellings(t *testing.T) {
	for in, want := range map[string]Hash{"sha256": SHA256, "SHA256": SHA256, "SHA2-256": SHA256, "sha-384": SHA384, "SHA1": SHA1, "sha512": SHA512} {
		if got, err := ParseHash(in); err != nil || got != want {
			t.Errorf("ParseHash(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"md5", "sha", "sha3-256", ""} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) succeeded", bad)
		}
	}
}

func TestSignatureSchemeCheckFor(t *testing.T) {
	rsaKey := KeyInfo{ID: KeyID{"n", "k", "1"}, Type: KeyTypeRSA, Bits: 2048}
	ecKey := KeyInfo{ID: KeyID{"n", "e", "1"}, Type: KeyTypeEC, Curve: CurveP256}
	d32 := make([]byte, 32)
	ok := []struct {
		s SignatureScheme
		k KeyInfo
	}{
		{SignatureScheme{Padding: PaddingPKCS1v15, Hash: SHA256}, rsaKey},
		{SignatureScheme{Padding: PaddingPSS, Hash: SHA256, SaltLength: 32}, rsaKey},
		{SignatureScheme{Padding: PaddingPSS, Hash: SHA256, SaltLength: 256 - 32 - 2}, rsaKey},
		{SignatureScheme{Padding: PaddingECDSA, Hash: SHA256}, ecKey},
	}
	for _, c := range ok {
		if err := c.s.CheckFor(c.k, d32); err != nil {
			t.Errorf("%s on %s: %v", c.s.Name(), c.k.Type, err)
		}
	}
	bad := []struct {
		s SignatureScheme
		k KeyInfo
		d []byte
	}{
		{SignatureScheme{Padding: PaddingPKCS1v15, Hash: SHA256}, ecKey, d32},
		{SignatureScheme{Padding: PaddingECDSA, Hash: SHA256}, rsaKey, d32},
		{SignatureScheme{Padding: PaddingECDSA, Hash: SHA384}, ecKey, d32},
		{SignatureScheme{Padding: PaddingPSS, Hash: SHA256, SaltLength: 256 - 32 - 1}, rsaKey, d32},
		{SignatureScheme{Padding: PaddingPSS, Hash: SHA256, SaltLength: -1}, rsaKey, d32},
		{SignatureScheme{Hash: SHA256}, rsaKey, d32},
	}
	for _, c := range bad {
		if err := c.s.CheckFor(c.k, c.d); err == nil {
			t.Errorf("%+v on %s accepted", c.s, c.k.Type)
		}
	}
}
