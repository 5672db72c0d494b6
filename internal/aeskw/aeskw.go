// Package aeskw is AES key wrap as RFC 3394 defines it (Key Vault's
// A128KW/A192KW/A256KW and CKM_AES_KEY_WRAP) and with padding as RFC 5649
// defines it (CKM_AES_KEY_WRAP_PAD). Go's standard library has neither;
// the simulator and the Managed HSM stand-in share this one.
package aeskw

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

var (
	kwIV         = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}
	kwpIVPrefix  = [4]byte{0xA6, 0x59, 0x59, 0xA6}
	ErrInput     = errors.New("key wrap: input must be at least 16 bytes and a multiple of 8")
	ErrIntegrity = errors.New("key wrap: integrity check failed")
)

// kwWrap wraps plaintext (n ≥ 2 64-bit blocks) under kek with the given IV.
func kwWrap(kek, plaintext []byte, iv [8]byte) ([]byte, error) {
	if len(plaintext) < 16 || len(plaintext)%8 != 0 {
		return nil, ErrInput
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(plaintext) / 8
	out := make([]byte, 8+len(plaintext))
	copy(out[8:], plaintext)
	a := iv
	var b [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(b[:8], a[:])
			copy(b[8:], out[8*i:8*i+8])
			block.Encrypt(b[:], b[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(b[:8])^t)
			copy(out[8*i:], b[8:])
		}
	}
	copy(out[:8], a[:])
	return out, nil
}

// kwUnwrap reverses kwWrap and returns the plaintext and the recovered IV.
func kwUnwrap(kek, wrapped []byte) ([]byte, [8]byte, error) {
	var a [8]byte
	if len(wrapped) < 24 || len(wrapped)%8 != 0 {
		return nil, a, ErrInput
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, a, err
	}
	n := len(wrapped)/8 - 1
	out := make([]byte, len(wrapped)-8)
	copy(out, wrapped[8:])
	copy(a[:], wrapped[:8])
	var b [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(a[:])^t)
			copy(b[8:], out[8*(i-1):8*i])
			block.Decrypt(b[:], b[:])
			copy(a[:], b[:8])
			copy(out[8*(i-1):], b[8:])
		}
	}
	return out, a, nil
}

// Wrap is RFC 3394 with its default initial value.
func Wrap(kek, plaintext []byte) ([]byte, error) { return kwWrap(kek, plaintext, kwIV) }

// Unwrap reverses Wrap and checks the initial value.
func Unwrap(kek, wrapped []byte) ([]byte, error) {
	out, iv, err := kwUnwrap(kek, wrapped)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(iv[:], kwIV[:]) != 1 {
		return nil, ErrIntegrity
	}
	return out, nil
}

// WrapPad is RFC 5649: any length from 1 byte, zero-padded to 8.
func WrapPad(kek, plaintext []byte) ([]byte, error) {
	if len(plaintext) == 0 || uint64(len(plaintext)) > 0xFFFFFFFF {
		return nil, ErrInput
	}
	var iv [8]byte
	copy(iv[:4], kwpIVPrefix[:])
	binary.BigEndian.PutUint32(iv[4:], uint32(len(plaintext)))
	padded := make([]byte, (len(plaintext)+7)/8*8)
	copy(padded, plaintext)
	if len(padded) == 8 {
		// One block: a single AES encryption of IV | P.
		block, err := aes.NewCipher(kek)
		if err != nil {
			return nil, err
		}
		out := make([]byte, 16)
		copy(out, iv[:])
		copy(out[8:], padded)
		block.Encrypt(out, out)
		return out, nil
	}
	return kwWrap(kek, padded, iv)
}

// UnwrapPad reverses WrapPad and checks the length and padding.
func UnwrapPad(kek, wrapped []byte) ([]byte, error) {
	var (
		padded []byte
		iv     [8]byte
	)
	switch {
	case len(wrapped) == 16:
		block, err := aes.NewCipher(kek)
		if err != nil {
			return nil, err
		}
		b := make([]byte, 16)
		block.Decrypt(b, wrapped)
		copy(iv[:], b[:8])
		padded = b[8:]
	default:
		var err error
		if padded, iv, err = kwUnwrap(kek, wrapped); err != nil {
			return nil, err
		}
	}
	mli := int(binary.BigEndian.Uint32(iv[4:]))
	ok := subtle.ConstantTimeCompare(iv[:4], kwpIVPrefix[:]) == 1 &&
		mli > len(padded)-8 && mli <= len(padded)
	if ok {
		for _, c := range padded[mli:] {
			ok = ok && c == 0
		}
	}
	if !ok {
		return nil, ErrIntegrity
	}
	return padded[:mli], nil
}
