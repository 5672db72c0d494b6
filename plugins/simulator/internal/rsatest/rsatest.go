// Package rsatest checks RSA results for the simulator's tests with Go's
// standard library alone, where crypto/rsa has no function for the
// question: VerifyPSS takes an exact salt length (0 included) and any MGF1
// digest, which rsa.VerifyPSS cannot be told.
package rsatest

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"math/big"
)

// VerifyPSS is EMSA-PSS-VERIFY (RFC 8017 section 9.1.2) with a salt of
// exactly saltLen bytes and MGF1 over mgf1; nil when sig is valid.
func VerifyPSS(pub *rsa.PublicKey, hash, mgf1 crypto.Hash, saltLen int, digest, sig []byte) error {
	if len(sig) != pub.Size() {
		return errors.New("rsatest: signature of the wrong length")
	}
	if len(digest) != hash.Size() {
		return errors.New("rsatest: digest of the wrong length")
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(pub.N) >= 0 {
		return errors.New("rsatest: signature >= N")
	}
	em := new(big.Int).Exp(s, big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, pub.Size()))
	emBits := pub.N.BitLen() - 1
	emLen := (emBits + 7) / 8
	if len(em) > emLen {
		if em[0] != 0 {
			return errors.New("rsatest: leading byte nonzero")
		}
		em = em[1:]
	}
	hLen := hash.Size()
	if saltLen < 0 || emLen < hLen+saltLen+2 || em[emLen-1] != 0xbc {
		return errors.New("rsatest: no 0xbc trailer, or a salt that cannot fit")
	}
	db := bytes.Clone(em[:emLen-hLen-1])
	h := em[emLen-hLen-1 : emLen-1]
	topMask := byte(0xff >> (8*emLen - emBits))
	if db[0]&^topMask != 0 {
		return errors.New("rsatest: top bits set")
	}
	// MGF1, RFC 8017 appendix B.2.1.
	var mask []byte
	for c := uint32(0); len(mask) < len(db); c++ {
		w := mgf1.New()
		w.Write(h)
		w.Write([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
		mask = w.Sum(mask)
	}
	subtle.XORBytes(db, db, mask[:len(db)])
	db[0] &= topMask
	ps := len(db) - saltLen - 1
	for _, b := range db[:ps] {
		if b != 0 {
			return errors.New("rsatest: padding not zero (another MGF1 digest or salt length?)")
		}
	}
	if db[ps] != 1 {
		return errors.New("rsatest: no 0x01 before the salt")
	}
	w := hash.New()
	w.Write(make([]byte, 8))
	w.Write(digest)
	w.Write(db[ps+1:])
	if !bytes.Equal(w.Sum(nil), h) {
		return errors.New("rsatest: hash mismatch")
	}
	return nil
}
