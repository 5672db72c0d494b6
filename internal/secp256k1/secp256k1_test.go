package secp256k1

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func hexInt(t *testing.T, s string) *big.Int {
	t.Helper()
	v, ok := new(big.Int).SetString(s, 16)
	if !ok {
		t.Fatalf("bad hex %q", s)
	}
	return v
}

// affineMul is the textbook double-and-add in affine coordinates: slow,
// but too plain to be wrong in the ways the Jacobian formulas could be.
func affineMul(k, x, y *big.Int) (*big.Int, *big.Int) {
	var rx, ry *big.Int // nil: infinity
	add := func(ax, ay, bx, by *big.Int) (*big.Int, *big.Int) {
		if ax == nil {
			return bx, by
		}
		if bx == nil {
			return ax, ay
		}
		var l *big.Int
		if ax.Cmp(bx) == 0 {
			if ay.Cmp(by) != 0 || ay.Sign() == 0 {
				return nil, nil
			}
			num := new(big.Int).Mul(ax, ax)
			num.Mul(num, big.NewInt(3))
			den := new(big.Int).Lsh(ay, 1)
			l = num.Mul(num, den.ModInverse(den, fieldP))
		} else {
			num := new(big.Int).Sub(by, ay)
			den := new(big.Int).Sub(bx, ax)
			den.Mod(den, fieldP)
			l = num.Mul(num, den.ModInverse(den, fieldP))
		}
		l.Mod(l, fieldP)
		x3 := new(big.Int).Mul(l, l)
		x3.Sub(x3, ax)
		x3.Sub(x3, bx)
		x3.Mod(x3, fieldP)
		y3 := new(big.Int).Sub(ax, x3)
		y3.Mul(y3, l)
		y3.Sub(y3, ay)
		y3.Mod(y3, fieldP)
		return x3, y3
	}
	for i := k.BitLen() - 1; i >= 0; i-- {
		rx, ry = add(rx, ry, rx, ry)
		if k.Bit(i) == 1 {
			rx, ry = add(rx, ry, x, y)
		}
	}
	return rx, ry
}

func TestPublishedPoints(t *testing.T) {
	// 2·G (from the curve's published parameters and test vectors).
	k, err := NewPrivateKey([]byte{2})
	if err != nil {
		t.Fatal(err)
	}
	if k.X.Cmp(hexInt(t, "c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5")) != 0 ||
		k.Y.Cmp(hexInt(t, "1ae168fea63dc339a3c58419466ceaeef7f632653266d0e1236431a950cfe52a")) != 0 {
		t.Fatalf("2G = (%x, %x)", k.X, k.Y)
	}
	if !OnCurve(genX, genY) || !OnCurve(k.X, k.Y) {
		t.Fatal("G or 2G is not on the curve")
	}
	// n·G is the point at infinity; (n-1)·G is -G.
	if nG := mulJacobian(orderN, toJacobian(genX, genY)); !nG.isInfinity() {
		t.Fatal("n·G is not the point at infinity")
	}
	x, y := scalarMult(new(big.Int).Sub(orderN, big.NewInt(1)), genX, genY)
	if x.Cmp(genX) != 0 || new(big.Int).Add(y, genY).Cmp(fieldP) != 0 {
		t.Fatal("(n-1)·G is not -G")
	}
	for _, d := range [][]byte{nil, {0}, orderN.Bytes(), make([]byte, 33)} {
		if _, err := NewPrivateKey(d); err == nil {
			t.Errorf("scalar %x accepted", d)
		}
	}
}

// The Jacobian, windowed multiplication agrees with the affine textbook one,
// on random scalars and on ones with runs of zero and one bits.
func TestScalarMultMatchesAffine(t *testing.T) {
	scalars := []*big.Int{big.NewInt(1), big.NewInt(15), big.NewInt(16), big.NewInt(17),
		new(big.Int).Lsh(big.NewInt(1), 255), new(big.Int).Sub(orderN, big.NewInt(2))}
	for i := 0; i < 8; i++ {
		s, _ := rand.Int(rand.Reader, orderN)
		scalars = append(scalars, s)
	}
	px, py := affineMul(big.NewInt(12345), genX, genY)
	for _, s := range scalars {
		for _, p := range [][2]*big.Int{{genX, genY}, {px, py}} {
			wx, wy := affineMul(s, p[0], p[1])
			gx, gy := scalarMult(s, p[0], p[1])
			if wx.Cmp(gx) != 0 || wy.Cmp(gy) != 0 {
				t.Fatalf("%x·P: Jacobian (%x, %x), affine (%x, %x)", s, gx, gy, wx, wy)
			}
		}
	}
}

func TestSignVerify(t *testing.T) {
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, digest := range [][]byte{sum256("a"), sum512("b"), {1, 2, 3}} {
		sig, err := k.Sign(nil, digest, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !VerifyASN1(&k.PublicKey, digest, sig) {
			t.Fatalf("%d-byte digest: own signature does not verify", len(digest))
		}
		other := bytes.Clone(digest)
		other[0] ^= 1
		if VerifyASN1(&k.PublicKey, other, sig) {
			t.Fatal("verifies over another digest")
		}
		raw, err := k.SignRaw(nil, digest)
		if err != nil || len(raw) != 64 || !VerifyRaw(&k.PublicKey, digest, raw) {
			t.Fatalf("raw signature: %v", err)
		}
		der, _ := RawToASN1(raw)
		if !VerifyASN1(&k.PublicKey, digest, der) {
			t.Fatal("RawToASN1 of a good signature does not verify")
		}
	}
	// Two signatures of one digest differ (the nonce is fresh).
	d := sum256("same")
	a, _ := k.SignRaw(nil, d)
	b, _ := k.SignRaw(nil, d)
	if bytes.Equal(a, b) {
		t.Fatal("two signatures of one digest are equal")
	}
	// Hedged: with a random source that repeats, the nonce still depends
	// on the message (r differs).
	zero := bytes.NewReader(make([]byte, 1<<10))
	a, _ = k.SignRaw(zero, sum256("m1"))
	b, _ = k.SignRaw(zero, sum256("m2"))
	if bytes.Equal(a[:32], b[:32]) {
		t.Fatal("one nonce for two messages with a constant random source")
	}
	other, _ := GenerateKey(nil)
	if VerifyRaw(&other.PublicKey, sum256("m1"), a) {
		t.Fatal("verifies with another key")
	}
	for _, bad := range [][]byte{nil, make([]byte, 64), append(orderN.FillBytes(make([]byte, 32)), make([]byte, 32)...)} {
		if VerifyRaw(&k.PublicKey, d, bad) {
			t.Fatalf("signature %x verifies", bad)
		}
	}
}

// The ES256K signature a real Managed HSM made (Azure SDK's Go recording
// TestSignVerify/MHSM, the stand-in's reference) verifies, and an altered
// one does not.
func TestVerifiesManagedHSMSignature(t *testing.T) {
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pub, err := NewPublicKey(dec("o663Q4xWVgMZX2wnZheLz263jFfJYpoRkJDow-yopbg"), dec("TwVJUOSB1vbCasmdmyO7vsWcdNlnevZPPvcgab1aTPk"))
	if err != nil {
		t.Fatal(err)
	}
	digest := dec("ltYuKr0-Qt5fUDMPuO_ExVmYNSeAd7IemqCzPB3wehw")
	sig := dec("G5INbMmvlfu78C5K0wEEVByQavTMOPg4XjL_04IokYJh6wIpqp4JzA-obn9JSOmAGrlyd2yXXlLNxNKaXcjgNg")
	if !VerifyRaw(pub, digest, sig) {
		t.Fatal("the recorded ES256K signature does not verify")
	}
	sig[10] ^= 1
	if VerifyRaw(pub, digest, sig) {
		t.Fatal("an altered signature verifies")
	}
}

func TestEncodingsRoundTripAndRefuseOtherKeys(t *testing.T) {
	k, _ := GenerateKey(nil)
	spkiDER, err := MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePKIXPublicKey(spkiDER)
	if err != nil || !pub.Equal(&k.PublicKey) {
		t.Fatalf("SPKI round trip: %v", err)
	}
	p8, err := MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePKCS8PrivateKey(p8)
	if err != nil || !back.Equal(k) || !back.PublicKey.Equal(&k.PublicKey) {
		t.Fatalf("PKCS#8 round trip: %v", err)
	}

	// Keys on NIST curves, in the forms x509 writes: ErrOtherKey.
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecSPKI, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecP8, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecSEC1, _ := x509.MarshalECPrivateKey(ec)
	if _, err := ParsePKIXPublicKey(ecSPKI); !errors.Is(err, ErrOtherKey) {
		t.Errorf("P-256 SPKI: %v", err)
	}
	if _, err := ParsePKCS8PrivateKey(ecP8); !errors.Is(err, ErrOtherKey) {
		t.Errorf("P-256 PKCS#8: %v", err)
	}
	if _, err := ParseECPrivateKey(ecSEC1); !errors.Is(err, ErrOtherKey) {
		t.Errorf("P-256 SEC 1: %v", err)
	}
	// Garbage is not "another key".
	if _, err := ParsePKIXPublicKey([]byte{0x30, 0}); err == nil || errors.Is(err, ErrOtherKey) {
		t.Errorf("garbage SPKI: %v", err)
	}
	// A point off the curve.
	bad := bytes.Clone(spkiDER)
	bad[len(bad)-1] ^= 1
	if _, err := ParsePKIXPublicKey(bad); err == nil {
		t.Error("a point off the curve parsed")
	}
}

// Interoperability with OpenSSL's default provider: its keys parse here to
// the same public key, our keys and signatures are accepted there, and its
// signatures verify here.
func TestOpenSSLInterop(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl CLI not found")
	}
	dir := t.TempDir()
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(openssl, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
		return out
	}
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// OpenSSL's key: PKCS#8 (its PEM), SEC 1 (its DER).
	run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1", "-out", "k.pem")
	run("pkey", "-in", "k.pem", "-pubout", "-outform", "DER", "-out", "k.spki")
	run("ec", "-in", "k.pem", "-outform", "DER", "-out", "k.sec1")
	block, _ := pem.Decode(read("k.pem"))
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatal("openssl genpkey wrote no PKCS#8 PEM")
	}
	k, err := ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := ParseECPrivateKey(read("k.sec1"))
	if err != nil || !sec1.Equal(k) {
		t.Fatalf("SEC 1: %v", err)
	}
	mine, _ := MarshalPKIXPublicKey(&k.PublicKey)
	if !bytes.Equal(mine, read("k.spki")) {
		t.Fatal("our SubjectPublicKeyInfo differs from OpenSSL's")
	}
	p8, _ := MarshalPKCS8PrivateKey(k)
	write("ours.p8", p8)
	if got := run("pkey", "-inform", "DER", "-in", "ours.p8", "-pubout", "-outform", "DER"); !bytes.Equal(got, mine) {
		t.Fatal("OpenSSL reads another public key from our PKCS#8")
	}
	write("pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mine}))

	for _, digest := range [][]byte{sum256("interop"), sum512("interop, SHA-512")} {
		// Ours, verified by OpenSSL.
		sig, err := k.Sign(nil, digest, nil)
		if err != nil {
			t.Fatal(err)
		}
		write("d.bin", digest)
		write("sig.der", sig)
		if out := run("pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-in", "d.bin", "-sigfile", "sig.der"); !bytes.Contains(out, []byte("Verified Successfully")) {
			t.Fatalf("openssl: %s", out)
		}
		other := bytes.Clone(digest)
		other[0] ^= 1
		write("o.bin", other)
		cmd := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-in", "o.bin", "-sigfile", "sig.der")
		cmd.Dir = dir
		if err := cmd.Run(); err == nil {
			t.Fatal("openssl accepts the signature over another digest")
		}
		// OpenSSL's, verified here.
		run("pkeyutl", "-sign", "-inkey", "k.pem", "-in", "d.bin", "-out", "ossl.der")
		if !VerifyASN1(&k.PublicKey, digest, read("ossl.der")) {
			t.Fatalf("OpenSSL's signature over a %d-byte digest does not verify here", len(digest))
		}
		if VerifyASN1(&k.PublicKey, other, read("ossl.der")) {
			t.Fatal("OpenSSL's signature verifies over another digest")
		}
	}
}

func sum256(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }
func sum512(s string) []byte { d := sha512.Sum512([]byte(s)); return d[:] }

func BenchmarkSign(b *testing.B) {
	k, _ := GenerateKey(nil)
	d := sum256("bench")
	for b.Loop() {
		k.Sign(nil, d, nil)
	}
}

func BenchmarkVerify(b *testing.B) {
	k, _ := GenerateKey(nil)
	d := sum256("bench")
	sig, _ := k.Sign(nil, d, nil)
	for b.Loop() {
		VerifyASN1(&k.PublicKey, d, sig)
	}
}

// The limb field arithmetic agrees with big.Int's, at the edges and on
// random elements.
func TestFieldMatchesBigInt(t *testing.T) {
	pm1 := new(big.Int).Sub(fieldP, big.NewInt(1))
	vals := []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(feC), pm1, new(big.Int).Sub(fieldP, big.NewInt(feC)),
		new(big.Int).Lsh(big.NewInt(1), 255), new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 192), big.NewInt(1))}
	for i := 0; i < 40; i++ {
		v, _ := rand.Int(rand.Reader, fieldP)
		vals = append(vals, v)
	}
	for _, a := range vals {
		fa := feFromInt(a)
		if fa.toInt().Cmp(a) != 0 {
			t.Fatalf("round trip of %x", a)
		}
		for _, b := range vals {
			fb := feFromInt(b)
			check := func(op string, got fe, want *big.Int) {
				want.Mod(want, fieldP)
				if got.toInt().Cmp(want) != 0 {
					t.Fatalf("%x %s %x = %x, want %x", a, op, b, got.toInt(), want)
				}
			}
			check("+", feAdd(&fa, &fb), new(big.Int).Add(a, b))
			check("-", feSub(&fa, &fb), new(big.Int).Sub(a, b))
			check("*", feMul(&fa, &fb), new(big.Int).Mul(a, b))
		}
		if a.Sign() != 0 {
			inv := feInv(&fa)
			if one := feMul(&fa, &inv); one.toInt().Cmp(big.NewInt(1)) != 0 {
				t.Fatalf("%x · %x⁻¹ ≠ 1", a, a)
			}
		}
	}
}

// The parsers take files and service answers: nothing panics, and what
// parses is a key on the curve.
func FuzzParse(f *testing.F) {
	k, _ := GenerateKey(nil)
	spki, _ := MarshalPKIXPublicKey(&k.PublicKey)
	p8, _ := MarshalPKCS8PrivateKey(k)
	sig, _ := k.Sign(nil, sum256("f"), nil)
	for _, seed := range [][]byte{spki, p8, sig, k.PublicKey.Bytes(), {0x30, 0}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if pub, err := ParsePKIXPublicKey(b); err == nil && !OnCurve(pub.X, pub.Y) {
			t.Fatal("parsed a point off the curve")
		}
		if k, err := ParsePKCS8PrivateKey(b); err == nil && !OnCurve(k.X, k.Y) {
			t.Fatal("parsed a key off the curve")
		}
		ParseECPrivateKey(b)
		ParseUncompressed(b)
		VerifyASN1(&k.PublicKey, sum256("f"), b)
		VerifyRaw(&k.PublicKey, sum256("f"), b)
	})
}
