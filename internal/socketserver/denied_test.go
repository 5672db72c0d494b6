package socketserver_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc/fakebackend"
)

// refusingBackend answers every signature as an HSM does for a caller
// without the role: permission_denied.
type refusingBackend struct{ *fakebackend.Backend }

func (refusingBackend) Sign(context.Context, core.KeyID, []byte, core.SignatureScheme) ([]byte, error) {
	return nil, core.Errorf(core.KindPermissionDenied, "the HSM says: caller lacks the Crypto User role")
}

// A backend's permission_denied is logged as the backend's refusal, naming
// it, not as the access policy's (there is no policy here).
func TestBackendRefusalIsNotLoggedAsThePolicys(t *testing.T) {
	fake := refusingBackend{fakebackend.New("mhsm")}
	svc, err := hostsvc.New([]hostsvc.Route{{Prefix: "", Backend: "mhsm"}}, []hostsvc.Backend{fake})
	if err != nil {
		t.Fatal(err)
	}
	path, logs := serveWarnings(t, svc)
	if _, err := svc.CreateKey(ctx, "managedhsm:MyHSM:k", core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, path)
	digest := sha256.Sum256([]byte("x"))
	_, _, err = c.Sign(ctx, "managedhsm:MyHSM:k", "", digest[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	if !errors.Is(err, core.ErrPermissionDenied) || !strings.Contains(err.Error(), "Crypto User role") {
		t.Fatalf("kind %s: %v", core.KindOf(err), err)
	}
	const want = "request refused by the backend: permission denied"
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(logs.String(), want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if l := logs.String(); !strings.Contains(l, want) || !strings.Contains(l, "backend=mhsm") || strings.Contains(l, "access policy") {
		t.Errorf("the log does not say the backend refused:\n%s", l)
	}
}
