package simulator

import (
	"crypto/hmac"
	"encoding/binary"
	"fmt"
	"hash"
)

// KBKDF: NIST SP 800-108 in counter mode with an HMAC PRF, laid out exactly
// as OpenSSL's KBKDF lays it out with its defaults (mode counter, a 32-bit
// counter before the fixed data, use-l and use-separator on):
//
//	K(i) = HMAC(K_IN, [i]_32 || Label || 0x00 || Context || [L]_32),  i = 1, 2, …
//
// with i and L (the output length in bits) big-endian, the output the first
// L bits of K(1) || K(2) || …. OpenSSL's KBKDF "salt" is the label and its
// "info" the context; so are DeriveParams' Salt and Info.

// kbkdfCounter derives n bytes from key with the given label and context.
func kbkdfCounter(h func() hash.Hash, key, label, context []byte, n int) ([]byte, error) {
	if n <= 0 || uint64(n)*8 > 0xffffffff {
		return nil, fmt.Errorf("KBKDF output of %d bytes: it must be 1 to 536870911 bytes", n)
	}
	fixed := make([]byte, 0, len(label)+1+len(context)+4)
	fixed = append(fixed, label...)
	fixed = append(fixed, 0)
	fixed = append(fixed, context...)
	fixed = binary.BigEndian.AppendUint32(fixed, uint32(n*8))
	return kbkdfCounterFixed(h, key, fixed, n)
}

// kbkdfCounterFixed is the counter-mode KDF over any fixed input data (the
// form NIST's CAVP vectors give, with the counter before the fixed data).
func kbkdfCounterFixed(h func() hash.Hash, key, fixed []byte, n int) ([]byte, error) {
	if len(key) == 0 {
		return nil, fmt.Errorf("KBKDF needs a non-empty key")
	}
	m := hmac.New(h, key)
	blocks := (n + m.Size() - 1) / m.Size()
	if n <= 0 || uint64(blocks) > 0xffffffff {
		return nil, fmt.Errorf("KBKDF output of %d bytes is out of range", n)
	}
	out := make([]byte, 0, blocks*m.Size())
	var ctr [4]byte
	for i := 1; i <= blocks; i++ {
		m.Reset()
		binary.BigEndian.PutUint32(ctr[:], uint32(i))
		m.Write(ctr[:])
		m.Write(fixed)
		out = m.Sum(out)
	}
	clear(out[n:])
	return out[:n], nil
}
