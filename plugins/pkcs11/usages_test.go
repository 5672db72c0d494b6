package pkcs11backend

import (
	"context"
	"slices"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/miekg/pkcs11"
)

// A key is made with exactly the usages asked for: the token's own
// defaults (SoftHSM2 allows decrypt and unwrap unless told otherwise) add
// none, as the private object's attributes, read here directly, show.
func TestCreatedKeysHaveOnlyTheUsagesAskedFor(t *testing.T) {
	b := configured(t, nil)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		spec core.KeySpec
		want []core.KeyUsage
		attr map[uint]bool
	}{
		{"ec-sign", core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}},
			[]core.KeyUsage{core.UsageSign, core.UsageVerify},
			map[uint]bool{pkcs11.CKA_SIGN: true, pkcs11.CKA_DECRYPT: false, pkcs11.CKA_UNWRAP: false, pkcs11.CKA_DERIVE: false}},
		{"rsa-sign", core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048, Usages: []core.KeyUsage{core.UsageSign}},
			[]core.KeyUsage{core.UsageSign, core.UsageVerify},
			map[uint]bool{pkcs11.CKA_SIGN: true, pkcs11.CKA_DECRYPT: false, pkcs11.CKA_UNWRAP: false}},
		{"rsa-decrypt", core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048, Usages: []core.KeyUsage{core.UsageDecrypt}},
			[]core.KeyUsage{core.UsageDecrypt, core.UsageEncrypt},
			map[uint]bool{pkcs11.CKA_SIGN: false, pkcs11.CKA_DECRYPT: true, pkcs11.CKA_UNWRAP: false}},
	} {
		k, err := b.CreateKey(ctx, core.KeyID{Name: c.name}, c.spec)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := slices.Clone(k.Usages)
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: usages %v, want %v", c.name, k.Usages, c.want)
		}
		err = b.pool.do(ctx, func(s pkcs11.SessionHandle) error {
			objs, err := b.find(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), pkcs11.NewAttribute(pkcs11.CKA_LABEL, c.name)})
			if err != nil || len(objs) != 1 {
				t.Fatalf("%s: %d private objects, %v", c.name, len(objs), err)
			}
			for a, v := range c.attr {
				got, err := b.pool.ctx.GetAttributeValue(s, objs[0].h, []*pkcs11.Attribute{pkcs11.NewAttribute(a, nil)})
				if err != nil {
					return err
				}
				if boolAttr(got[0]) != v {
					t.Errorf("%s: attribute 0x%x is %v, want %v", c.name, a, boolAttr(got[0]), v)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
