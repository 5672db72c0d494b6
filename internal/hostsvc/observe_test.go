package hostsvc_test

import (
	"crypto/sha256"
	"sync"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc/fakebackend"
)

type recorder struct {
	mu  sync.Mutex
	ops []hostsvc.KeyOp
}

func (r *recorder) KeyOperation(op hostsvc.KeyOp) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
}

func (r *recorder) take() []hostsvc.KeyOp {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.ops
	r.ops = nil
	return out
}

// Every key operation is reported once, when it ends, with the canonical
// reference, the backend, the algorithm, the result and the size; refusals
// before routing too, without a backend.
func TestKeyOperationsAreReported(t *testing.T) {
	sim := fakebackend.New("sim")
	access, err := hostsvc.NewAccess(hostsvc.AccessConfig{Rules: []hostsvc.Rule{
		{Name: "all", Keys: []string{"managedhsm:MyHSM:*", "hsmbridge:*"}, AnyUser: true, Operations: hostsvc.UseOperations},
	}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := hostsvc.New([]hostsvc.Route{{Prefix: "managedhsm:", Backend: "sim"}}, []hostsvc.Backend{sim}, hostsvc.WithAccess(access))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	svc.Observe(rec)
	caller := &hostsvc.Caller{Known: true, UID: 1000, PID: 77, Exe: "/usr/bin/openssl"}
	cctx := hostsvc.WithCaller(ctx, caller)

	if _, err := svc.CreateKey(ctx, "akv:vault=MyHSM,name=ec", ecSpec()); err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("payload"))
	sig, _, err := svc.Sign(cctx, "akv:vault=MyHSM,name=ec", "v1", digest[:], ecdsaScheme())
	if err != nil {
		t.Fatal(err)
	}
	svc.Sign(cctx, "managedhsm:MyHSM:missing", "", digest[:], ecdsaScheme())
	svc.Sign(cctx, "managedhsm:Other:ec", "v1", digest[:], ecdsaScheme()) // no policy covers it
	svc.Sign(cctx, "hsmbridge:ns:k", "", digest[:], ecdsaScheme())        // no route
	svc.Sign(cctx, "not a reference\n", "", digest[:], ecdsaScheme())
	svc.Decrypt(cctx, "managedhsm:MyHSM:ec", "", []byte{1}, core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256})
	svc.GetKey(cctx, "managedhsm:MyHSM:ec") // not a private-key operation: not reported
	if _, err := svc.DeleteKey(ctx, "managedhsm:MyHSM:ec"); err != nil {
		t.Fatal(err)
	}

	got := rec.take()
	want := []hostsvc.KeyOp{
		{Reference: "managedhsm:MyHSM:ec", Backend: "sim", Op: core.OpCreateKey, Algorithm: "EC"},
		{Reference: "managedhsm:MyHSM:ec?version=v1", Backend: "sim", Op: core.OpSign, Algorithm: "ecdsa-sha256", Bytes: len(sig), Caller: caller},
		{Reference: "managedhsm:MyHSM:missing", Backend: "sim", Op: core.OpSign, Algorithm: "ecdsa-sha256", Kind: core.KindNotFound, Caller: caller},
		{Reference: "managedhsm:Other:ec?version=v1", Op: core.OpSign, Algorithm: "ecdsa-sha256", Kind: core.KindPermissionDenied, Caller: caller},
		{Reference: "hsmbridge:ns:k", Op: core.OpSign, Algorithm: "ecdsa-sha256", Kind: core.KindNoRoute, Caller: caller},
		{Reference: "not a reference\n", Op: core.OpSign, Algorithm: "ecdsa-sha256", Kind: core.KindInvalidReference, Caller: caller},
		{Reference: "managedhsm:MyHSM:ec", Backend: "sim", Op: core.OpDecrypt, Algorithm: "rsa-oaep-sha256", Kind: core.KindInvalidInput, Caller: caller},
		{Reference: "managedhsm:MyHSM:ec", Backend: "sim", Op: core.OpDeleteKey},
	}
	if len(got) != len(want) {
		t.Fatalf("%d reports, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g := got[i]
		if g.Latency <= 0 {
			t.Errorf("report %d has no latency: %+v", i, g)
		}
		g.Latency = 0
		if g != want[i] {
			t.Errorf("report %d:\n got %+v\nwant %+v", i, g, want[i])
		}
	}
}

// A reference that does not parse is reported cut short: the report is
// for logs and metrics, not a copy of whatever a client sends.
func TestReportedReferenceIsBounded(t *testing.T) {
	svc, _ := hostsvc.New([]hostsvc.Route{{Prefix: "", Backend: "a"}}, []hostsvc.Backend{fakebackend.New("a")})
	rec := &recorder{}
	svc.Observe(rec)
	long := make([]byte, 5000)
	for i := range long {
		long[i] = 'x'
	}
	svc.Sign(ctx, string(long), "", make([]byte, 32), ecdsaScheme())
	got := rec.take()
	if len(got) != 1 || len(got[0].Reference) > 300 {
		t.Fatalf("reported %d bytes of reference", len(got[0].Reference))
	}
}

type discard struct{}

func (discard) KeyOperation(hostsvc.KeyOp) {}

// Reporting adds no allocation to a signature.
func TestReportingAllocatesNothing(t *testing.T) {
	sim := fakebackend.New("sim")
	svc, _ := hostsvc.New([]hostsvc.Route{{Prefix: "", Backend: "sim"}}, []hostsvc.Backend{sim})
	if _, err := svc.CreateKey(ctx, "managedhsm:MyHSM:ec", ecSpec()); err != nil {
		t.Fatal(err)
	}
	cctx := hostsvc.WithCaller(ctx, &hostsvc.Caller{Known: true, UID: 1})
	digest := sha256.Sum256([]byte("payload"))
	sign := func() {
		if _, _, err := svc.Sign(cctx, "managedhsm:MyHSM:ec", "v1", digest[:], ecdsaScheme()); err != nil {
			t.Fatal(err)
		}
	}
	without := testing.AllocsPerRun(200, sign)
	svc.Observe(discard{})
	with := testing.AllocsPerRun(200, sign)
	if with > without {
		t.Fatalf("a signature allocates %v times with an observer, %v without", with, without)
	}
}
