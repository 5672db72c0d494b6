package mhsm

import (
	"bytes"
	"context"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
)

// The service never says an oct key's size: a backend that did not create
// the key sees 0 bits, wraps with CKM_AES_KEY_WRAP anyway, learns the size
// from an AnnnKW the service accepts, and explains a refused one.
func TestAESKeyOfUnknownSize(t *testing.T) {
	ctx := context.Background()
	s := startStandin(t)
	maker, _ := s.backend(t, testToken)
	id := core.KeyID{Namespace: "contract-tests", Name: "aes-unknown"}
	if _, err := maker.CreateKey(ctx, id, core.KeySpec{Type: core.KeyTypeOct, Bits: 192, Usages: []core.KeyUsage{core.UsageWrapKey, core.UsageUnwrapKey}}); err != nil {
		t.Fatal(err)
	}
	b, _ := s.backend(t, testToken) // another process: knows nothing
	info, err := b.GetKey(ctx, id)
	if err != nil || info.Type != core.KeyTypeOct || info.Bits != 0 {
		t.Fatalf("GetKey: %+v %v, want an oct key of unknown size", info, err)
	}
	data := bytes.Repeat([]byte{5}, 32)
	w1, err := b.WrapKey(ctx, id, data, core.WrapAESKeyWrap)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.WrapKey(ctx, id, data, core.WrapA256KW)
	expectKind(t, err, &core.Error{Kind: core.KindInvalidInput}, "CKM_AES_KEY_WRAP")
	if info, _ := b.GetKey(ctx, id); info.Bits != 0 {
		t.Fatalf("a refused A256KW taught a size: %d", info.Bits)
	}
	w2, err := b.WrapKey(ctx, id, data, core.WrapA192KW)
	if err != nil || !bytes.Equal(w1, w2) {
		t.Fatalf("A192KW: %x %v, CKM_AES_KEY_WRAP gave %x", w2, err, w1)
	}
	if info, err := b.GetKey(ctx, id); err != nil || info.Bits != 192 {
		t.Fatalf("after A192KW the size is %d (%v), want 192", info.Bits, err)
	}
	out, err := b.UnwrapKey(ctx, id, w1, core.WrapA192KW)
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("unwrap: %x %v", out, err)
	}
}
