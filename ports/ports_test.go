package ports

import (
	"context"
	"slices"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
)

type lookupOnly struct{}

func (lookupOnly) GetKey(context.Context, core.KeyID) (core.KeyInfo, error) {
	return core.KeyInfo{}, nil
}

type lookupAndSign struct{ lookupOnly }

func (lookupAndSign) Sign(context.Context, core.KeyID, []byte, core.SignatureScheme) ([]byte, error) {
	return nil, nil
}

func TestOperationsFollowImplementedInterfaces(t *testing.T) {
	if got := Operations(lookupOnly{}); !slices.Equal(got, []core.Operation{core.OpGetKey}) {
		t.Fatalf("lookup-only backend declares %v", got)
	}
	d := Describe("x", "1", lookupAndSign{})
	if !d.Supports(core.OpSign) || d.Supports(core.OpDecrypt) || d.Supports(core.OpCreateKey) {
		t.Fatalf("signer declares %v", d.Operations)
	}
	if !d.SupportsSignature(core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA384}) {
		t.Fatalf("a signer without SchemeLister should declare every scheme, got %v", d.SignatureSchemes)
	}
}
