package core

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestMaskedKeyRoundTripAndEveryFailureNamed(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	inst := InstanceID{1, 2, 3}
	secret := []byte("a private key's bytes")
	blob, err := SealMasked(key, inst, MaskedFlagSession, secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, secret) {
		t.Fatal("the masked key contains the plaintext")
	}
	h, plain, err := OpenMasked(key, inst, blob)
	if err != nil || !bytes.Equal(plain, secret) || h.Flags != MaskedFlagSession || h.Instance != inst {
		t.Fatalf("open: %v %q %+v", err, plain, h)
	}
	again, _ := SealMasked(key, inst, 0, secret)
	if bytes.Equal(again[38:], blob[38:]) {
		t.Fatal("two seals of the same key are identical: the nonce is not fresh")
	}

	altered := bytes.Clone(blob)
	altered[len(altered)-20] ^= 1
	flagFlipped := bytes.Clone(blob)
	flagFlipped[9] = 0
	versioned := bytes.Clone(blob)
	versioned[8] = 9
	cases := []struct {
		name string
		blob []byte
		inst InstanceID
		kind *Error
		says string
	}{
		{"truncated", blob[:30], inst, ErrInvalidInput, "truncated"},
		{"truncated magic", blob[:4], inst, ErrInvalidInput, "truncated"},
		{"empty", nil, inst, ErrInvalidInput, "empty"},
		{"foreign format", []byte("-----BEGIN PRIVATE KEY-----\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), inst, ErrInvalidInput, "not an hsmbridge masked key"},
		{"altered ciphertext", altered, inst, ErrInvalidInput, "altered or damaged"},
		{"altered header", flagFlipped, inst, ErrInvalidInput, "altered or damaged"},
		{"another instance", blob, InstanceID{9}, ErrInvalidInput, "another backend instance"},
		{"future version", versioned, inst, ErrUnsupported, "version 9"},
	}
	for _, c := range cases {
		_, _, err := OpenMasked(key, c.inst, c.blob)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %v saying %q", c.name, err, c.kind.Kind, c.says)
		}
	}
	if _, _, err := OpenMasked(bytes.Repeat([]byte{8}, 32), inst, blob); err == nil {
		t.Error("opened with another masking key")
	}
}
