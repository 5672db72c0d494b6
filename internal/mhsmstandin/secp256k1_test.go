package mhsmstandin

import (
	"context"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

func TestSecp256k1KnownPoint(t *testing.T) {
	// 2·G from the curve's published parameters.
	k, err := newK1Key(big.NewInt(2))
	if err != nil {
		t.Fatal(err)
	}
	wx, _ := new(big.Int).SetString("c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5", 16)
	wy, _ := new(big.Int).SetString("1ae168fea63dc339a3c58419466ceaeef7f632653266d0e1236431a950cfe52a", 16)
	if k.x.Cmp(wx) != 0 || k.y.Cmp(wy) != 0 || !k1OnCurve(k.x, k.y) {
		t.Fatalf("2G = (%x, %x)", k.x, k.y)
	}
	// n·G is the point at infinity.
	if p := k1Mul(k1N, k1Point{k1Gx, k1Gy}); p.x != nil {
		t.Fatal("n·G is not the point at infinity")
	}
}

// The ES256K signature a real Managed HSM made (go-TestSignVerify-MHSM
// recording) verifies with this implementation, and a changed one does not.
func TestSecp256k1VerifiesRecordedSignature(t *testing.T) {
	dec := func(s string) []byte {
		b, err := unb64(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	x := new(big.Int).SetBytes(dec("o663Q4xWVgMZX2wnZheLz263jFfJYpoRkJDow-yopbg"))
	y := new(big.Int).SetBytes(dec("TwVJUOSB1vbCasmdmyO7vsWcdNlnevZPPvcgab1aTPk"))
	digest := dec("ltYuKr0-Qt5fUDMPuO_ExVmYNSeAd7IemqCzPB3wehw")
	sig := dec("G5INbMmvlfu78C5K0wEEVByQavTMOPg4XjL_04IokYJh6wIpqp4JzA-obn9JSOmAGrlyd2yXXlLNxNKaXcjgNg")
	if !k1OnCurve(x, y) || !k1Verify(x, y, digest, sig) {
		t.Fatal("recorded ES256K signature does not verify")
	}
	sig[10] ^= 1
	if k1Verify(x, y, digest, sig) {
		t.Fatal("altered signature verifies")
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
