package main

import (
	"syscall"
	"unsafe"
)

// parentDeathSignal is the signal the kernel sends this process when the
// thread that started it ends (0 for none).
func parentDeathSignal() (int, error) {
	var sig int32
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_GET_PDEATHSIG, uintptr(unsafe.Pointer(&sig)), 0); e != 0 {
		return 0, e
	}
	return int(sig), nil
}
