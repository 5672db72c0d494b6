package hostsvc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc/fakebackend"
)

var ctx = context.Background()

func ecSpec() core.KeySpec {
	return core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign, core.UsageVerify}}
}

func ecdsaScheme() core.SignatureScheme {
	return core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
}

func TestLongestPrefixRoutingOnCanonicalReference(t *testing.T) {
	a, b, c := fakebackend.New("a"), fakebackend.New("b"), fakebackend.New("c")
	svc, err := hostsvc.New([]hostsvc.Route{
		{Prefix: "", Backend: "a"},
		{Prefix: "managedhsm:MyHSM:", Backend: "b"},
		{Prefix: "managedhsm:MyHSM:special", Backend: "c"},
	}, []hostsvc.Backend{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{
		"managedhsm:MyHSM:k":                "b",
		"akv:vault=MyHSM,name=k":            "b", // canonicalised before routing
		"MANAGEDHSM:MyHSM:k":                "b",
		"managedhsm:MyHSM:special-1":        "c",
		"akv:name=special,vault=MyHSM":      "c",
		"managedhsm:Other:k":                "a",
		"hsmbridge:MyHSM:k":                 "a",
		"managedhsm:MyHSM:k?version=abc123": "b",
	} {
		got, err := svc.RouteOf(ref)
		if err != nil || got != want {
			t.Errorf("RouteOf(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
}

func TestNoRouteNamesTheReference(t *testing.T) {
	svc, _ := hostsvc.New([]hostsvc.Route{{Prefix: "managedhsm:MyHSM:", Backend: "a"}}, []hostsvc.Backend{fakebackend.New("a")})
	_, err := svc.GetKey(ctx, "akv:vault=Other,name=k")
	if !errors.Is(err, core.ErrNoRoute) {
		t.Fatalf("kind %v: %v", core.KindOf(err), err)
	}
	if !strings.HasPrefix(err.Error(), "managedhsm:Other:k: ") {
		t.Fatalf("message %q does not start with the canonical reference", err)
	}
}

func TestErrorsNameReferenceAndBackendAndKeepKind(t *testing.T) {
	svc, _ := hostsvc.New([]hostsvc.Route{{Prefix: "", Backend: "simulator"}}, []hostsvc.Backend{fakebackend.New("simulator")})
	_, err := svc.GetKey(ctx, "managedhsm:MyHSM:nokey")
	if !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("kind %v", core.KindOf(err))
	}
	if want := `managedhsm:MyHSM:nokey: key not found in backend "simulator"`; err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
	if hostsvc.BackendOf(err) != "simulator" {
		t.Fatalf("BackendOf = %q", hostsvc.BackendOf(err))
	}
	if _, err := svc.GetKey(ctx, "managedhsm:x"); !errors.Is(err, core.ErrInvalidReference) {
		t.Fatalf("bad reference: %v", err)
	}
}

func TestUndeclaredOperationIsRefusedWithoutCallingBackend(t *testing.T) {
	// The fake implements Sign and Random, but declares neither.
	nosign := fakebackend.New("nosign").Without(core.OpSign, core.OpRandom)
	svc, _ := hostsvc.New([]hostsvc.Route{{Prefix: "", Backend: "nosign"}}, []hostsvc.Backend{nosign})
	k, err := svc.CreateKey(ctx, "hsmbridge:ns:k", ecSpec())
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	_, _, err = svc.Sign(ctx, k.Reference, "", digest[:], ecdsaScheme())
	if !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("kind %v: %v", core.KindOf(err), err)
	}
	if !strings.Contains(err.Error(), `hsmbridge:ns:k?version=v1: backend "nosign" does not support signing`) {
		t.Fatalf("message %q", err)
	}
	if _, err := svc.Random(ctx, "hsmbridge:ns:k", 16); !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("random: %v", err)
	}
	if n := nosign.Calls(core.OpSign) + nosign.Calls(core.OpRandom); n != 0 {
		t.Fatalf("backend called %d times for undeclared operations", n)
	}
}

func TestUndeclaredSchemeIsRefusedWithoutCallingBackend(t *testing.T) {
	b := fakebackend.New("narrow").WithSignatureSchemes("ecdsa-sha384")
	svc, _ := hostsvc.New([]hostsvc.Route{{Prefix: "", Backend: "narrow"}}, []hostsvc.Backend{b})
	k, _ := svc.CreateKey(ctx, "hsmbridge:ns:k", ecSpec())
	digest := sha256.Sum256([]byte("x"))
	_, _, err := svc.Sign(ctx, k.Reference, "", digest[:], ecdsaScheme())
	if !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), "ecdsa-sha256") {
		t.Fatalf("%v", err)
	}
	if b.Calls(core.OpSign) != 0 {
		t.Fatal("backend was called")
	}
}

func TestSignVerifiesWithStandardLibraryAndVersionPinning(t *testing.T) {
	b := fakebackend.New("a")
	svc, _ := hostsvc.New([]hostsvc.Route{{Prefix: "", Backend: "a"}}, []hostsvc.Backend{b})
	k1, err := svc.CreateKey(ctx, "managedhsm:MyHSM:k", ecSpec())
	if err != nil {
		t.Fatal(err)
	}
	if k1.Reference != "managedhsm:MyHSM:k?version=v1" || k1.Backend != "a" {
		t.Fatalf("created %+v", k1)
	}
	k2, _ := svc.CreateKey(ctx, "akv:vault=MyHSM,name=k", ecSpec())
	if k2.Reference != "managedhsm:MyHSM:k?version=v2" {
		t.Fatalf("second version %q", k2.Reference)
	}
	got, err := svc.GetKey(ctx, "managedhsm:MyHSM:k")
	if err != nil || got.Reference != k2.Reference {
		t.Fatalf("latest: %q %v", got.Reference, err)
	}
	digest := sha256.Sum256([]byte("hello"))
	// Pinned through the request's version field: must verify with v1's key.
	sig, tm, err := svc.Sign(ctx, "managedhsm:MyHSM:k", "v1", digest[:], ecdsaScheme())
	if err != nil {
		t.Fatal(err)
	}
	if tm.Backend == 0 {
		t.Error("no backend time")
	}
	pub, _ := x509.ParsePKIXPublicKey(k1.PublicKeyDER)
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatal("signature does not verify with version 1")
	}
	pub2, _ := x509.ParsePKIXPublicKey(k2.PublicKeyDER)
	if ecdsa.VerifyASN1(pub2.(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatal("signature verifies with version 2: pinning ignored")
	}
	if _, _, err := svc.Sign(ctx, "managedhsm:MyHSM:k?version=v1", "v2", digest[:], ecdsaScheme()); !errors.Is(err, core.ErrInvalidInput) {
		t.Fatalf("conflicting versions: %v", err)
	}
	if _, err := svc.CreateKey(ctx, "managedhsm:MyHSM:k?version=v1", ecSpec()); !errors.Is(err, core.ErrInvalidInput) {
		t.Fatalf("create with version: %v", err)
	}
}

func TestListKeysRebuildsReferencesAndFilters(t *testing.T) {
	a, b := fakebackend.New("a"), fakebackend.New("b")
	svc, _ := hostsvc.New([]hostsvc.Route{
		{Prefix: "", Backend: "a"},
		{Prefix: "hsmbridge:part1:", Backend: "b"},
	}, []hostsvc.Backend{a, b})
	for _, r := range []string{"managedhsm:MyHSM:one", "hsmbridge:part1:two", "hsmbridge:my_ns:three"} {
		if _, err := svc.CreateKey(ctx, r, ecSpec()); err != nil {
			t.Fatal(err)
		}
	}
	all, err := svc.ListKeys(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range all {
		got = append(got, k.Reference+"@"+k.Backend)
	}
	want := "hsmbridge:my_ns:three?version=v1@a hsmbridge:part1:two?version=v1@b managedhsm:MyHSM:one?version=v1@a"
	if strings.Join(got, " ") != want {
		t.Fatalf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	part, _ := svc.ListKeys(ctx, "hsmbridge:part1:")
	if len(part) != 1 || part[0].Backend != "b" {
		t.Fatalf("filtered: %+v", part)
	}
	if a.Calls(core.OpListKeys) != 1 {
		t.Fatalf("backend a listed %d times; the prefix routes only to b", a.Calls(core.OpListKeys))
	}
}

func TestSwapRoutesAtomicallyAndClosesOldBackendsAfterDrain(t *testing.T) {
	a := fakebackend.New("a")
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	a.SignHook = func([]byte) { entered <- struct{}{}; <-release }
	svc, _ := hostsvc.New([]hostsvc.Route{{Prefix: "", Backend: "a"}}, []hostsvc.Backend{a})
	k, _ := svc.CreateKey(ctx, "hsmbridge:ns:k", ecSpec())
	digest := sha256.Sum256([]byte("x"))
	var wg sync.WaitGroup
	wg.Add(1)
	var signErr error
	go func() {
		defer wg.Done()
		_, _, signErr = svc.Sign(ctx, k.Reference, "", digest[:], ecdsaScheme())
	}()
	<-entered

	b := fakebackend.New("b")
	swapped := make(chan error)
	go func() { swapped <- svc.Swap([]hostsvc.Route{{Prefix: "", Backend: "b"}}, []hostsvc.Backend{b}) }()
	// New calls already see b while the old call is still running.
	deadline := time.Now().Add(2 * time.Second)
	for {
		name, _ := svc.RouteOf("hsmbridge:ns:k")
		if name == "b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("swap did not take effect")
		}
		time.Sleep(time.Millisecond)
	}
	if a.Closed() {
		t.Fatal("old backend closed while a call was in flight")
	}
	close(release)
	if err := <-swapped; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if signErr != nil {
		t.Fatalf("in-flight call failed: %v", signErr)
	}
	if !a.Closed() || b.Closed() {
		t.Fatalf("after swap: a closed %v, b closed %v", a.Closed(), b.Closed())
	}
	if _, err := svc.GetKey(ctx, "hsmbridge:ns:k"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("key should not exist in b: %v", err)
	}
}

func TestRandomDefaultRouteAndLimits(t *testing.T) {
	a := fakebackend.New("a").Without(core.OpRandom)
	b := fakebackend.New("b")
	svc, _ := hostsvc.New([]hostsvc.Route{{Prefix: "managedhsm:", Backend: "a"}, {Prefix: "hsmbridge:", Backend: "b"}}, []hostsvc.Backend{a, b})
	out, err := svc.Random(ctx, "", 32)
	if err != nil || len(out) != 32 || b.Calls(core.OpRandom) != 1 {
		t.Fatalf("%d bytes, %v, calls %d", len(out), err, b.Calls(core.OpRandom))
	}
	if _, err := svc.Random(ctx, "", hostsvc.MaxRandom+1); !errors.Is(err, core.ErrInvalidInput) {
		t.Fatalf("oversize: %v", err)
	}
}

func TestNewRejectsBadTables(t *testing.T) {
	if _, err := hostsvc.New([]hostsvc.Route{{Prefix: "", Backend: "x"}}, []hostsvc.Backend{fakebackend.New("a")}); err == nil {
		t.Fatal("unknown backend accepted")
	}
	if _, err := hostsvc.New(nil, []hostsvc.Backend{fakebackend.New("a"), fakebackend.New("a")}); err == nil {
		t.Fatal("duplicate backend accepted")
	}
}

// perHSMLister lists one namespace at a time, as the Managed HSM backend
// does when its config names no HSMs.
type perHSMLister struct{ *fakebackend.Backend }

func (b perHSMLister) ListKeys(ctx context.Context, ns string) ([]core.KeyInfo, error) {
	if ns == "" {
		return nil, core.Errorf(core.KindInvalidInput, "which HSMs? name one")
	}
	return b.Backend.ListKeys(ctx, ns)
}

func TestListKeysWithTheHSMNamedAsksForThatHSM(t *testing.T) {
	f := fakebackend.New("mhsm")
	svc, _ := hostsvc.New([]hostsvc.Route{{Prefix: "managedhsm:", Backend: "mhsm"}}, []hostsvc.Backend{perHSMLister{f}})
	for _, r := range []string{"managedhsm:MyHSM:one", "managedhsm:OtherHSM:two"} {
		if _, err := svc.CreateKey(ctx, r, ecSpec()); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := svc.ListKeys(ctx, "managedhsm:MyHSM:")
	if err != nil {
		t.Fatalf("listing with the HSM named: %v", err)
	}
	if len(keys) != 1 || !strings.HasPrefix(keys[0].Reference, "managedhsm:MyHSM:one") {
		t.Fatalf("listed %+v, want managedhsm:MyHSM:one only", keys)
	}
}
