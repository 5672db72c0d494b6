package mhsmstandin

import (
	"crypto/rand"
	"errors"
	"math/big"
)

// secp256k1 (JWK crv "P-256K", alg ES256K) in plain math/big: Go's crypto
// has no such curve and this test server must not pull in a new module.
// Affine arithmetic with a modular inverse per step is slow (~1 ms per
// operation) but ES256K is not what anyone benchmarks. Not constant time:
// this is a test stand-in, not an HSM.

var (
	k1P, _  = new(big.Int).SetString("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f", 16)
	k1N, _  = new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
	k1Gx, _ = new(big.Int).SetString("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", 16)
	k1Gy, _ = new(big.Int).SetString("483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8", 16)
)

// k1Point is an affine point; x == nil is the point at infinity.
type k1Point struct{ x, y *big.Int }

func k1OnCurve(x, y *big.Int) bool {
	if x.Sign() < 0 || x.Cmp(k1P) >= 0 || y.Sign() < 0 || y.Cmp(k1P) >= 0 {
		return false
	}
	lhs := new(big.Int).Mul(y, y)
	lhs.Mod(lhs, k1P)
	rhs := new(big.Int).Mul(x, x)
	rhs.Mul(rhs, x)
	rhs.Add(rhs, big.NewInt(7))
	rhs.Mod(rhs, k1P)
	return lhs.Cmp(rhs) == 0
}

func k1Add(a, b k1Point) k1Point {
	if a.x == nil {
		return b
	}
	if b.x == nil {
		return a
	}
	var lambda *big.Int
	if a.x.Cmp(b.x) == 0 {
		// Same x: either b = -a (sum is infinity) or b = a (doubling).
		if a.y.Cmp(b.y) != 0 || a.y.Sign() == 0 {
			return k1Point{}
		}
		// doubling: λ = 3x² / 2y (a = 0 on this curve)
		num := new(big.Int).Mul(a.x, a.x)
		num.Mul(num, big.NewInt(3))
		den := new(big.Int).Lsh(a.y, 1)
		den.Mod(den, k1P)
		lambda = num.Mul(num, den.ModInverse(den, k1P))
	} else {
		num := new(big.Int).Sub(b.y, a.y)
		den := new(big.Int).Sub(b.x, a.x)
		den.Mod(den, k1P)
		lambda = num.Mul(num, den.ModInverse(den, k1P))
	}
	lambda.Mod(lambda, k1P)
	x := new(big.Int).Mul(lambda, lambda)
	x.Sub(x, a.x)
	x.Sub(x, b.x)
	x.Mod(x, k1P)
	y := new(big.Int).Sub(a.x, x)
	y.Mul(y, lambda)
	y.Sub(y, a.y)
	y.Mod(y, k1P)
	return k1Point{x, y}
}

func k1Mul(k *big.Int, p k1Point) k1Point {
	r := k1Point{}
	for i := k.BitLen() - 1; i >= 0; i-- {
		r = k1Add(r, r)
		if k.Bit(i) == 1 {
			r = k1Add(r, p)
		}
	}
	return r
}

// k1Key is a secp256k1 private key.
type k1Key struct {
	d    *big.Int
	x, y *big.Int
}

func newK1Key(d *big.Int) (*k1Key, error) {
	if d.Sign() <= 0 || d.Cmp(k1N) >= 0 {
		return nil, errors.New("secp256k1 private scalar out of range")
	}
	p := k1Mul(d, k1Point{k1Gx, k1Gy})
	return &k1Key{d: d, x: p.x, y: p.y}, nil
}

func generateK1() (*k1Key, error) {
	for {
		d, err := rand.Int(rand.Reader, k1N)
		if err != nil {
			return nil, err
		}
		if d.Sign() > 0 {
			return newK1Key(d)
		}
	}
}

// sign returns the raw 64-byte r‖s signature of a 32-byte digest.
func (k *k1Key) sign(digest []byte) ([]byte, error) {
	e := new(big.Int).SetBytes(digest)
	for {
		kk, err := rand.Int(rand.Reader, k1N)
		if err != nil {
			return nil, err
		}
		if kk.Sign() == 0 {
			continue
		}
		R := k1Mul(kk, k1Point{k1Gx, k1Gy})
		r := new(big.Int).Mod(R.x, k1N)
		if r.Sign() == 0 {
			continue
		}
		s := new(big.Int).Mul(r, k.d)
		s.Add(s, e)
		s.Mul(s, new(big.Int).ModInverse(kk, k1N))
		s.Mod(s, k1N)
		if s.Sign() == 0 {
			continue
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out, nil
	}
}

func k1Verify(x, y *big.Int, digest, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	if r.Sign() == 0 || s.Sign() == 0 || r.Cmp(k1N) >= 0 || s.Cmp(k1N) >= 0 {
		return false
	}
	e := new(big.Int).SetBytes(digest)
	w := new(big.Int).ModInverse(s, k1N)
	u1 := new(big.Int).Mul(e, w)
	u1.Mod(u1, k1N)
	u2 := new(big.Int).Mul(r, w)
	u2.Mod(u2, k1N)
	X := k1Add(k1Mul(u1, k1Point{k1Gx, k1Gy}), k1Mul(u2, k1Point{x, y}))
	if X.x == nil {
		return false
	}
	return new(big.Int).Mod(X.x, k1N).Cmp(r) == 0
}
