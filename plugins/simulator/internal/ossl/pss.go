package ossl

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"hash"
	"math/big"
)

// signPSS is RSASSA-PSS (RFC 8017 section 8.1.1) for what Go's
// rsa.SignPSS cannot express: an MGF1 digest other than the signature's,
// and an empty salt. The private-key operation is a plain modular
// exponentiation, not constant-time: acceptable in a software simulator,
// which is not where keys that matter live (and, with cgo, used only after
// Close).
func signPSS(k *rsa.PrivateKey, digest []byte, hash, mgf1 crypto.Hash, saltLen int) ([]byte, error) {
	h, mgf := hash.New(), mgf1.New()
	modBits := k.N.BitLen()
	emBits := modBits - 1
	emLen := (emBits + 7) / 8
	hLen := h.Size()
	if emLen < hLen+saltLen+2 {
		return nil, errors.New("key too small for this digest and salt length")
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	h.Write(make([]byte, 8))
	h.Write(digest)
	h.Write(salt)
	H := h.Sum(nil)

	em := make([]byte, emLen)
	db := em[:emLen-hLen-1]
	db[len(db)-saltLen-1] = 0x01
	copy(db[len(db)-saltLen:], salt)
	mgf1XOR(db, mgf, H)
	db[0] &= 0xff >> (8*emLen - emBits)
	copy(em[emLen-hLen-1:], H)
	em[emLen-1] = 0xbc

	m := new(big.Int).SetBytes(em)
	sig := new(big.Int).Exp(m, k.D, k.N).FillBytes(make([]byte, (modBits+7)/8))
	return sig, nil
}

// mgf1XOR xors out with MGF1(seed) computed with h.
func mgf1XOR(out []byte, h hash.Hash, seed []byte) {
	var counter [4]byte
	for done := 0; done < len(out); {
		h.Reset()
		h.Write(seed)
		h.Write(counter[:])
		for _, b := range h.Sum(nil) {
			if done == len(out) {
				break
			}
			out[done] ^= b
			done++
		}
		for i := 3; i >= 0; i-- {
			if counter[i]++; counter[i] != 0 {
				break
			}
		}
	}
}
