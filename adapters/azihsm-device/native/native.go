//go:build cgo

// Package native is the cgo binding of the Azure Integrated HSM's native C
// API: Open loads libazihsm_api_native.so (or the emulated device's library
// of the same ABI) with dlopen and returns a *Library, which implements
// devapi.Library. The program is never linked against the library, so a
// host without the device still builds and starts, and the path is a
// setting.
//
// Layout. shim.h/shim.c hold the C half: a struct with one function pointer
// per entry of the header's AZIHSM_API_FUNCTIONS list (the list lives once,
// in the header; the typedefs, the struct fields and the dlsym calls are
// generated from it) and one forwarding trampoline per function, as cgo
// cannot call through a function pointer. cmem.go holds the Go side of
// memory: a per-call arena of C memory, the one helper of the API's
// size-then-fill convention, and the marshalling of algorithms and key
// property lists. calls.go has one method per API call.
//
// Memory. Every input reaches the library as a copy in C memory made for
// that call (structures included), so no Go pointer is ever passed and
// nothing is pinned; the call's arena zeroes each copy before freeing it
// (wrapped keys, masked blobs, PINs, plaintexts: all of it, which is simpler
// than choosing and costs a memset). Outputs are copied into Go memory
// before the call returns; Go keeps no C pointer but the library's own.
//
// Concurrency. The library is thread-safe and so is *Library, with no lock
// on the call path: a call only increments an in-flight counter and checks
// a closed flag (two atomic operations). Close takes a mutex, sets the flag,
// waits for the calls in flight to leave, and only then dlcloses, so a
// racing call fails cleanly instead of jumping into an unmapped library.
//
// The emulated device's control calls (azihsm_emu_open_handles,
// azihsm_emu_inject_fault) are optional symbols. *Library implements
// devapi.EmulatorControls: Counter and FaultInjector return an
// implementation when the symbol resolved and false otherwise (the real
// library), so devapi.CounterOf(lib) is the question to ask; *Library
// itself never pretends to have them.
package native

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
	"github.com/hsmbridge/hsmbridge/core"
)

// Library is a loaded device library. It is safe for concurrent use.
type Library struct {
	path string
	c    *C.hb_lib // owned by this Library; freed by Close

	hasCounter, hasFaults bool // the emulator's control calls resolved

	inflight atomic.Int64
	closed   atomic.Bool
	closeMu  sync.Mutex
}

var (
	_ devapi.Library          = (*Library)(nil)
	_ devapi.EmulatorControls = (*Library)(nil)
)

// Open loads the library at path with dlopen(RTLD_NOW|RTLD_LOCAL) and
// resolves every function of the API. A library that does not load is an
// unavailable error naming the path and dlerror's text; one that lacks a
// function is an unsupported error naming the symbol.
func Open(path string) (*Library, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	var missing *C.char
	c := C.hb_open(cpath, &cerr, &missing)
	if c == nil {
		msg := "unknown error"
		if cerr != nil {
			msg = C.GoString(cerr)
			C.free(unsafe.Pointer(cerr))
		}
		if missing != nil {
			return nil, core.Errorf(core.KindUnsupported,
				"azihsm device library %q has no function %s (not the Azure Integrated HSM native library, or an older one): %s",
				path, C.GoString(missing), msg)
		}
		return nil, core.Errorf(core.KindUnavailable, "cannot load the azihsm device library %q: %s", path, msg)
	}
	return &Library{
		path:       path,
		c:          c,
		hasCounter: C.hb_has_emu_open_handles(c) != 0,
		hasFaults:  C.hb_has_emu_inject_fault(c) != 0,
	}, nil
}

// Path is where the library was loaded from.
func (l *Library) Path() string { return l.path }

// Close waits for the calls in flight, then unloads the library. Later
// calls fail with an unavailable error. Closing twice is a no-op.
func (l *Library) Close() error {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed.Load() {
		return nil
	}
	l.closed.Store(true)
	for l.inflight.Load() != 0 {
		time.Sleep(100 * time.Microsecond)
	}
	C.hb_close(l.c)
	return nil
}

// enter admits a call unless the library is closed; every admitted call
// runs leave when it is done. Close sets closed before it reads inflight
// and a call adds to inflight before it reads closed, so either the call
// sees closed or Close waits for it.
func (l *Library) enter() error {
	l.inflight.Add(1)
	if l.closed.Load() {
		l.inflight.Add(-1)
		return core.Errorf(core.KindUnavailable, "azihsm device library %q is closed", l.path)
	}
	return nil
}

func (l *Library) leave() { l.inflight.Add(-1) }

// Counter returns the emulated device's handle counter, or false when the
// library has no azihsm_emu_open_handles (the real one).
func (l *Library) Counter() (devapi.HandleCounter, bool) {
	if !l.hasCounter {
		return nil, false
	}
	return emuCounter{l}, true
}

// FaultInjector returns the emulated device's fault injector, or false when
// the library has no azihsm_emu_inject_fault (the real one).
func (l *Library) FaultInjector() (devapi.FaultInjector, bool) {
	if !l.hasFaults {
		return nil, false
	}
	return emuFaults{l}, true
}

type emuCounter struct{ l *Library }

func (e emuCounter) OpenHandles() (devapi.HandleCounts, error) {
	if err := e.l.enter(); err != nil {
		return devapi.HandleCounts{}, err
	}
	defer e.l.leave()
	var p, s, k, c C.uint32_t
	if st := C.hb_emu_open_handles(e.l.c, &p, &s, &k, &c); st != 0 {
		return devapi.HandleCounts{}, statusErr("azihsm_emu_open_handles", st)
	}
	return devapi.HandleCounts{Partitions: int(p), Sessions: int(s), Keys: int(k), Contexts: int(c)}, nil
}

type emuFaults struct{ l *Library }

func (e emuFaults) InjectFault(fault string, count int32) error {
	if err := e.l.enter(); err != nil {
		return err
	}
	defer e.l.leave()
	cf := C.CString(fault)
	defer C.free(unsafe.Pointer(cf))
	return statusErr("azihsm_emu_inject_fault", C.hb_emu_inject_fault(e.l.c, cf, C.int32_t(count)))
}

// statusErr is nil for success and a *devapi.StatusError otherwise.
func statusErr(fn string, st C.azihsm_status) error {
	if st == 0 {
		return nil
	}
	return &devapi.StatusError{Func: fn, Status: devapi.Status(st)}
}
