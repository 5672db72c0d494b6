package core

import (
	"bytes"
	"errors"
	"testing"
)

// Fuzz targets for masked keys; seed corpora in testdata/fuzz/FuzzOpenMasked
// and testdata/fuzz/FuzzSealOpenMasked.

// fuzzMaskingKey is the key FuzzOpenMasked opens with. No seed was sealed
// with it (the sealed seeds use bytes.Repeat({7}, 32), as masked_test.go
// does), so no input may ever open: the fuzzer would have to forge a tag.
var fuzzMaskingKey = bytes.Repeat([]byte{0x5a}, 32)

// FuzzOpenMasked feeds arbitrary bytes to ParseMaskedHeader and OpenMasked.
// A header that parses repeats the blob's bytes; every failure has a named
// kind; nothing opens without the key it was sealed with, even when the
// caller claims the blob's own instance.
func FuzzOpenMasked(f *testing.F) {
	f.Fuzz(func(t *testing.T, blob []byte) {
		h, err := ParseMaskedHeader(blob)
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("ParseMaskedHeader: error of kind %v: %v", KindOf(err), err)
			}
		} else {
			if len(blob) < maskedHeaderLen+maskedTagLen || string(blob[:8]) != maskedMagic {
				t.Fatalf("ParseMaskedHeader accepted %d bytes starting %q", len(blob), blob[:min(8, len(blob))])
			}
			if h.Version != MaskedVersion1 || h.Flags != blob[9] || !bytes.Equal(h.Instance[:], blob[10:26]) {
				t.Fatalf("header %+v does not repeat the blob's bytes % x", h, blob[:26])
			}
		}
		for _, inst := range []InstanceID{h.Instance, {0xff}} {
			oh, plain, err := OpenMasked(fuzzMaskingKey, inst, blob)
			if err == nil || plain != nil {
				t.Fatalf("OpenMasked opened %q without its key (header %+v, err %v)", blob, oh, err)
			}
			if k := KindOf(err); k != KindInvalidInput && k != KindUnsupported {
				t.Fatalf("OpenMasked: error of kind %v: %v", k, err)
			}
		}
		if _, plain, err := OpenMasked(fuzzMaskingKey[:31], h.Instance, blob); err == nil || plain != nil {
			t.Fatalf("OpenMasked with a 31-byte key opened %q", blob)
		}
	})
}

// FuzzSealOpenMasked seals fuzzed plaintext with fuzzed flags and instance,
// and checks that the blob opens to the same plaintext and header with the
// right key and instance, and fails with one byte changed, with one byte
// missing, with another key or with another instance.
func FuzzSealOpenMasked(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	f.Fuzz(func(t *testing.T, plaintext []byte, flags byte, instance []byte, at uint16, xor byte) {
		var inst InstanceID
		copy(inst[:], instance)
		blob, err := SealMasked(key, inst, flags, plaintext)
		if err != nil {
			t.Fatalf("SealMasked: %v", err)
		}
		if len(blob) != maskedHeaderLen+len(plaintext)+maskedTagLen {
			t.Fatalf("sealing %d bytes gave %d", len(plaintext), len(blob))
		}
		if len(plaintext) >= 16 && bytes.Equal(blob[maskedHeaderLen:maskedHeaderLen+len(plaintext)], plaintext) {
			t.Fatal("the ciphertext is the plaintext")
		}
		want := MaskedHeader{Version: MaskedVersion1, Flags: flags, Instance: inst}
		if h, err := ParseMaskedHeader(blob); err != nil || h != want {
			t.Fatalf("ParseMaskedHeader = %+v, %v; want %+v", h, err, want)
		}
		h, plain, err := OpenMasked(key, inst, blob)
		if err != nil || h != want || !bytes.Equal(plain, plaintext) {
			t.Fatalf("OpenMasked = %+v, %q, %v; want %+v, %q", h, plain, err, want, plaintext)
		}

		mustFail := func(what string, k []byte, in InstanceID, b []byte) {
			t.Helper()
			_, plain, err := OpenMasked(k, in, b)
			if err == nil || plain != nil {
				t.Fatalf("%s: opened", what)
			}
			if kind := KindOf(err); kind != KindInvalidInput && kind != KindUnsupported {
				t.Fatalf("%s: error of kind %v: %v", what, kind, err)
			}
		}
		i := int(at) % len(blob)
		if xor != 0 {
			altered := bytes.Clone(blob)
			altered[i] ^= xor
			mustFail("one byte changed", key, inst, altered)
		}
		mustFail("one byte missing", key, inst, append(bytes.Clone(blob[:i]), blob[i+1:]...))
		mustFail("truncated", key, inst, blob[:i])
		other := bytes.Clone(key)
		other[i%len(other)] ^= 1
		mustFail("another key", other, inst, blob)
		otherInst := inst
		otherInst[i%len(otherInst)] ^= 1
		mustFail("another instance", key, otherInst, blob)
	})
}
