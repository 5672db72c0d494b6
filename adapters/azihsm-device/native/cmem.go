//go:build cgo

package native

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"math"
	"unsafe"

	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
	"github.com/hsmbridge/hsmbridge/core"
)

// arena is the C memory of one call: everything the call hands the library
// (data, structures, parameter blocks) is allocated here, and free zeroes
// and frees all of it. The zero value is ready; use it as
//
//	var a arena
//	defer a.free()
type arena struct {
	blocks []block
}

type block struct {
	p unsafe.Pointer
	n C.size_t
}

// alloc returns n zeroed bytes of C memory (at least one byte, so the
// pointer is never NULL). Like cgo's C.malloc it does not return on
// exhaustion.
func (a *arena) alloc(n int) unsafe.Pointer {
	if n < 1 {
		n = 1
	}
	p := C.calloc(1, C.size_t(n))
	if p == nil {
		panic("azihsm native: out of C memory")
	}
	a.blocks = append(a.blocks, block{p, C.size_t(n)})
	return p
}

func (a *arena) free() {
	for _, b := range a.blocks {
		C.hb_wipe_free(b.p, b.n)
	}
	a.blocks = nil
}

// cnew allocates one zeroed T in a's C memory.
func cnew[T any](a *arena) *T {
	var zero T
	return (*T)(a.alloc(int(unsafe.Sizeof(zero))))
}

// u32 is a length as the API takes it. Lengths beyond 4 GiB cannot be
// expressed in the ABI; nothing hsmbridge sends comes near.
func u32(n int) C.uint32_t {
	if n < 0 || uint64(n) > math.MaxUint32 {
		panic("azihsm native: buffer longer than the API can express")
	}
	return C.uint32_t(n)
}

// bytes copies b into C memory (a NULL pointer for an empty b).
func (a *arena) bytes(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	p := a.alloc(len(b))
	copy(unsafe.Slice((*byte)(p), len(b)), b)
	return p
}

// buffer is a required input buffer: always a structure, pointing at a C
// copy of b.
func (a *arena) buffer(b []byte) *C.struct_azihsm_buffer {
	buf := cnew[C.struct_azihsm_buffer](a)
	buf.ptr = a.bytes(b)
	buf.len = u32(len(b))
	return buf
}

// optBuffer is an optional input buffer: NULL for a nil b.
func (a *arena) optBuffer(b []byte) *C.struct_azihsm_buffer {
	if b == nil {
		return nil
	}
	return a.buffer(b)
}

// creds copies the credential id and PIN into C memory (wiped by free).
func (a *arena) creds(c devapi.Credentials) *C.struct_azihsm_credentials {
	cc := cnew[C.struct_azihsm_credentials](a)
	for i := range c.ID {
		cc.id[i] = C.uint8_t(c.ID[i])
	}
	for i := range c.PIN {
		cc.pin[i] = C.uint8_t(c.PIN[i])
	}
	return cc
}

// props is a key property list in C memory; nil props give a NULL list.
func (a *arena) props(props []devapi.KeyProp) *C.struct_azihsm_key_prop_list {
	if props == nil {
		return nil
	}
	list := cnew[C.struct_azihsm_key_prop_list](a)
	if len(props) == 0 {
		return list
	}
	arr := unsafe.Slice((*C.struct_azihsm_key_prop)(a.alloc(len(props)*int(unsafe.Sizeof(C.struct_azihsm_key_prop{})))), len(props))
	for i, p := range props {
		arr[i].id = C.azihsm_key_prop_id(p.ID)
		arr[i].val = a.bytes(p.Value)
		arr[i].len = u32(len(p.Value))
	}
	list.props = &arr[0]
	list.count = u32(len(props))
	return list
}

// algo is the one marshalling of a devapi.Algo: a struct azihsm_algo and
// its parameter block (with the buffers it points to) in C memory, freed
// with the arena. Params must be nil or a pointer to one of devapi's
// parameter types.
func (a *arena) algo(al devapi.Algo) (*C.struct_azihsm_algo, error) {
	c := cnew[C.struct_azihsm_algo](a)
	c.id = C.azihsm_algo_id(al.ID)
	var params unsafe.Pointer
	var size uintptr
	switch p := al.Params.(type) {
	case nil:
	case *devapi.ECDHParams:
		cp := cnew[C.struct_azihsm_algo_ecdh_params](a)
		cp.pub_key = a.buffer(p.PeerPublicKeyDER)
		params, size = unsafe.Pointer(cp), unsafe.Sizeof(*cp)
	case *devapi.HKDFParams:
		cp := cnew[C.struct_azihsm_algo_hkdf_params](a)
		cp.hmac_algo_id = C.azihsm_algo_id(p.HMAC)
		cp.salt = a.optBuffer(p.Salt)
		cp.info = a.optBuffer(p.Info)
		params, size = unsafe.Pointer(cp), unsafe.Sizeof(*cp)
	case *devapi.KBKDFParams:
		cp := cnew[C.struct_azihsm_algo_kbkdf_counter_params](a)
		cp.hmac_algo_id = C.azihsm_algo_id(p.HMAC)
		cp.label = a.optBuffer(p.Label)
		cp.context = a.optBuffer(p.Context)
		params, size = unsafe.Pointer(cp), unsafe.Sizeof(*cp)
	case *devapi.OAEPParams:
		cp := a.oaep(p)
		params, size = unsafe.Pointer(cp), unsafe.Sizeof(*cp)
	case *devapi.RSAAESKeyWrapParams:
		cp := cnew[C.struct_azihsm_algo_rsa_aes_key_wrap_params](a)
		cp.aes_key_bits = C.uint32_t(p.AESKeyBits)
		cp.oaep_params = a.oaep(&p.OAEP)
		params, size = unsafe.Pointer(cp), unsafe.Sizeof(*cp)
	case *devapi.PSSParams:
		cp := cnew[C.struct_azihsm_algo_rsa_pkcs_pss_params](a)
		cp.hash_algo_id = C.azihsm_algo_id(p.Hash)
		cp.mgf_id = C.azihsm_mgf1_id(p.MGF1)
		cp.salt_len = C.uint32_t(p.SaltLen)
		params, size = unsafe.Pointer(cp), unsafe.Sizeof(*cp)
	default:
		return nil, core.Errorf(core.KindInvalidInput, "azihsm algorithm %#x: parameters of type %T are not one of devapi's parameter types", uint32(al.ID), al.Params)
	}
	c.params = params
	c.len = C.uint32_t(size)
	return c, nil
}

func (a *arena) oaep(p *devapi.OAEPParams) *C.struct_azihsm_algo_rsa_pkcs_oaep_params {
	cp := cnew[C.struct_azihsm_algo_rsa_pkcs_oaep_params](a)
	cp.hash_algo_id = C.azihsm_algo_id(p.Hash)
	cp.mgf1_hash_algo_id = C.azihsm_mgf1_id(p.MGF1)
	cp.label = a.optBuffer(p.Label)
	return cp
}

const (
	// fillAttempts bounds the size-then-fill loop: the sizing call, the
	// filling call, and one more if the needed length grew in between.
	fillAttempts = 3
	// maxOutput is the largest output buffer a call may ask for.
	maxOutput = 16 << 20
)

// fill is the API's output-buffer convention, in one place for every call
// that has one (signatures, plaintexts, key and partition properties, the
// partition path). call must point the call's output (buffer, property
// value or string) at buf with capacity bytes, make the API call, and
// return the length the library wrote back and the status.
//
// The first call has NULL and 0 and expects BUFFER_TOO_SMALL with the
// needed length (or SUCCESS with an empty output); fill then allocates that
// much C memory and calls again. A library that keeps asking for more gets
// fillAttempts calls and then an internal error. The C buffer is zeroed
// before it is freed (it may hold a plaintext or a masked key).
func fill(fn string, call func(buf unsafe.Pointer, capacity uint32) (uint32, devapi.Status)) ([]byte, error) {
	var buf unsafe.Pointer
	var capacity uint32
	defer func() { C.hb_wipe_free(buf, C.size_t(capacity)) }()
	for range fillAttempts {
		n, st := call(buf, capacity)
		switch st {
		case devapi.StatusSuccess:
			if n > capacity {
				return nil, core.Errorf(core.KindInternal, "%s: the library reports %d bytes written into a buffer of %d", fn, n, capacity)
			}
			if buf == nil {
				return []byte{}, nil
			}
			return C.GoBytes(buf, C.int(n)), nil
		case devapi.StatusBufferTooSmall:
			if n <= capacity {
				return nil, core.Errorf(core.KindInternal, "%s: the library asks for a larger buffer but needs %d bytes and has %d", fn, n, capacity)
			}
			if n > maxOutput {
				return nil, core.Errorf(core.KindInternal, "%s: the library asks for %d bytes of output (more than %d)", fn, n, maxOutput)
			}
			C.hb_wipe_free(buf, C.size_t(capacity))
			buf = C.calloc(1, C.size_t(n))
			if buf == nil {
				capacity = 0
				panic("azihsm native: out of C memory")
			}
			capacity = n
		default:
			return nil, &devapi.StatusError{Func: fn, Status: st}
		}
	}
	return nil, core.Errorf(core.KindInternal, "%s: the library still asks for a larger buffer after %d calls", fn, fillAttempts)
}

// result adapts a call's (length, status) to fill's types.
func result(n C.uint32_t, st C.azihsm_status) (uint32, devapi.Status) {
	return uint32(n), devapi.Status(st)
}
