package socketserver_test

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc/fakebackend"
	"github.com/hsmbridge/hsmbridge/internal/socketserver"
)

// The server makes every request in the name of the connection's peer:
// a policy that admits another uid refuses this process, the refusal
// crosses as permission_denied naming this process, and it is logged once
// per uid per interval.
func TestRequestsAreMadeInThePeersName(t *testing.T) {
	me := uint32(os.Geteuid())
	access, err := hostsvc.NewAccess(hostsvc.AccessConfig{Source: "policy.hcl", Rules: []hostsvc.Rule{
		{Name: "mine", Where: "policy.hcl:1", Keys: []string{"managedhsm:MyHSM:mine-*"}, Users: []hostsvc.ID{{Num: me}}, Operations: []core.Operation{core.OpSign}},
		{Name: "others", Where: "policy.hcl:7", Keys: []string{"managedhsm:MyHSM:theirs-*"}, Users: []hostsvc.ID{{Num: me + 1}}, Operations: []core.Operation{core.OpSign}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	fake := fakebackend.New("simulator")
	svc, err := hostsvc.New([]hostsvc.Route{{Prefix: "", Backend: "simulator"}}, []hostsvc.Backend{fake}, hostsvc.WithAccess(access))
	if err != nil {
		t.Fatal(err)
	}
	path, logs := serveWarnings(t, svc)

	for _, k := range []string{"managedhsm:MyHSM:mine-1", "managedhsm:MyHSM:theirs-1"} {
		if _, err := svc.CreateKey(ctx, k, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}}); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, path)
	digest := sha256.Sum256([]byte("x"))
	scheme := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
	if _, _, err := c.Sign(ctx, "managedhsm:MyHSM:mine-1", "", digest[:], scheme); err != nil {
		t.Fatalf("admitted: %v", err)
	}
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	for range 3 {
		_, _, err = c.Sign(ctx, "managedhsm:MyHSM:theirs-1", "", digest[:], scheme)
		if !errors.Is(err, core.ErrPermissionDenied) {
			t.Fatalf("kind %s: %v", core.KindOf(err), err)
		}
	}
	for _, want := range []string{"managedhsm:MyHSM:theirs-1: permission denied: sign by uid " + strconv.Itoa(int(me)),
		", pid " + strconv.Itoa(os.Getpid()) + ", " + exe + ";",
		`policy "others" (policy.hcl:7) grants sign on this key only to users ` + strconv.Itoa(int(me+1))} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal\n%s\nlacks\n%s", err, want)
		}
	}
	if fake.Calls(core.OpSign) != 1 {
		t.Errorf("backend signed %d times", fake.Calls(core.OpSign))
	}
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(logs.String(), "request refused by the access policy") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := strings.Count(logs.String(), "request refused by the access policy"); n != 1 {
		t.Errorf("%d log lines for 3 refusals within the interval:\n%s", n, logs)
	}
}

// serveWarnings serves svc on a fresh socket, logging at warn level into the
// returned buffer, until the test ends; it returns the socket's path.
func serveWarnings(t *testing.T, svc *hostsvc.Service) (string, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	dir, err := os.MkdirTemp("", "hsmpol")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "run", "hsmhost.sock")
	sock, err := socketserver.Prepare(socketserver.SocketConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := sock.Listen()
	if err != nil {
		t.Fatal(err)
	}
	srv := &socketserver.Server{Service: svc, HostVersion: "test", Log: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Warn})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(ctx); sock.Remove(); svc.Close() })
	return path, logs
}
