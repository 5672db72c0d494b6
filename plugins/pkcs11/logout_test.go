package pkcs11backend

import (
	"context"
	"crypto/sha256"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
)

func TestAfterLogout(t *testing.T) {
	b := configured(t, nil)
	ctx := context.Background()
	k, err := b.CreateKey(ctx, core.KeyID{Name: "e"}, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256})
	if err != nil {
		t.Fatal(err)
	}
	h := <-b.pool.ch
	b.pool.ctx.Logout(h)
	b.pool.ch <- h
	d := sha256.Sum256([]byte("x"))
	_, err = b.Sign(ctx, k.ID, d[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	if err != nil {
		t.Fatalf("after C_Logout: %v", err)
	}
}
