package hostsvc_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc/fakebackend"
)

const (
	wwwData = 33
	sslCert = 103
	alice   = 1001
	admins  = 2000
)

// The example: nginx's workers sign with web-* but do not decrypt
// with db-*; a DBA group uses db-*.
func examplePolicy(t *testing.T) *hostsvc.Access {
	t.Helper()
	a, err := hostsvc.NewAccess(hostsvc.AccessConfig{
		Source: "/etc/hsmbridge/hsmhost.hcl",
		Rules: []hostsvc.Rule{
			{Name: "web", Where: "/etc/hsmbridge/hsmhost.hcl:10", Keys: []string{"managedhsm:MyHSM:web-*"},
				Users: []hostsvc.ID{{Num: wwwData, Name: "www-data"}}, Groups: []hostsvc.ID{{Num: sslCert, Name: "ssl-cert"}},
				Executable: "/usr/sbin/nginx", Operations: []core.Operation{core.OpSign}},
			{Name: "db", Where: "/etc/hsmbridge/hsmhost.hcl:20", Keys: []string{"managedhsm:MyHSM:db-*", "hsmbridge:*:db-*-key"},
				Groups: []hostsvc.ID{{Num: admins, Name: "dba"}}, Operations: []core.Operation{core.OpDecrypt, core.OpSign, core.OpDeleteKey}},
		},
		AdminUsers: []hostsvc.ID{{Num: 1500, Name: "keyadmin"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func nginx(uid, gid uint32, groups ...uint32) *hostsvc.Caller {
	return &hostsvc.Caller{Known: true, UID: uid, GID: gid, PID: 4242, Groups: groups, Exe: "/usr/sbin/nginx"}
}

func TestAccessMatching(t *testing.T) {
	a := examplePolicy(t)
	other := &hostsvc.Caller{Known: true, UID: alice, GID: alice, PID: 7, Exe: "/usr/bin/openssl"}
	cases := []struct {
		name  string
		c     *hostsvc.Caller
		op    core.Operation
		key   string
		allow bool
	}{
		{"user signs with web-*", nginx(wwwData, wwwData), core.OpSign, "managedhsm:MyHSM:web-1", true},
		{"user may not decrypt with web-*", nginx(wwwData, wwwData), core.OpDecrypt, "managedhsm:MyHSM:web-1", false},
		{"user may not sign with db-*", nginx(wwwData, wwwData), core.OpSign, "managedhsm:MyHSM:db-1", false},
		{"get_key comes with sign", nginx(wwwData, wwwData), core.OpGetKey, "managedhsm:MyHSM:web-1", true},
		{"no get_key where nothing is granted", nginx(wwwData, wwwData), core.OpGetKey, "managedhsm:MyHSM:db-1", false},
		{"primary group", nginx(alice, sslCert), core.OpSign, "managedhsm:MyHSM:web-x", true},
		{"supplementary group", nginx(alice, alice, 5, sslCert), core.OpSign, "managedhsm:MyHSM:web-x", true},
		{"neither user nor group", nginx(alice, alice, 5, 6), core.OpSign, "managedhsm:MyHSM:web-x", false},
		{"right user, other executable", &hostsvc.Caller{Known: true, UID: wwwData, GID: wwwData, Exe: "/usr/bin/openssl"}, core.OpSign, "managedhsm:MyHSM:web-1", false},
		{"right user, executable unknown", &hostsvc.Caller{Known: true, UID: wwwData, GID: wwwData}, core.OpSign, "managedhsm:MyHSM:web-1", false},
		{"prefix must match from the start", nginx(wwwData, wwwData), core.OpSign, "managedhsm:Other:web-1", false},
		{"glob in the middle", &hostsvc.Caller{Known: true, UID: alice, GID: admins}, core.OpDecrypt, "hsmbridge:ns:db-7-key", true},
		{"glob needs its suffix", &hostsvc.Caller{Known: true, UID: alice, GID: admins}, core.OpDecrypt, "hsmbridge:ns:db-7-keys", false},
		{"group grants an admin op on its keys", &hostsvc.Caller{Known: true, UID: alice, GID: alice, Groups: []uint32{admins}}, core.OpDeleteKey, "managedhsm:MyHSM:db-1", true},
		{"but not create", &hostsvc.Caller{Known: true, UID: alice, GID: alice, Groups: []uint32{admins}}, core.OpCreateKey, "managedhsm:MyHSM:db-1", false},
		{"root is not special for key use", &hostsvc.Caller{Known: true, UID: 0, GID: 0}, core.OpSign, "managedhsm:MyHSM:web-1", false},
		{"root administers", &hostsvc.Caller{Known: true, UID: 0, GID: 0}, core.OpCreateKey, "managedhsm:MyHSM:web-1", true},
		{"admins read public parts", &hostsvc.Caller{Known: true, UID: 1500, GID: 1500}, core.OpGetKey, "managedhsm:MyHSM:web-1", true},
		{"admin_users administer", &hostsvc.Caller{Known: true, UID: 1500, GID: 1500}, core.OpImportKey, "hsmbridge:x:y", true},
		{"admins do not use keys", &hostsvc.Caller{Known: true, UID: 1500, GID: 1500}, core.OpSign, "managedhsm:MyHSM:web-1", false},
		{"others do not administer", other, core.OpCreateKey, "hsmbridge:x:y", false},
		{"unknown credentials", &hostsvc.Caller{}, core.OpSign, "managedhsm:MyHSM:web-1", false},
		{"in-process calls are not checked", nil, core.OpDecrypt, "managedhsm:MyHSM:db-1", true},
		{"random is not governed", other, core.OpRandom, "managedhsm:MyHSM:db-1", true},
	}
	for _, c := range cases {
		if got := a.Allowed(c.c, c.op, c.key); got != c.allow {
			t.Errorf("%s: Allowed = %v", c.name, got)
		}
	}
}

func TestNoPolicyKeepsEveryKeyOpenButAdministrationIsRestricted(t *testing.T) {
	for name, a := range map[string]*hostsvc.Access{"nil": nil, "empty": mustAccess(t, hostsvc.AccessConfig{})} {
		other := &hostsvc.Caller{Known: true, UID: alice, GID: alice}
		for _, op := range hostsvc.UseOperations {
			if !a.Allowed(other, op, "managedhsm:MyHSM:db-1") {
				t.Errorf("%s: %s refused without policy", name, op)
			}
		}
		if !a.Allowed(&hostsvc.Caller{}, core.OpSign, "managedhsm:MyHSM:db-1") {
			t.Errorf("%s: a caller without credentials is refused without policy", name)
		}
		for _, op := range hostsvc.AdminOperations {
			if a.Allowed(other, op, "managedhsm:MyHSM:db-1") {
				t.Errorf("%s: %s allowed to uid %d by default", name, op, alice)
			}
			if !a.Allowed(&hostsvc.Caller{Known: true}, op, "managedhsm:MyHSM:db-1") {
				t.Errorf("%s: %s refused to root", name, op)
			}
			if !a.Allowed(&hostsvc.Caller{Known: true, UID: uint32(os.Geteuid())}, op, "x") {
				t.Errorf("%s: %s refused to hsmhost's own user", name, op)
			}
		}
	}
}

func mustAccess(t *testing.T, cfg hostsvc.AccessConfig) *hostsvc.Access {
	t.Helper()
	a, err := hostsvc.NewAccess(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestNewAccessRefusesIncompleteRules(t *testing.T) {
	for name, r := range map[string]hostsvc.Rule{
		"no keys":      {Name: "r", AnyUser: true, Operations: []core.Operation{core.OpSign}},
		"nobody":       {Name: "r", Keys: []string{"*"}, Operations: []core.Operation{core.OpSign}},
		"no operation": {Name: "r", Keys: []string{"*"}, AnyUser: true},
		"random":       {Name: "r", Keys: []string{"*"}, AnyUser: true, Operations: []core.Operation{core.OpRandom}},
	} {
		if _, err := hostsvc.NewAccess(hostsvc.AccessConfig{Rules: []hostsvc.Rule{r}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The check on the signing path allocates nothing.
func TestAccessCheckDoesNotAllocate(t *testing.T) {
	a := examplePolicy(t)
	c := nginx(alice, alice, 1, 2, 3, sslCert)
	if n := testing.AllocsPerRun(1000, func() {
		if !a.Allowed(c, core.OpSign, "managedhsm:MyHSM:web-frontend") {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per check", n)
	}
}

func BenchmarkAccessAllowed(b *testing.B) {
	a, _ := hostsvc.NewAccess(hostsvc.AccessConfig{Rules: []hostsvc.Rule{
		{Name: "a", Keys: []string{"managedhsm:A:*"}, AnyUser: true, Operations: []core.Operation{core.OpSign}},
		{Name: "b", Keys: []string{"managedhsm:B:*"}, AnyUser: true, Operations: []core.Operation{core.OpSign}},
		{Name: "web", Keys: []string{"managedhsm:MyHSM:web-*"}, Groups: []hostsvc.ID{{Num: sslCert}}, Executable: "/usr/sbin/nginx", Operations: []core.Operation{core.OpSign}},
	}})
	c := nginx(wwwData, wwwData, sslCert)
	b.ReportAllocs()
	for b.Loop() {
		a.Allowed(c, core.OpSign, "managedhsm:MyHSM:web-frontend")
	}
}

// Through the service: the refusal is permission_denied and names the
// caller, the operation and the nearest rule with what did not match.
func TestRefusalNamesTheCallerAndTheRule(t *testing.T) {
	back := fakebackend.New("sim")
	svc, err := hostsvc.New([]hostsvc.Route{{Prefix: "", Backend: "sim"}}, []hostsvc.Backend{back}, hostsvc.WithAccess(examplePolicy(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	for _, k := range []string{"managedhsm:MyHSM:web-1", "managedhsm:MyHSM:db-1"} {
		if _, err := svc.CreateKey(ctx, k, ecSpec()); err != nil { // in-process: not checked
			t.Fatal(err)
		}
	}
	digest := sha256.Sum256([]byte("x"))
	www := hostsvc.WithCaller(ctx, nginx(wwwData, wwwData))
	if _, _, err := svc.Sign(www, "akv:vault=MyHSM,name=web-1", "", digest[:], ecdsaScheme()); err != nil {
		t.Fatalf("admitted signature refused: %v", err)
	}
	// Pinned versions are matched by the key's name.
	k, err := svc.GetKey(www, "managedhsm:MyHSM:web-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Sign(www, k.Reference, "", digest[:], ecdsaScheme()); err != nil {
		t.Fatalf("pinned reference refused: %v", err)
	}

	_, err = svc.Decrypt(www, "managedhsm:MyHSM:db-1", "", []byte("x"), core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256})
	if !errors.Is(err, core.ErrPermissionDenied) {
		t.Fatalf("kind %s: %v", core.KindOf(err), err)
	}
	for _, want := range []string{"managedhsm:MyHSM:db-1: permission denied: decrypt by uid 33 (www-data), pid 4242, /usr/sbin/nginx",
		`; policy "db" (/etc/hsmbridge/hsmhost.hcl:20) grants decrypt on this key only to groups dba (2000)`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message\n%s\nlacks\n%s", err, want)
		}
	}
	_, err = svc.GetKey(www, "managedhsm:Other:k")
	if want := `managedhsm:Other:k: permission denied: get_key by uid 33 (www-data), pid 4242, /usr/sbin/nginx; no policy covers this key (nearest: policy "web" (/etc/hsmbridge/hsmhost.hcl:10), for keys managedhsm:MyHSM:web-*)`; err == nil || err.Error() != want {
		t.Errorf("uncovered key: %v\nwant %s", err, want)
	}
	if back.Calls(core.OpDecrypt) != 0 {
		t.Fatal("the backend was asked")
	}

	_, err = svc.Decrypt(www, "managedhsm:MyHSM:web-1", "", []byte("x"), core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256})
	if want := `no policy grants decrypt on this key; policy "web" (/etc/hsmbridge/hsmhost.hcl:10) admits this caller for it only for get_key, sign`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("operation refusal %v lacks %s", err, want)
	}
	openssl := hostsvc.WithCaller(ctx, &hostsvc.Caller{Known: true, UID: wwwData, GID: wwwData, PID: 9, Exe: "/usr/bin/openssl"})
	_, _, err = svc.Sign(openssl, "managedhsm:MyHSM:web-1", "", digest[:], ecdsaScheme())
	if want := `policy "web" (/etc/hsmbridge/hsmhost.hcl:10) grants sign on this key to this user only running /usr/sbin/nginx (the caller runs /usr/bin/openssl)`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("executable refusal %v lacks %s", err, want)
	}
	stranger := hostsvc.WithCaller(ctx, &hostsvc.Caller{Known: true, UID: alice, GID: alice, PID: 10})
	_, _, err = svc.Sign(stranger, "managedhsm:MyHSM:web-1", "", digest[:], ecdsaScheme())
	if want := `policy "web" (/etc/hsmbridge/hsmhost.hcl:10) grants sign on this key only to users www-data (33) and groups ssl-cert (103) running /usr/sbin/nginx`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("caller refusal %v lacks %s", err, want)
	}
	_, err = svc.CreateKey(stranger, "managedhsm:MyHSM:web-2", ecSpec())
	if want := "managedhsm:MyHSM:web-2: permission denied: create_key by uid 1001"; !errors.Is(err, core.ErrPermissionDenied) || !strings.Contains(err.Error(), want) ||
		!strings.Contains(err.Error(), "key administration is for root") {
		t.Errorf("admin refusal %v lacks %s", err, want)
	}
}

func TestListShowsOnlyKeysTheCallerMayRead(t *testing.T) {
	back := fakebackend.New("sim")
	svc, _ := hostsvc.New([]hostsvc.Route{{Prefix: "", Backend: "sim"}}, []hostsvc.Backend{back}, hostsvc.WithAccess(examplePolicy(t)))
	defer svc.Close()
	for _, k := range []string{"managedhsm:MyHSM:web-1", "managedhsm:MyHSM:db-1"} {
		svc.CreateKey(ctx, k, ecSpec())
	}
	names := func(c *hostsvc.Caller) string {
		keys, err := svc.ListKeys(hostsvc.WithCaller(ctx, c), "managedhsm:")
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, k := range keys {
			s = append(s, k.Reference[:strings.Index(k.Reference, "?")])
		}
		return strings.Join(s, " ")
	}
	if got := names(nginx(wwwData, wwwData)); got != "managedhsm:MyHSM:web-1" {
		t.Errorf("www-data sees %q", got)
	}
	if got := names(&hostsvc.Caller{Known: true}); got != "managedhsm:MyHSM:db-1 managedhsm:MyHSM:web-1" {
		t.Errorf("root sees %q", got)
	}
	if got := names(&hostsvc.Caller{Known: true, UID: alice, GID: alice}); got != "" {
		t.Errorf("a stranger sees %q", got)
	}
}

// A swap replaces the policy with the routes: a request sees the old one or
// the new one, and the new one applies at once.
func TestSwapReplacesThePolicy(t *testing.T) {
	back := fakebackend.New("sim")
	svc, _ := hostsvc.New([]hostsvc.Route{{Prefix: "", Backend: "sim"}}, []hostsvc.Backend{back})
	defer svc.Close()
	svc.CreateKey(ctx, "managedhsm:MyHSM:db-1", ecSpec())
	www := hostsvc.WithCaller(context.Background(), nginx(wwwData, wwwData))
	if _, err := svc.GetKey(www, "managedhsm:MyHSM:db-1"); err != nil {
		t.Fatalf("no policy: %v", err)
	}
	if err := svc.Swap([]hostsvc.Route{{Prefix: "", Backend: "sim"}}, []hostsvc.Backend{back}, hostsvc.WithAccess(examplePolicy(t))); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.GetKey(www, "managedhsm:MyHSM:db-1"); !errors.Is(err, core.ErrPermissionDenied) {
		t.Fatalf("after the swap: %v", err)
	}
	svc.Swap([]hostsvc.Route{{Prefix: "", Backend: "sim"}}, []hostsvc.Backend{back})
	if _, err := svc.GetKey(www, "managedhsm:MyHSM:db-1"); err != nil {
		t.Fatalf("policy removed: %v", err)
	}
}

// Through the service, a signature under a policy costs no allocation more
// than one without.
func TestPolicyAddsNoAllocationToSigning(t *testing.T) {
	back := fakebackend.New("sim")
	routes, backends := []hostsvc.Route{{Prefix: "", Backend: "sim"}}, []hostsvc.Backend{back}
	open, _ := hostsvc.New(routes, backends)
	guarded, _ := hostsvc.New(routes, backends, hostsvc.WithAccess(examplePolicy(t)))
	if _, err := open.CreateKey(ctx, "managedhsm:MyHSM:web-1", ecSpec()); err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	www := hostsvc.WithCaller(ctx, nginx(wwwData, wwwData))
	allocs := func(svc *hostsvc.Service, c context.Context) float64 {
		return testing.AllocsPerRun(200, func() {
			if _, _, err := svc.Sign(c, "managedhsm:MyHSM:web-1", "", digest[:], ecdsaScheme()); err != nil {
				t.Fatal(err)
			}
		})
	}
	if a, b := allocs(open, ctx), allocs(guarded, www); b > a {
		t.Fatalf("%v allocations per signature under the policy, %v without", b, a)
	}
}
