package mhsm

import (
	"context"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/testdoubles/mhsm-standin"
)

func checkNamed(t *testing.T, checks []core.Check, prefix string) core.Check {
	t.Helper()
	for _, c := range checks {
		if strings.HasPrefix(c.Name, prefix) {
			return c
		}
	}
	t.Fatalf("no %q check in %+v", prefix, checks)
	return core.Check{}
}

// Diagnose names the credential, reports the token, and turns the HSM's
// refusals into checks with the fix to apply.
func TestDiagnose(t *testing.T) {
	s := startStandin(t)
	ctx := context.Background()

	good, _ := s.backend(t, testToken)
	checks, err := good.Diagnose(ctx, "doctorhsm")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if !c.OK {
			t.Errorf("healthy HSM: check %+v failed", c)
		}
	}
	if c := checkNamed(t, checks, "credential"); c.Detail != "the test credential" {
		t.Errorf("credential check says %q", c.Detail)
	}
	if c := checkNamed(t, checks, "HSM "); !strings.Contains(c.Detail, "answered a key listing") {
		t.Errorf("HSM check says %q", c.Detail)
	}

	bad, _ := s.backend(t, "not-the-token")
	checks, err = bad.Diagnose(ctx, "doctorhsm")
	if err != nil {
		t.Fatal(err)
	}
	if c := checkNamed(t, checks, "HSM "); c.OK || !strings.Contains(c.Detail, "401") || c.Fix == "" {
		t.Errorf("a refused token: %+v", c)
	}

	s.srv.SetInject(mhsmstandin.Inject{Deny: mhsmstandin.Fault{Count: 1}})
	defer s.srv.SetInject(mhsmstandin.Inject{})
	checks, err = good.Diagnose(ctx, "doctorhsm")
	if err != nil {
		t.Fatal(err)
	}
	if c := checkNamed(t, checks, "HSM "); c.OK || !strings.Contains(c.Fix, `--role "Managed HSM Crypto User"`) {
		t.Errorf("a missing role: %+v", c)
	}
}

// The service never says an AES key's size; a listing by the process that
// created the key still shows it.
func TestListKeepsSizeOfAESKeysCreatedHere(t *testing.T) {
	s := startStandin(t)
	ctx := context.Background()
	b, _ := s.backend(t, testToken)
	id := core.KeyID{Namespace: "listhsm", Name: "aes"}
	if _, err := b.CreateKey(ctx, id, core.KeySpec{Type: core.KeyTypeOct, Bits: 192, Usages: []core.KeyUsage{core.UsageWrapKey}}); err != nil {
		t.Fatal(err)
	}
	keys, err := b.ListKeys(ctx, "listhsm")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Type != core.KeyTypeOct || keys[0].Bits != 192 {
		t.Fatalf("listed %+v", keys)
	}
}
