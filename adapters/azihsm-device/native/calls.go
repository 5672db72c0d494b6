//go:build cgo

package native

/*
#include "shim.h"
*/
import "C"

import (
	"bytes"
	"unsafe"

	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
)

// Partitions lists the partitions: azihsm_part_get_list, _get_count,
// _get_info per index (the path by the size-then-fill convention), and
// _free_list on every path.
func (l *Library) Partitions() (out []devapi.PartitionInfo, err error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.leave()
	var list C.azihsm_handle
	if st := C.hb_part_get_list(l.c, &list); st != 0 {
		return nil, statusErr("azihsm_part_get_list", st)
	}
	defer func() {
		if ferr := statusErr("azihsm_part_free_list", C.hb_part_free_list(l.c, list)); ferr != nil && err == nil {
			out, err = nil, ferr
		}
	}()
	var count C.uint32_t
	if st := C.hb_part_get_count(l.c, list, &count); st != 0 {
		return nil, statusErr("azihsm_part_get_count", st)
	}
	var a arena
	defer a.free()
	info := cnew[C.struct_azihsm_part_info](&a)
	for i := C.uint32_t(0); i < count; i++ {
		*info = C.struct_azihsm_part_info{}
		path, err := fill("azihsm_part_get_info", func(buf unsafe.Pointer, capacity uint32) (uint32, devapi.Status) {
			info.path.str = (*C.azihsm_char)(buf)
			info.path.len = C.uint32_t(capacity)
			st := C.hb_part_get_info(l.c, list, i, info)
			return result(info.path.len, st)
		})
		if err != nil {
			return nil, err
		}
		if n := bytes.IndexByte(path, 0); n >= 0 {
			path = path[:n]
		}
		out = append(out, devapi.PartitionInfo{
			Path:   string(path),
			MinRev: devapi.APIRev{Major: uint32(info.api_rev_min.major), Minor: uint32(info.api_rev_min.minor)},
			MaxRev: devapi.APIRev{Major: uint32(info.api_rev_max.major), Minor: uint32(info.api_rev_max.minor)},
		})
	}
	return out, nil
}

func (l *Library) OpenPartition(path string, rev devapi.APIRev) (devapi.Handle, error) {
	if err := l.enter(); err != nil {
		return 0, err
	}
	defer l.leave()
	var a arena
	defer a.free()
	s := cnew[C.struct_azihsm_str](&a)
	s.str = (*C.azihsm_char)(a.bytes(append([]byte(path), 0)))
	s.len = u32(len(path) + 1)
	r := C.struct_azihsm_api_rev{major: C.uint32_t(rev.Major), minor: C.uint32_t(rev.Minor)}
	var h C.azihsm_handle
	if st := C.hb_part_open(l.c, s, &h, &r); st != 0 {
		return 0, statusErr("azihsm_part_open", st)
	}
	return devapi.Handle(h), nil
}

// InitPartition is azihsm_part_init. A zero OBKSource or POTASource passes
// a NULL configuration; the resiliency configuration is always NULL.
func (l *Library) InitPartition(part devapi.Handle, creds devapi.Credentials, init devapi.PartitionInit) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.leave()
	var a arena
	defer a.free()
	var obk *C.struct_azihsm_owner_backup_key_config
	if init.OBKSource != 0 {
		obk = cnew[C.struct_azihsm_owner_backup_key_config](&a)
		obk.source = C.azihsm_owner_backup_key_source(init.OBKSource)
		obk.owner_backup_key = a.optBuffer(init.OBK)
		obk.masked_owner_backup_key = a.optBuffer(init.MOBK)
	}
	var pota *C.struct_azihsm_pota_endorsement
	if init.POTASource != 0 {
		pota = cnew[C.struct_azihsm_pota_endorsement](&a)
		pota.source = C.azihsm_pota_endorsement_source(init.POTASource)
		if init.POTASignature != nil || init.POTAPublicKey != nil {
			d := cnew[C.struct_azihsm_pota_endorsement_data](&a)
			d.signature = a.optBuffer(init.POTASignature)
			d.public_key = a.optBuffer(init.POTAPublicKey)
			pota.endorsement = d
		}
	}
	return statusErr("azihsm_part_init", C.hb_part_init(l.c, C.azihsm_handle(part), a.creds(creds),
		a.optBuffer(init.BMK), a.optBuffer(init.MUK), obk, pota))
}

func (l *Library) PartitionProperty(part devapi.Handle, id devapi.PartProp) ([]byte, error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.leave()
	var a arena
	defer a.free()
	prop := cnew[C.struct_azihsm_part_prop](&a)
	return fill("azihsm_part_get_prop", func(buf unsafe.Pointer, capacity uint32) (uint32, devapi.Status) {
		prop.id = C.azihsm_part_prop_id(id)
		prop.val = buf
		prop.len = C.uint32_t(capacity)
		st := C.hb_part_get_prop(l.c, C.azihsm_handle(part), prop)
		return result(prop.len, st)
	})
}

func (l *Library) ClosePartition(part devapi.Handle) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.leave()
	return statusErr("azihsm_part_close", C.hb_part_close(l.c, C.azihsm_handle(part)))
}

// OpenSession is azihsm_sess_open; a nil seed passes NULL.
func (l *Library) OpenSession(part devapi.Handle, creds devapi.Credentials, seed []byte) (devapi.Handle, error) {
	if err := l.enter(); err != nil {
		return 0, err
	}
	defer l.leave()
	var a arena
	defer a.free()
	var h C.azihsm_handle
	if st := C.hb_sess_open(l.c, C.azihsm_handle(part), a.creds(creds), a.optBuffer(seed), &h); st != 0 {
		return 0, statusErr("azihsm_sess_open", st)
	}
	return devapi.Handle(h), nil
}

func (l *Library) SessionAPIRev(session devapi.Handle) (devapi.APIRev, error) {
	if err := l.enter(); err != nil {
		return devapi.APIRev{}, err
	}
	defer l.leave()
	var a arena
	defer a.free()
	rev := cnew[C.struct_azihsm_api_rev](&a)
	prop := cnew[C.struct_azihsm_session_prop](&a)
	prop.id = C.AZIHSM_SESSION_PROP_ID_API_REV
	prop.val = unsafe.Pointer(rev)
	prop.len = C.uint32_t(unsafe.Sizeof(*rev))
	if st := C.hb_session_get_prop(l.c, C.azihsm_handle(session), prop); st != 0 {
		return devapi.APIRev{}, statusErr("azihsm_session_get_prop", st)
	}
	return devapi.APIRev{Major: uint32(rev.major), Minor: uint32(rev.minor)}, nil
}

func (l *Library) CloseSession(session devapi.Handle) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.leave()
	return statusErr("azihsm_sess_close", C.hb_sess_close(l.c, C.azihsm_handle(session)))
}

// GenerateKeyPair is azihsm_key_gen_pair; nil property lists pass NULL.
func (l *Library) GenerateKeyPair(session devapi.Handle, algo devapi.Algo, priv, pub []devapi.KeyProp) (devapi.Handle, devapi.Handle, error) {
	if err := l.enter(); err != nil {
		return 0, 0, err
	}
	defer l.leave()
	var a arena
	defer a.free()
	calgo, err := a.algo(algo)
	if err != nil {
		return 0, 0, err
	}
	var hpriv, hpub C.azihsm_handle
	if st := C.hb_key_gen_pair(l.c, C.azihsm_handle(session), calgo, a.props(priv), a.props(pub), &hpriv, &hpub); st != 0 {
		return 0, 0, statusErr("azihsm_key_gen_pair", st)
	}
	return devapi.Handle(hpriv), devapi.Handle(hpub), nil
}

// UnwrapKeyPair is azihsm_key_unwrap_pair (the key pair lands in the
// unwrapping key's session).
func (l *Library) UnwrapKeyPair(algo devapi.Algo, unwrappingKey devapi.Handle, wrapped []byte, priv, pub []devapi.KeyProp) (devapi.Handle, devapi.Handle, error) {
	if err := l.enter(); err != nil {
		return 0, 0, err
	}
	defer l.leave()
	var a arena
	defer a.free()
	calgo, err := a.algo(algo)
	if err != nil {
		return 0, 0, err
	}
	var hpriv, hpub C.azihsm_handle
	if st := C.hb_key_unwrap_pair(l.c, calgo, C.azihsm_handle(unwrappingKey), a.buffer(wrapped), a.props(priv), a.props(pub), &hpriv, &hpub); st != 0 {
		return 0, 0, statusErr("azihsm_key_unwrap_pair", st)
	}
	return devapi.Handle(hpriv), devapi.Handle(hpub), nil
}

func (l *Library) Unmask(session devapi.Handle, kind devapi.KeyKind, masked []byte) (devapi.Handle, error) {
	if err := l.enter(); err != nil {
		return 0, err
	}
	defer l.leave()
	var a arena
	defer a.free()
	var h C.azihsm_handle
	if st := C.hb_key_unmask(l.c, C.azihsm_handle(session), C.azihsm_key_kind(kind), a.buffer(masked), &h); st != 0 {
		return 0, statusErr("azihsm_key_unmask", st)
	}
	return devapi.Handle(h), nil
}

func (l *Library) UnmaskPair(session devapi.Handle, kind devapi.KeyKind, masked []byte) (devapi.Handle, devapi.Handle, error) {
	if err := l.enter(); err != nil {
		return 0, 0, err
	}
	defer l.leave()
	var a arena
	defer a.free()
	var hpriv, hpub C.azihsm_handle
	if st := C.hb_key_unmask_pair(l.c, C.azihsm_handle(session), C.azihsm_key_kind(kind), a.buffer(masked), &hpriv, &hpub); st != 0 {
		return 0, 0, statusErr("azihsm_key_unmask_pair", st)
	}
	return devapi.Handle(hpriv), devapi.Handle(hpub), nil
}

func (l *Library) Derive(session devapi.Handle, algo devapi.Algo, base devapi.Handle, props []devapi.KeyProp) (devapi.Handle, error) {
	if err := l.enter(); err != nil {
		return 0, err
	}
	defer l.leave()
	var a arena
	defer a.free()
	calgo, err := a.algo(algo)
	if err != nil {
		return 0, err
	}
	var h C.azihsm_handle
	if st := C.hb_key_derive(l.c, C.azihsm_handle(session), calgo, C.azihsm_handle(base), a.props(props), &h); st != 0 {
		return 0, statusErr("azihsm_key_derive", st)
	}
	return devapi.Handle(h), nil
}

func (l *Library) DeleteKey(key devapi.Handle) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.leave()
	return statusErr("azihsm_key_delete", C.hb_key_delete(l.c, C.azihsm_handle(key)))
}

func (l *Library) KeyProperty(key devapi.Handle, id devapi.KeyPropID) ([]byte, error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.leave()
	var a arena
	defer a.free()
	prop := cnew[C.struct_azihsm_key_prop](&a)
	return fill("azihsm_key_get_prop", func(buf unsafe.Pointer, capacity uint32) (uint32, devapi.Status) {
		prop.id = C.azihsm_key_prop_id(id)
		prop.val = buf
		prop.len = C.uint32_t(capacity)
		st := C.hb_key_get_prop(l.c, C.azihsm_handle(key), prop)
		return result(prop.len, st)
	})
}

func (l *Library) Sign(algo devapi.Algo, key devapi.Handle, data []byte) ([]byte, error) {
	return l.oneShot("azihsm_crypt_sign", algo, key, data, func(c *C.hb_lib, a *C.struct_azihsm_algo, k C.azihsm_handle, in, out *C.struct_azihsm_buffer) C.azihsm_status {
		return C.hb_crypt_sign(c, a, k, in, out)
	})
}

// oneShot is a one-shot crypto call (sign, decrypt): an algorithm, a key,
// an input, and an output filled by the size-then-fill convention.
func (l *Library) oneShot(name string, algo devapi.Algo, key devapi.Handle, data []byte,
	call func(*C.hb_lib, *C.struct_azihsm_algo, C.azihsm_handle, *C.struct_azihsm_buffer, *C.struct_azihsm_buffer) C.azihsm_status) ([]byte, error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.leave()
	var a arena
	defer a.free()
	calgo, err := a.algo(algo)
	if err != nil {
		return nil, err
	}
	in := a.buffer(data)
	out := cnew[C.struct_azihsm_buffer](&a)
	return fill(name, func(buf unsafe.Pointer, capacity uint32) (uint32, devapi.Status) {
		out.ptr, out.len = buf, C.uint32_t(capacity)
		st := call(l.c, calgo, C.azihsm_handle(key), in, out)
		return result(out.len, st)
	})
}

// SignStream is azihsm_crypt_sign_init, one _update per non-empty chunk,
// _finish (size-then-fill), and azihsm_free_ctx_handle on every path. A
// failure to free the context fails the call (the emulator's handle counts
// would show the leak anyway).
func (l *Library) SignStream(algo devapi.Algo, key devapi.Handle, chunks ...[]byte) (sig []byte, err error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.leave()
	var a arena
	defer a.free()
	calgo, err := a.algo(algo)
	if err != nil {
		return nil, err
	}
	var ctx C.azihsm_handle
	if st := C.hb_crypt_sign_init(l.c, calgo, C.azihsm_handle(key), &ctx); st != 0 {
		return nil, statusErr("azihsm_crypt_sign_init", st)
	}
	defer func() {
		if ferr := statusErr("azihsm_free_ctx_handle", C.hb_free_ctx_handle(l.c, ctx)); ferr != nil && err == nil {
			sig, err = nil, ferr
		}
	}()
	for _, chunk := range chunks {
		if len(chunk) == 0 {
			continue
		}
		if err := l.signUpdate(ctx, chunk); err != nil {
			return nil, err
		}
	}
	sigBuf := cnew[C.struct_azihsm_buffer](&a)
	return fill("azihsm_crypt_sign_finish", func(buf unsafe.Pointer, capacity uint32) (uint32, devapi.Status) {
		sigBuf.ptr, sigBuf.len = buf, C.uint32_t(capacity)
		st := C.hb_crypt_sign_finish(l.c, ctx, sigBuf)
		return result(sigBuf.len, st)
	})
}

// signUpdate feeds one chunk through its own arena, so a long message is
// not held in C memory all at once.
func (l *Library) signUpdate(ctx C.azihsm_handle, chunk []byte) error {
	var a arena
	defer a.free()
	return statusErr("azihsm_crypt_sign_update", C.hb_crypt_sign_update(l.c, ctx, a.buffer(chunk)))
}

func (l *Library) Verify(algo devapi.Algo, key devapi.Handle, data, sig []byte) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.leave()
	var a arena
	defer a.free()
	calgo, err := a.algo(algo)
	if err != nil {
		return err
	}
	return statusErr("azihsm_crypt_verify", C.hb_crypt_verify(l.c, calgo, C.azihsm_handle(key), a.buffer(data), a.buffer(sig)))
}

func (l *Library) Decrypt(algo devapi.Algo, key devapi.Handle, ciphertext []byte) ([]byte, error) {
	return l.oneShot("azihsm_crypt_decrypt", algo, key, ciphertext, func(c *C.hb_lib, a *C.struct_azihsm_algo, k C.azihsm_handle, in, out *C.struct_azihsm_buffer) C.azihsm_status {
		return C.hb_crypt_decrypt(c, a, k, in, out)
	})
}
