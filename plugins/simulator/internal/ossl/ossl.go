//go:build cgo

package ossl

/*
#cgo LDFLAGS: -lcrypto
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"crypto"
	"crypto/rsa"
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// handle owns one EVP_PKEY. refs counts the Key's own reference (until
// Close) and one per operation in flight; whoever takes it to zero frees
// the EVP_PKEY, and once it is zero it never rises again.
type handle struct {
	pkey   *C.EVP_PKEY
	refs   atomic.Int64
	closed atomic.Bool
}

// loaded counts the EVP_PKEYs loaded and not yet freed, for the tests.
var loaded atomic.Int64

// cNames are OpenSSL's digest names as C strings, made once and kept.
var cNames = func() map[crypto.Hash]*C.char {
	m := map[crypto.Hash]*C.char{}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		m[h] = C.CString(mdName(h))
	}
	return m
}()

const errLen = 256

// newHandle loads a DER private key (an RSAPrivateKey, or a PKCS#8
// PrivateKeyInfo of an EC key) and wipes der.
func newHandle(der []byte) (*handle, error) {
	defer clear(der)
	var msg [errLen]C.char
	pkey := C.hb_key_load((*C.uchar)(unsafe.Pointer(&der[0])), C.size_t(len(der)), &msg[0], errLen)
	if pkey == nil {
		return nil, fmt.Errorf("ossl: libcrypto does not load the key: %s", C.GoString(&msg[0]))
	}
	loaded.Add(1)
	h := &handle{pkey: pkey}
	h.refs.Store(1)
	return h, nil
}

func (h *handle) attachEC(k *ECKey) {
	runtime.AddCleanup(k, func(h *handle) { h.close() }, h)
}

// maxECSig is the longest DER ECDSA signature on P-521: two 66-byte
// integers, each with a tag, a length and a sign byte, in a SEQUENCE.
const maxECSig = 2*(66+3) + 3

func (h *handle) signEC(digest []byte) ([]byte, error) {
	sig := make([]byte, maxECSig)
	sigLen := C.size_t(len(sig))
	var msg [errLen]C.char
	if C.hb_ec_sign(h.pkey, (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &sigLen, &msg[0], errLen) != 1 {
		return nil, fmt.Errorf("ossl: libcrypto: %s", C.GoString(&msg[0]))
	}
	return sig[:sigLen:sigLen], nil
}

// attach ties h to k's lifetime: an unreachable Key that was never closed
// is closed by the garbage collector.
func (h *handle) attach(k *Key) {
	runtime.AddCleanup(k, func(h *handle) { h.close() }, h)
}

// acquire takes a reference for one operation; false once the EVP_PKEY is
// gone or going (after Close), when the caller uses crypto/rsa instead.
func (h *handle) acquire() bool {
	if h.closed.Load() {
		return false
	}
	for {
		r := h.refs.Load()
		if r == 0 {
			return false
		}
		if h.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

func (h *handle) release() {
	if h.refs.Add(-1) == 0 {
		C.EVP_PKEY_free(h.pkey)
		loaded.Add(-1)
	}
}

func (h *handle) close() {
	if h.closed.CompareAndSwap(false, true) {
		h.release()
	}
}

func (h *handle) live() bool { return !h.closed.Load() }

func (h *handle) sign(size int, digest []byte, hash crypto.Hash, pss *PSSOptions) ([]byte, error) {
	sig := make([]byte, size)
	sigLen := C.size_t(len(sig))
	var msg [errLen]C.char
	var isPSS, salt C.int
	mgf1 := cNames[hash]
	if pss != nil {
		isPSS, salt, mgf1 = 1, C.int(pss.SaltLength), cNames[pss.MGF1Hash]
	}
	ok := C.hb_rsa_sign(h.pkey, cNames[hash], isPSS, mgf1, salt,
		(*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &sigLen, &msg[0], errLen)
	if ok != 1 {
		return nil, fmt.Errorf("ossl: libcrypto: %s", C.GoString(&msg[0]))
	}
	if int(sigLen) != size {
		return nil, fmt.Errorf("ossl: libcrypto made a %d-byte signature with a %d-byte key", sigLen, size)
	}
	return sig, nil
}

func (h *handle) decrypt(size int, ciphertext []byte, oaep *rsa.OAEPOptions) ([]byte, error) {
	out := make([]byte, size)
	outLen := C.size_t(len(out))
	var msg [errLen]C.char
	var isOAEP C.int
	var md, mgf1 *C.char
	var label *C.uchar
	var labelLen C.size_t
	if oaep != nil {
		isOAEP, md, mgf1 = 1, cNames[oaep.Hash], cNames[oaep.MGFHash]
		if len(oaep.Label) > 0 {
			label, labelLen = (*C.uchar)(unsafe.Pointer(&oaep.Label[0])), C.size_t(len(oaep.Label))
		}
	}
	r := C.hb_rsa_decrypt(h.pkey, isOAEP, md, mgf1, label, labelLen,
		(*C.uchar)(unsafe.Pointer(&ciphertext[0])), C.size_t(len(ciphertext)),
		(*C.uchar)(unsafe.Pointer(&out[0])), &outLen, &msg[0], errLen)
	switch {
	case r == -1:
		clear(out)
		return nil, fmt.Errorf("ossl: libcrypto: %s", C.GoString(&msg[0]))
	case r != 1 || int(outLen) > size:
		clear(out)
		return nil, rsa.ErrDecryption
	}
	clear(out[outLen:])
	return out[:outLen:outLen], nil
}
