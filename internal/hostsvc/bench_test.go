package hostsvc

import (
	"context"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc/fakebackend"
)

// BenchmarkBegin is what hsmhost spends on a keyed request before the
// backend is called: parsing, routing, policy and declaration checks.
func BenchmarkBegin(b *testing.B) {
	svc, err := New([]Route{{Prefix: "managedhsm:MyHSM:", Backend: "a"}}, []Backend{fakebackend.New("a")})
	if err != nil {
		b.Fatal(err)
	}
	ctx := WithCaller(context.Background(), &Caller{UID: 1000})
	b.ReportAllocs()
	for b.Loop() {
		c, err := svc.begin(ctx, "managedhsm:MyHSM:bench-p256", "", core.OpSign)
		if err != nil {
			b.Fatal(err)
		}
		c.done()
	}
}

type nopObserver struct{}

func (nopObserver) KeyOperation(KeyOp) {}

// BenchmarkReport is what reporting a finished operation costs the service
// itself (the observers' own costs are in internal/telemetry).
func BenchmarkReport(b *testing.B) {
	svc, err := New([]Route{{Prefix: "managedhsm:MyHSM:", Backend: "a"}}, []Backend{fakebackend.New("a")})
	if err != nil {
		b.Fatal(err)
	}
	svc.Observe(nopObserver{})
	ctx := WithCaller(context.Background(), &Caller{UID: 1000})
	c, err := svc.begin(ctx, "managedhsm:MyHSM:bench-p256", "", core.OpSign)
	if err != nil {
		b.Fatal(err)
	}
	defer c.done()
	scheme := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
	b.ReportAllocs()
	for b.Loop() {
		svc.report(ctx, nanotime(), c, "", "", core.OpSign, signatureName(scheme), 71, nil)
	}
}
