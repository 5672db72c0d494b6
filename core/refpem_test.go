package core

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
)

// The PKCS#8 form's OID is 2.25.<RefPKCS8UUID as an integer> (X.667), and
// the AlgorithmIdentifier bytes written out in refpem.go are its DER.
func TestRefPKCS8OIDIsTheUUIDs(t *testing.T) {
	n, ok := new(big.Int).SetString(strings.ReplaceAll(RefPKCS8UUID, "-", ""), 16)
	if !ok || n.BitLen() > 128 {
		t.Fatalf("RefPKCS8UUID %q is not a UUID", RefPKCS8UUID)
	}
	if got := "2.25." + n.String(); got != RefPKCS8OID {
		t.Fatalf("the UUID gives %s, RefPKCS8OID is %s", got, RefPKCS8OID)
	}
	// X.690: the first two arcs in one subidentifier (2*40+25), then the
	// UUID in base 128, high bit set on all but the last byte.
	var arc []byte
	for v := new(big.Int).Set(n); ; {
		b := byte(new(big.Int).And(v, big.NewInt(0x7f)).Int64())
		if len(arc) > 0 {
			b |= 0x80
		}
		arc = append([]byte{b}, arc...)
		if v.Rsh(v, 7); v.Sign() == 0 {
			break
		}
	}
	oid := append([]byte{0x06, byte(1 + len(arc)), 2*40 + 25}, arc...)
	want := append([]byte{0x30, byte(len(oid))}, oid...)
	if !bytes.Equal(want, refPKCS8AlgorithmID) {
		t.Fatalf("AlgorithmIdentifier DER\n% x\nwant\n% x", refPKCS8AlgorithmID, want)
	}
}

// The PKCS#8 form is one "PRIVATE KEY" block holding a version 0
// PrivateKeyInfo of our algorithm whose privateKey is the label form's DER;
// it is found among other blocks, a real private key before it included,
// and Go's own PKCS#8 parser takes it for no key at all.
func TestRefPKCS8PEM(t *testing.T) {
	ref, _ := ParseKeyRef("akv:vault=MyHSM,name=tls")
	p, err := EncodeRefPKCS8PEM(ref)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(p)
	if block == nil || block.Type != "PRIVATE KEY" || len(rest) != 0 {
		t.Fatalf("unexpected PEM:\n%s", p)
	}
	var p8 struct {
		Version    int
		Algorithm  asn1.RawValue
		PrivateKey []byte
	}
	if trailing, err := asn1.Unmarshal(block.Bytes, &p8); err != nil || len(trailing) != 0 {
		t.Fatalf("not a PrivateKeyInfo: %v", err)
	}
	label, _ := EncodeRefPEM(ref)
	inner, _ := pem.Decode(label)
	if p8.Version != 0 || !bytes.Equal(p8.Algorithm.FullBytes, refPKCS8AlgorithmID) || !bytes.Equal(p8.PrivateKey, inner.Bytes) {
		t.Fatalf("PrivateKeyInfo %d % x % x", p8.Version, p8.Algorithm.FullBytes, p8.PrivateKey)
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		t.Fatal("Go's PKCS#8 parser found a key in a key reference")
	}

	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	real, _ := x509.MarshalPKCS8PrivateKey(ek)
	bundle := "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n" +
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: real})) + string(p)
	if got, err := DecodeRefPEM([]byte(bundle)); err != nil || got.String() != "managedhsm:MyHSM:tls" {
		t.Fatalf("decoded %q, %v", got, err)
	}
	if _, err := DecodeRefPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: real})); err == nil {
		t.Fatal("a real private key decoded as a key reference")
	}
}

// A PKCS#8 of our algorithm that is not exactly the form is refused, naming
// what is wrong; so is another version of the reference inside it.
func TestRefPKCS8PEMRefusals(t *testing.T) {
	ref, _ := ParseKeyRef("managedhsm:MyHSM:k")
	inner, _ := refDER(ref)
	alg := asn1.RawValue{FullBytes: refPKCS8AlgorithmID}
	withParams := asn1.RawValue{FullBytes: append([]byte{0x30, 0x18}, append(refPKCS8AlgorithmID[2:], 0x05, 0x00)...)}
	v2, _ := asn1.Marshal(keyReferenceFile{Version: "hsmbridge-keyref-v2", Reference: "managedhsm:MyHSM:k"})
	attrs, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: []byte{}})
	cases := []struct {
		name string
		der  any
		kind error
		want string
	}{
		{"version 1", refPKCS8{Version: 1, Algorithm: alg, PrivateKey: inner}, ErrInvalidInput, "not a version 0 PrivateKeyInfo"},
		{"attributes", refPKCS8{Algorithm: alg, PrivateKey: inner, Rest: asn1.RawValue{FullBytes: attrs}}, ErrInvalidInput, "without attributes"},
		{"not a reference inside", refPKCS8{Algorithm: alg, PrivateKey: []byte("secret")}, ErrInvalidInput, "malformed PRIVATE KEY block"},
		{"another version inside", refPKCS8{Algorithm: alg, PrivateKey: v2}, ErrUnsupported, `"hsmbridge-keyref-v2" is not "hsmbridge-keyref-v1"`},
		// Parameters make it another AlgorithmIdentifier: not ours, passed over.
		{"parameters", refPKCS8{Algorithm: withParams, PrivateKey: inner}, ErrInvalidInput, "no \"HSMBRIDGE KEY REFERENCE\" PEM block found"},
	}
	for _, c := range cases {
		der, err := asn1.Marshal(c.der)
		if err != nil {
			t.Fatal(err)
		}
		_, err = DecodeRefPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %v containing %q", c.name, err, c.kind, c.want)
		}
	}
}
