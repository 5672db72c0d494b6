package mhsmstandin

import (
	"context"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// Keys are listed in creation order (as the service lists them), through a
// soft delete and recovery, a new version, and a restart from the state file.
func TestListCreationOrder(t *testing.T) {
	path := t.TempDir() + "/state.json"
	srv, client, _ := setup(t, Options{StateFile: path, PageSize: 2})
	ctx := context.Background()
	for _, n := range []string{"zeta", "alpha", "Mid", "beta"} {
		if _, err := client.CreateKey(ctx, n, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	list := func(c *azkeys.Client) string {
		var got []string
		for p := c.NewListKeyPropertiesPager(nil); p.More(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Value {
				got = append(got, it.KID.Name())
			}
		}
		return strings.Join(got, ",")
	}
	const want = "zeta,alpha,Mid,beta"
	if got := list(client); got != want {
		t.Fatalf("listed %s, want creation order %s", got, want)
	}
	if _, err := client.DeleteKey(ctx, "alpha", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.RecoverDeletedKey(ctx, "alpha", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateKey(ctx, "zeta", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
		t.Fatal(err)
	}
	if got := list(client); got != want {
		t.Fatalf("after recover and a new version: %s, want %s", got, want)
	}
	srv.Close()
	_, client2, _ := setup(t, Options{StateFile: path})
	if got := list(client2); got != want {
		t.Fatalf("after a restart: %s, want %s", got, want)
	}
}

// An import answers its key_ops in the service's order, whatever the
// request's order; a create answers them as sent (both as recorded).
func TestKeyOpsOrder(t *testing.T) {
	_, client, _ := setup(t, Options{})
	ctx := context.Background()
	ops := func(names ...string) []*azkeys.KeyOperation {
		var out []*azkeys.KeyOperation
		for _, n := range names {
			out = append(out, to.Ptr(azkeys.KeyOperation(n)))
		}
		return out
	}
	cr, err := client.CreateKey(ctx, "c", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeyOps: ops("encrypt", "decrypt")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(opsOf(cr.Key), ","); got != "encrypt,decrypt" {
		t.Errorf("create answered key_ops %s", got)
	}
	if got := strings.Join(importOrder([]string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}), ","); got != "decrypt,encrypt,unwrapKey,sign,verify,wrapKey" {
		t.Errorf("import order %s", got)
	}
	if got := importOrder([]string{"verify", "sign"}); strings.Join(got, ",") != "sign,verify" {
		t.Errorf("import order %v", got)
	}
	if importOrder(nil) != nil {
		t.Error("no key_ops must stay none (the defaults apply)")
	}
}
