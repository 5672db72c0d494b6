package secp256k1

import (
	"math/big"
	"math/bits"
)

// fe is an element of the field mod p = 2²⁵⁶ − 2³² − 977, four 64-bit
// limbs, least significant first, always reduced (< p). Reduction folds the
// bits above 256 down multiplied by c = 2³² + 977 (2²⁵⁶ ≡ c mod p), so a
// product costs 16 word multiplications and a few more: about forty times
// faster than big.Int, which allocates for every step. Not constant time
// (see the package comment).
type fe [4]uint64

// feC is 2²⁵⁶ mod p.
const feC = 1<<32 + 977

var feP = fe{0xfffffffefffffc2f, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff}

func (a *fe) isZero() bool { return a[0]|a[1]|a[2]|a[3] == 0 }

// feFromInt converts 0 ≤ x < p.
func feFromInt(x *big.Int) fe {
	var b [32]byte
	x.FillBytes(b[:])
	var r fe
	for i := 0; i < 4; i++ {
		for j := 0; j < 8; j++ {
			r[i] |= uint64(b[31-8*i-j]) << (8 * j)
		}
	}
	return r
}

func (a *fe) toInt() *big.Int {
	var b [32]byte
	for i := 0; i < 4; i++ {
		for j := 0; j < 8; j++ {
			b[31-8*i-j] = byte(a[i] >> (8 * j))
		}
	}
	return new(big.Int).SetBytes(b[:])
}

// subP subtracts p once if a ≥ p.
func (a *fe) subP() {
	var t fe
	var borrow uint64
	t[0], borrow = bits.Sub64(a[0], feP[0], 0)
	t[1], borrow = bits.Sub64(a[1], feP[1], borrow)
	t[2], borrow = bits.Sub64(a[2], feP[2], borrow)
	t[3], borrow = bits.Sub64(a[3], feP[3], borrow)
	if borrow == 0 {
		*a = t
	}
}

// addSmall adds the 128-bit hi:lo to a and returns the carry out of 2²⁵⁶.
func (a *fe) addSmall(hi, lo uint64) uint64 {
	var carry uint64
	a[0], carry = bits.Add64(a[0], lo, 0)
	a[1], carry = bits.Add64(a[1], hi, carry)
	a[2], carry = bits.Add64(a[2], 0, carry)
	a[3], carry = bits.Add64(a[3], 0, carry)
	return carry
}

func feAdd(a, b *fe) fe {
	var r fe
	var carry uint64
	r[0], carry = bits.Add64(a[0], b[0], 0)
	r[1], carry = bits.Add64(a[1], b[1], carry)
	r[2], carry = bits.Add64(a[2], b[2], carry)
	r[3], carry = bits.Add64(a[3], b[3], carry)
	if carry != 0 {
		// a + b − 2²⁵⁶ + c = a + b − p: below p, no further carry.
		r.addSmall(0, feC)
		return r
	}
	r.subP()
	return r
}

func feSub(a, b *fe) fe {
	var r fe
	var borrow uint64
	r[0], borrow = bits.Sub64(a[0], b[0], 0)
	r[1], borrow = bits.Sub64(a[1], b[1], borrow)
	r[2], borrow = bits.Sub64(a[2], b[2], borrow)
	r[3], borrow = bits.Sub64(a[3], b[3], borrow)
	if borrow != 0 {
		// a − b + 2²⁵⁶ − c = a − b + p.
		var b2 uint64
		r[0], b2 = bits.Sub64(r[0], feC, 0)
		r[1], b2 = bits.Sub64(r[1], 0, b2)
		r[2], b2 = bits.Sub64(r[2], 0, b2)
		r[3], _ = bits.Sub64(r[3], 0, b2)
	}
	return r
}

func feMul(a, b *fe) fe {
	var t [8]uint64
	for i := 0; i < 4; i++ {
		var carry uint64
		for j := 0; j < 4; j++ {
			hi, lo := bits.Mul64(a[i], b[j])
			var c uint64
			lo, c = bits.Add64(lo, t[i+j], 0)
			hi += c
			lo, c = bits.Add64(lo, carry, 0)
			hi += c
			t[i+j] = lo
			carry = hi
		}
		t[i+4] = carry
	}
	// t = lo + 2²⁵⁶·hi ≡ lo + c·hi.
	var r fe
	var carry uint64
	for i := 0; i < 4; i++ {
		hi, lo := bits.Mul64(t[4+i], feC)
		var c uint64
		lo, c = bits.Add64(lo, t[i], 0)
		hi += c
		lo, c = bits.Add64(lo, carry, 0)
		hi += c
		r[i] = lo
		carry = hi
	}
	// carry < 2³⁴: fold c·carry (< 2⁶⁷) in, and once more a carry out.
	hi, lo := bits.Mul64(carry, feC)
	if r.addSmall(hi, lo) != 0 {
		r.addSmall(0, feC) // the sum wrapped by less than 2⁶⁸: no carry again
	}
	r.subP()
	return r
}

// feInv is a⁻¹ = a^(p−2) (Fermat); a must not be zero.
func feInv(a *fe) fe {
	e := new(big.Int).Sub(fieldP, big.NewInt(2))
	r := fe{1}
	for i := e.BitLen() - 1; i >= 0; i-- {
		r = feMul(&r, &r)
		if e.Bit(i) == 1 {
			r = feMul(&r, a)
		}
	}
	return r
}
