// Package secp256k1 is ECDSA on the SEC 2 curve secp256k1: Key Vault's
// curve "P-256K" and its JWS algorithm ES256K, OpenSSL's group
// "secp256k1". Go's crypto has no such curve, and hsmbridge adds no module
// for it, so this package has what the simulator, the Managed HSM backend,
// hsmhost's doctor and the Managed HSM stand-in need: keys, ECDSA
// signatures (DER and JWS's raw r‖s) and the encodings OpenSSL reads and
// writes (SubjectPublicKeyInfo, PKCS#8, SEC 1).
//
// The field arithmetic is four 64-bit limbs (field.go), points are in
// Jacobian coordinates, scalar multiplication uses a 4-bit window: a
// signature takes about 0.3 ms, a verification 0.5 ms (2-vCPU Xeon; OpenSSL
// is several times faster). It is not constant time, and so not for keys
// that must withstand a timing attacker: the simulator holds its keys in
// files and is no such place anyway, and a real HSM (Managed HSM signs
// ES256K) does its own arithmetic. Nonces are hedged: HMAC-SHA-512 over the
// private key, fresh random bytes and the digest, so neither a weak random
// source nor a repeated one alone repeats a nonce.
//
// Checked against OpenSSL (keys and signatures in both directions), a
// signature a real Managed HSM made (testdoubles/mhsm-standin's recordings) and
// the curve's published points.
package secp256k1

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"io"
	"math/big"
)

// Size is the length in bytes of a coordinate, a private scalar and each
// half of a raw signature.
const Size = 32

var (
	fieldP, _ = new(big.Int).SetString("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f", 16)
	orderN, _ = new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
	genX, _   = new(big.Int).SetString("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", 16)
	genY, _   = new(big.Int).SetString("483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8", 16)
	seven     = big.NewInt(7)
)

// Order is n, the order of the base point.
func Order() *big.Int { return new(big.Int).Set(orderN) }

// PublicKey is a point on the curve (never the point at infinity).
type PublicKey struct {
	X, Y *big.Int
}

// PrivateKey is a private scalar 1 ≤ D < n with its public point.
type PrivateKey struct {
	PublicKey
	D *big.Int
}

var _ crypto.Signer = (*PrivateKey)(nil)

// OnCurve reports whether (x, y) is an affine point of the curve.
func OnCurve(x, y *big.Int) bool {
	if x == nil || y == nil || x.Sign() < 0 || x.Cmp(fieldP) >= 0 || y.Sign() < 0 || y.Cmp(fieldP) >= 0 {
		return false
	}
	lhs := new(big.Int).Mul(y, y)
	lhs.Mod(lhs, fieldP)
	rhs := new(big.Int).Mul(x, x)
	rhs.Mul(rhs, x)
	rhs.Add(rhs, seven)
	rhs.Mod(rhs, fieldP)
	return lhs.Cmp(rhs) == 0
}

// NewPublicKey makes a public key from big-endian coordinates (at most
// Size bytes each; shorter ones are read as if zero-padded, as JWK
// encoders that drop leading zeros write them).
func NewPublicKey(x, y []byte) (*PublicKey, error) {
	if len(x) > Size || len(y) > Size {
		return nil, errors.New("secp256k1: coordinate longer than 32 bytes")
	}
	pub := &PublicKey{X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
	if !OnCurve(pub.X, pub.Y) {
		return nil, errors.New("secp256k1: point is not on the curve")
	}
	return pub, nil
}

// ParseUncompressed reads a point in SEC 1 uncompressed form (04‖X‖Y).
func ParseUncompressed(point []byte) (*PublicKey, error) {
	if len(point) != 1+2*Size || point[0] != 4 {
		return nil, errors.New("secp256k1: not an uncompressed point (04 || X || Y, 65 bytes)")
	}
	return NewPublicKey(point[1:1+Size], point[1+Size:])
}

// Bytes is the point in SEC 1 uncompressed form: 04‖X‖Y, 65 bytes.
func (p *PublicKey) Bytes() []byte {
	out := make([]byte, 1+2*Size)
	out[0] = 4
	p.X.FillBytes(out[1 : 1+Size])
	p.Y.FillBytes(out[1+Size:])
	return out
}

// Equal reports whether p and x are the same point.
func (p *PublicKey) Equal(x crypto.PublicKey) bool {
	q, ok := x.(*PublicKey)
	return ok && p.X.Cmp(q.X) == 0 && p.Y.Cmp(q.Y) == 0
}

// NewPrivateKey makes a private key from a big-endian scalar of at most
// Size bytes.
func NewPrivateKey(d []byte) (*PrivateKey, error) {
	if len(d) > Size {
		return nil, errors.New("secp256k1: private scalar longer than 32 bytes")
	}
	k := new(big.Int).SetBytes(d)
	if k.Sign() == 0 || k.Cmp(orderN) >= 0 {
		return nil, errors.New("secp256k1: private scalar out of range")
	}
	x, y := scalarMult(k, genX, genY)
	return &PrivateKey{PublicKey: PublicKey{X: x, Y: y}, D: k}, nil
}

// GenerateKey makes a new key from r (crypto/rand when nil).
func GenerateKey(r io.Reader) (*PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	for {
		b := make([]byte, Size+8) // 64 extra bits: the bias of mod n is negligible
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		d := new(big.Int).SetBytes(b)
		d.Mod(d, new(big.Int).Sub(orderN, big.NewInt(1)))
		d.Add(d, big.NewInt(1))
		buf := make([]byte, Size)
		if k, err := NewPrivateKey(d.FillBytes(buf)); err == nil {
			return k, nil
		}
	}
}

// Bytes is the private scalar, Size bytes big-endian.
func (k *PrivateKey) Bytes() []byte { return k.D.FillBytes(make([]byte, Size)) }

// Public is the public half.
func (k *PrivateKey) Public() crypto.PublicKey { return &k.PublicKey }

// Equal reports whether k and x are the same private key.
func (k *PrivateKey) Equal(x crypto.PrivateKey) bool {
	q, ok := x.(*PrivateKey)
	return ok && k.D.Cmp(q.D) == 0
}

// Sign signs a digest made by the caller and returns a DER ECDSA-Sig-Value,
// as crypto/ecdsa's keys do; opts is not used (any digest length is
// accepted: longer than 32 bytes, its leftmost 256 bits are signed).
func (k *PrivateKey) Sign(r io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	sr, ss, err := k.sign(r, digest)
	if err != nil {
		return nil, err
	}
	return marshalSig(sr, ss)
}

// SignRaw signs a digest and returns JWS's form: r‖s, 64 bytes.
func (k *PrivateKey) SignRaw(r io.Reader, digest []byte) ([]byte, error) {
	sr, ss, err := k.sign(r, digest)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 2*Size)
	sr.FillBytes(out[:Size])
	ss.FillBytes(out[Size:])
	return out, nil
}

// VerifyASN1 checks a DER ECDSA-Sig-Value over digest.
func VerifyASN1(pub *PublicKey, digest, sig []byte) bool {
	r, s, err := parseSig(sig)
	return err == nil && verify(pub, digest, r, s)
}

// VerifyRaw checks a JWS r‖s signature (64 bytes) over digest.
func VerifyRaw(pub *PublicKey, digest, sig []byte) bool {
	if len(sig) != 2*Size {
		return false
	}
	return verify(pub, digest, new(big.Int).SetBytes(sig[:Size]), new(big.Int).SetBytes(sig[Size:]))
}

// digestToInt is SEC 1's bits2int: the digest's leftmost 256 bits (n has
// exactly 256), not reduced.
func digestToInt(digest []byte) *big.Int {
	if len(digest) > Size {
		digest = digest[:Size]
	}
	return new(big.Int).SetBytes(digest)
}

func (k *PrivateKey) sign(r io.Reader, digest []byte) (*big.Int, *big.Int, error) {
	if r == nil {
		r = rand.Reader
	}
	e := digestToInt(digest)
	priv := k.Bytes()
	nMinus1 := new(big.Int).Sub(orderN, big.NewInt(1))
	for counter := byte(0); ; counter++ {
		// The hedged nonce: secret, fresh and bound to the message.
		fresh := make([]byte, 32)
		if _, err := io.ReadFull(r, fresh); err != nil {
			return nil, nil, err
		}
		mac := hmac.New(sha512.New, priv)
		mac.Write(fresh)
		mac.Write(digest)
		mac.Write([]byte{counter})
		kk := new(big.Int).SetBytes(mac.Sum(nil))
		kk.Mod(kk, nMinus1)
		kk.Add(kk, big.NewInt(1))

		x, _ := scalarMult(kk, genX, genY)
		sr := new(big.Int).Mod(x, orderN)
		if sr.Sign() == 0 {
			continue
		}
		ss := new(big.Int).Mul(sr, k.D)
		ss.Add(ss, e)
		ss.Mul(ss, new(big.Int).ModInverse(kk, orderN))
		ss.Mod(ss, orderN)
		if ss.Sign() == 0 {
			continue
		}
		return sr, ss, nil
	}
}

func verify(pub *PublicKey, digest []byte, r, s *big.Int) bool {
	if pub == nil || !OnCurve(pub.X, pub.Y) {
		return false
	}
	if r.Sign() <= 0 || s.Sign() <= 0 || r.Cmp(orderN) >= 0 || s.Cmp(orderN) >= 0 {
		return false
	}
	w := new(big.Int).ModInverse(s, orderN)
	u1 := new(big.Int).Mul(digestToInt(digest), w)
	u1.Mod(u1, orderN)
	u2 := new(big.Int).Mul(r, w)
	u2.Mod(u2, orderN)
	a := mulJacobian(u1, toJacobian(genX, genY))
	b := mulJacobian(u2, toJacobian(pub.X, pub.Y))
	sum := addJacobian(&a, &b)
	x, _, ok := sum.affine()
	if !ok {
		return false
	}
	return x.Mod(x, orderN).Cmp(r) == 0
}

// ---- curve arithmetic --------------------------------------------------------

// jacobian is (X, Y, Z) standing for the affine (X/Z², Y/Z³); Z = 0 is the
// point at infinity.
type jacobian struct{ x, y, z fe }

func toJacobian(x, y *big.Int) jacobian {
	return jacobian{x: feFromInt(x), y: feFromInt(y), z: fe{1}}
}

func (p *jacobian) isInfinity() bool { return p.z.isZero() }

func (p *jacobian) affine() (x, y *big.Int, ok bool) {
	if p.isInfinity() {
		return nil, nil, false
	}
	zinv := feInv(&p.z)
	zinv2 := feMul(&zinv, &zinv)
	ax := feMul(&p.x, &zinv2)
	zinv3 := feMul(&zinv2, &zinv)
	ay := feMul(&p.y, &zinv3)
	return ax.toInt(), ay.toInt(), true
}

// doubleJacobian is dbl-2009-l (a = 0).
func doubleJacobian(p *jacobian) jacobian {
	if p.isInfinity() || p.y.isZero() {
		return jacobian{}
	}
	a := feMul(&p.x, &p.x)
	b := feMul(&p.y, &p.y)
	c := feMul(&b, &b)
	xb := feAdd(&p.x, &b)
	d := feMul(&xb, &xb)
	d = feSub(&d, &a)
	d = feSub(&d, &c)
	d = feAdd(&d, &d)
	e := feAdd(&a, &a)
	e = feAdd(&e, &a)
	f := feMul(&e, &e)
	d2 := feAdd(&d, &d)
	x3 := feSub(&f, &d2)
	c8 := feAdd(&c, &c)
	c8 = feAdd(&c8, &c8)
	c8 = feAdd(&c8, &c8)
	t := feSub(&d, &x3)
	y3 := feMul(&e, &t)
	y3 = feSub(&y3, &c8)
	z3 := feMul(&p.y, &p.z)
	z3 = feAdd(&z3, &z3)
	return jacobian{x3, y3, z3}
}

// addJacobian is add-2007-bl, falling back to doubling for equal points.
func addJacobian(p, q *jacobian) jacobian {
	if p.isInfinity() {
		return *q
	}
	if q.isInfinity() {
		return *p
	}
	z1z1 := feMul(&p.z, &p.z)
	z2z2 := feMul(&q.z, &q.z)
	u1 := feMul(&p.x, &z2z2)
	u2 := feMul(&q.x, &z1z1)
	t := feMul(&q.z, &z2z2)
	s1 := feMul(&p.y, &t)
	t = feMul(&p.z, &z1z1)
	s2 := feMul(&q.y, &t)
	h := feSub(&u2, &u1)
	r := feSub(&s2, &s1)
	if h.isZero() {
		if r.isZero() {
			return doubleJacobian(p)
		}
		return jacobian{}
	}
	r = feAdd(&r, &r)
	h2 := feAdd(&h, &h)
	i := feMul(&h2, &h2)
	j := feMul(&h, &i)
	v := feMul(&u1, &i)
	x3 := feMul(&r, &r)
	x3 = feSub(&x3, &j)
	v2 := feAdd(&v, &v)
	x3 = feSub(&x3, &v2)
	t = feSub(&v, &x3)
	y3 := feMul(&r, &t)
	s1j := feMul(&s1, &j)
	s1j = feAdd(&s1j, &s1j)
	y3 = feSub(&y3, &s1j)
	z := feAdd(&p.z, &q.z)
	z3 := feMul(&z, &z)
	z3 = feSub(&z3, &z1z1)
	z3 = feSub(&z3, &z2z2)
	z3 = feMul(&z3, &h)
	return jacobian{x3, y3, z3}
}

// mulJacobian is k·P with a 4-bit fixed window (k ≥ 0).
func mulJacobian(k *big.Int, p jacobian) jacobian {
	var table [16]jacobian
	table[1] = p
	for i := 2; i < 16; i++ {
		table[i] = addJacobian(&table[i-1], &p)
	}
	var r jacobian
	for i := (k.BitLen() + 3) / 4 * 4; i > 0; i -= 4 {
		for j := 0; j < 4; j++ {
			r = doubleJacobian(&r)
		}
		w := k.Bit(i-1)<<3 | k.Bit(i-2)<<2 | k.Bit(i-3)<<1 | k.Bit(i-4)
		if w != 0 {
			r = addJacobian(&r, &table[w])
		}
	}
	return r
}

// scalarMult is k·(x, y) in affine coordinates; k must not be a multiple
// of n.
func scalarMult(k, x, y *big.Int) (*big.Int, *big.Int) {
	r := mulJacobian(k, toJacobian(x, y))
	rx, ry, _ := r.affine()
	return rx, ry
}
