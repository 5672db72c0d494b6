package simulator

// ECDSA on the NIST curves through libcrypto (internal/ossl): each
// signature is checked by Go's crypto (verify), and a version that leaves
// the cache releases its libcrypto key and still signs, on crypto/ecdsa.

import (
	"crypto/sha256"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
)

func TestECDSAInLibcryptoAndReleasedWithItsVersion(t *testing.T) {
	scheme := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
	d := sha256.Sum256([]byte("ec"))
	native := nativeBuild(t)
	for _, c := range []core.Curve{core.CurveP256, core.CurveP384, core.CurveP521} {
		t.Run(string(c), func(t *testing.T) {
			b, _ := newBackend(t)
			info := create(t, b, "ns", "k", ecSpec(c, core.UsageSign))
			sig, err := b.Sign(ctx, info.ID, d[:], scheme)
			if err != nil || verify(t, info, scheme, d[:], sig) != nil {
				t.Fatalf("sign: %v", err)
			}
			v, err := b.resolve(info.ID) // parsed and loaded by the Sign above
			if err != nil {
				t.Fatal(err)
			}
			if v.ec == nil || v.ec.Native() != native {
				t.Fatalf("the %s key is not in libcrypto (cgo build: %v)", c, native)
			}
			if _, err := b.DeleteKey(ctx, core.KeyID{Namespace: "ns", Name: "k"}); err != nil {
				t.Fatal(err)
			}
			if v.ec.Native() {
				t.Fatal("a deleted key's version still holds its libcrypto key")
			}
			again, err := v.ec.Sign(nil, d[:], scheme.Hash.Crypto())
			if err != nil || verify(t, info, scheme, d[:], again) != nil {
				t.Fatalf("a released version does not sign: %v", err)
			}
		})
	}
}
