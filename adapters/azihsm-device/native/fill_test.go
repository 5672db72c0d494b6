//go:build cgo

package native

import (
	"bytes"
	"errors"
	"testing"
	"unsafe"

	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
	"github.com/hsmbridge/hsmbridge/core"
)

// fakeOutput answers like an API call with an output buffer holding want.
func fakeOutput(want []byte, calls *int) func(unsafe.Pointer, uint32) (uint32, devapi.Status) {
	return func(buf unsafe.Pointer, capacity uint32) (uint32, devapi.Status) {
		*calls++
		if buf == nil && capacity > 0 {
			return 0, devapi.StatusInvalidArgument
		}
		if capacity < uint32(len(want)) {
			return uint32(len(want)), devapi.StatusBufferTooSmall
		}
		copy(unsafe.Slice((*byte)(buf), capacity), want)
		return uint32(len(want)), devapi.StatusSuccess
	}
}

func TestFillAsksTwice(t *testing.T) {
	calls := 0
	got, err := fill("f", fakeOutput([]byte("signature"), &calls))
	if err != nil || !bytes.Equal(got, []byte("signature")) || calls != 2 {
		t.Fatalf("fill = %q, %v after %d calls", got, err, calls)
	}
}

func TestFillEmptyOutput(t *testing.T) {
	calls := 0
	got, err := fill("f", fakeOutput(nil, &calls))
	if err != nil || got == nil || len(got) != 0 || calls != 1 {
		t.Fatalf("fill = %q, %v after %d calls", got, err, calls)
	}
}

func TestFillGivesUpOnAGreedyLibrary(t *testing.T) {
	calls := 0
	_, err := fill("f", func(_ unsafe.Pointer, capacity uint32) (uint32, devapi.Status) {
		calls++
		return capacity + 8, devapi.StatusBufferTooSmall
	})
	if !errors.Is(err, core.ErrInternal) || calls != fillAttempts {
		t.Fatalf("err = %v after %d calls", err, calls)
	}
}

func TestFillRefusesBadLengths(t *testing.T) {
	for name, call := range map[string]func(unsafe.Pointer, uint32) (uint32, devapi.Status){
		"too small, no larger": func(unsafe.Pointer, uint32) (uint32, devapi.Status) { return 0, devapi.StatusBufferTooSmall },
		"huge": func(unsafe.Pointer, uint32) (uint32, devapi.Status) {
			return maxOutput + 1, devapi.StatusBufferTooSmall
		},
		"wrote past the end": func(buf unsafe.Pointer, capacity uint32) (uint32, devapi.Status) {
			if buf == nil {
				return 4, devapi.StatusBufferTooSmall
			}
			return capacity + 1, devapi.StatusSuccess
		},
	} {
		if _, err := fill("f", call); !errors.Is(err, core.ErrInternal) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestFillPassesOtherStatuses(t *testing.T) {
	_, err := fill("azihsm_crypt_sign", func(unsafe.Pointer, uint32) (uint32, devapi.Status) {
		return 0, devapi.StatusUnsupportedKeyOperation
	})
	var se *devapi.StatusError
	if !errors.As(err, &se) || se.Func != "azihsm_crypt_sign" || !errors.Is(err, core.ErrOperationNotAllowed) {
		t.Fatalf("err = %v", err)
	}
}
