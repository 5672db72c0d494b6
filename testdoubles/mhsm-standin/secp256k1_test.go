package mhsmstandin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/hsmbridge/hsmbridge/internal/secp256k1"
)

// P-256K as the recordings show the service answer it, and as strictly:
// crv "P-256K" only (not the 2016 API's "SECP256K1", nor another case),
// ES256K only (not ES256) and over a 32-byte digest only; an imported
// private JWK must be consistent.
func TestP256KIsStrict(t *testing.T) {
	_, client, _ := setup(t, Options{})
	ctx := context.Background()
	for _, crv := range []string{"SECP256K1", "p-256k", "secp256k1"} {
		_, err := client.CreateKey(ctx, "bad", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveName(crv))}, nil)
		if status, code, msg, _ := respErr(t, err); status != 400 || code != "BadParameter" || !strings.Contains(msg, "P-256K") {
			t.Errorf("crv %s: %d %s %q", crv, status, code, msg)
		}
	}
	cr, err := client.CreateKey(ctx, "k1", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256K)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *cr.Key.Kty != azkeys.KeyTypeECHSM || *cr.Key.Crv != azkeys.CurveNameP256K || len(cr.Key.X) != 32 || len(cr.Key.Y) != 32 {
		t.Fatalf("P-256K key %+v", cr.Key)
	}
	var ops []string
	for _, o := range cr.Key.KeyOps {
		ops = append(ops, string(*o))
	}
	if strings.Join(ops, " ") != "verify deriveKey sign" { // go-TestCRUD-EC_MHSM
		t.Errorf("default key_ops %v", ops)
	}
	pub, err := secp256k1.NewPublicKey(cr.Key.X, cr.Key.Y)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("strict"))
	for _, c := range []struct {
		alg    azkeys.SignatureAlgorithm
		digest []byte
	}{{azkeys.SignatureAlgorithmES256, d[:]}, {azkeys.SignatureAlgorithmES256K, d[:20]}, {azkeys.SignatureAlgorithmES384, make([]byte, 48)}} {
		_, err := client.Sign(ctx, "k1", "", azkeys.SignParameters{Algorithm: to.Ptr(c.alg), Value: c.digest}, nil)
		if status, code, _, _ := respErr(t, err); status != 400 || code != "BadParameter" {
			t.Errorf("%s over %d bytes: %d %s", c.alg, len(c.digest), status, code)
		}
	}
	sr, err := client.Sign(ctx, "k1", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256K), Value: d[:]}, nil)
	if err != nil || len(sr.Result) != 64 || !secp256k1.VerifyRaw(pub, d[:], sr.Result) {
		t.Fatalf("ES256K: %v", err)
	}
	vr, err := client.Verify(ctx, "k1", "", azkeys.VerifyParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256K), Digest: d[:], Signature: sr.Result}, nil)
	if err != nil || vr.Value == nil || !*vr.Value {
		t.Fatalf("verify: %v", err)
	}

	// Import: d must give x and y.
	local, _ := secp256k1.GenerateKey(nil)
	other, _ := secp256k1.GenerateKey(nil)
	point := other.PublicKey.Bytes()
	_, err = client.ImportKey(ctx, "imp", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeEC), Crv: to.Ptr(azkeys.CurveNameP256K),
		D: local.Bytes(), X: point[1:33], Y: point[33:]}}, nil)
	if status, code, _, _ := respErr(t, err); status != 400 || code != "BadParameter" {
		t.Errorf("inconsistent import: %d %s", status, code)
	}
	point = local.PublicKey.Bytes()
	ir, err := client.ImportKey(ctx, "imp", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeEC), Crv: to.Ptr(azkeys.CurveNameP256K),
		D: local.Bytes(), X: point[1:33], Y: point[33:], KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationSign)}}}, nil)
	if err != nil || !bytes.Equal(ir.Key.X, point[1:33]) {
		t.Fatalf("import: %v", err)
	}
}

// An ES256K signature from the stand-in, checked by the openssl CLI.
func TestES256KWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl CLI not found")
	}
	_, client, _ := setup(t, Options{})
	ctx := context.Background()
	cr, err := client.CreateKey(ctx, "k1", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256K)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *cr.Key.Crv != azkeys.CurveNameP256K || len(cr.Key.X) != 32 {
		t.Fatalf("P-256K key %+v", cr.Key)
	}
	digest := sha256.Sum256([]byte("secp256k1 via the stand-in"))
	sr, err := client.Sign(ctx, "k1", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256K), Value: digest[:]}, nil)
	if err != nil || len(sr.Result) != 64 {
		t.Fatalf("sign: %v", err)
	}
	type algID struct{ Alg, Curve asn1.ObjectIdentifier }
	spki, err := asn1.Marshal(struct {
		Alg algID
		Pub asn1.BitString
	}{algID{asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}, asn1.ObjectIdentifier{1, 3, 132, 0, 10}},
		asn1.BitString{Bytes: append(append([]byte{4}, cr.Key.X...), cr.Key.Y...), BitLength: 65 * 8}})
	if err != nil {
		t.Fatal(err)
	}
	der, _ := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sr.Result[:32]), new(big.Int).SetBytes(sr.Result[32:])})
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub := write("pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))
	in := write("digest.bin", digest[:])
	sigf := write("sig.der", der)
	out, err := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", in, "-sigfile", sigf).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl rejects the ES256K signature: %v\n%s", err, out)
	}
	digest[0] ^= 1
	in = write("digest2.bin", digest[:])
	if err := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", in, "-sigfile", sigf).Run(); err == nil {
		t.Fatal("openssl accepted the signature for another digest")
	}
}
