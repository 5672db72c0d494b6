package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
)

// fakeAccounts makes names resolve the same on every machine.
func fakeAccounts(t *testing.T) {
	users := map[string]uint32{"root": 0, "www-data": 33, "alice": 1001}
	groups := map[string]uint32{"root": 0, "www-data": 33, "ssl-cert": 103, "hsm-admins": 2000}
	oldU, oldG := lookupUser, lookupGroup
	lookupUser = func(n string) (uint32, error) {
		if id, ok := users[n]; ok {
			return id, nil
		}
		return 0, errors.New("unknown user")
	}
	lookupGroup = func(n string) (uint32, error) {
		if id, ok := groups[n]; ok {
			return id, nil
		}
		return 0, errors.New("unknown group")
	}
	t.Cleanup(func() { lookupUser, lookupGroup = oldU, oldG })
}

const policyGood = `
admin_users  = ["alice", 1500]
admin_groups = ["hsm-admins"]

policy "web" {
  keys       = ["managedhsm:MyHSM:web-*", "hsmbridge:lab:tls"]
  users      = ["www-data"]
  groups     = ["ssl-cert", 4000]
  executable = "/usr/sbin/nginx"
  operations = ["sign"]
}

policy "everyone-reads" {
  keys       = ["*"]
  users      = ["*"]
  operations = ["get_key"]
}

policy "db-admin" {
  keys       = ["managedhsm:MyHSM:db-*"]
  groups     = ["hsm-admins"]
  operations = ["*", "create_key", "delete_key"]
}
`

func TestParsePolicies(t *testing.T) {
	fakeAccounts(t)
	c, err := Parse([]byte(policyGood), "p.hcl")
	if err != nil {
		t.Fatal(err)
	}
	a := c.Access
	if a.Source != "p.hcl" || len(a.Rules) != 3 {
		t.Fatalf("access %+v", a)
	}
	if !slices.Equal(a.AdminUsers, []hostsvc.ID{{Num: 1001, Name: "alice"}, {Num: 1500, Name: "1500"}}) ||
		!slices.Equal(a.AdminGroups, []hostsvc.ID{{Num: 2000, Name: "hsm-admins"}}) {
		t.Fatalf("admins %+v %+v", a.AdminUsers, a.AdminGroups)
	}
	web := a.Rules[0]
	if web.Name != "web" || web.Where != "p.hcl:5" || !slices.Equal(web.Keys, []string{"managedhsm:MyHSM:web-*", "hsmbridge:lab:tls"}) ||
		!slices.Equal(web.Users, []hostsvc.ID{{Num: 33, Name: "www-data"}}) ||
		!slices.Equal(web.Groups, []hostsvc.ID{{Num: 103, Name: "ssl-cert"}, {Num: 4000, Name: "4000"}}) ||
		web.Executable == "" || web.AnyUser || !slices.Equal(web.Operations, []core.Operation{core.OpSign}) {
		t.Fatalf("web %+v", web)
	}
	if r := a.Rules[1]; !r.AnyUser || len(r.Users) != 0 || !slices.Equal(r.Operations, []core.Operation{core.OpGetKey}) {
		t.Fatalf("everyone-reads %+v", r)
	}
	db := a.Rules[2]
	want := append(slices.Clone(hostsvc.UseOperations), core.OpCreateKey, core.OpDeleteKey)
	if !slices.Equal(db.Operations, want) {
		t.Fatalf("db-admin operations %v, want %v", db.Operations, want)
	}
	if _, err := hostsvc.NewAccess(a); err != nil {
		t.Fatalf("the parsed policy does not compile: %v", err)
	}
	// Policies alone keep the embedded backend, as socket settings do.
	if len(c.Backends) != 1 || c.Backends[0].Plugin != "builtin:simulator" {
		t.Fatalf("backends %+v", c.Backends)
	}
}

func TestNoPolicyBlocksMeansNoRules(t *testing.T) {
	c, err := Parse([]byte(good), "good.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Access.Rules) != 0 || len(c.Access.AdminUsers) != 0 {
		t.Fatalf("%+v", c.Access)
	}
	if d := Default(); len(d.Access.Rules) != 0 || d.Access.Source != EmbeddedSource {
		t.Fatalf("default %+v", d.Access)
	}
}

// The path /proc/<pid>/exe reports is the resolved one, so the file's
// executable is resolved when it exists.
func TestPolicyExecutableIsResolved(t *testing.T) {
	fakeAccounts(t)
	dir := t.TempDir()
	real := filepath.Join(dir, "nginx-1.24")
	os.WriteFile(real, []byte("#!/bin/sh\n"), 0o755)
	link := filepath.Join(dir, "nginx")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	src := `policy "p" {
  keys = ["*"]
  users = ["root"]
  executable = "` + link + `"
  operations = ["sign"]
}`
	c, err := Parse([]byte(src), "x.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := filepath.EvalSymlinks(real); c.Access.Rules[0].Executable != got {
		t.Fatalf("executable %q, want %q", c.Access.Rules[0].Executable, got)
	}
}

func TestPolicyErrorsCarryFileAndLine(t *testing.T) {
	fakeAccounts(t)
	cases := []struct {
		name, src string
		want      []string
	}{
		{"missing keys and operations", `
policy "p" {
  users = ["root"]
}`, []string{`x.hcl:2: Missing required argument`, `"keys"`, `"operations"`}},
		{"nobody admitted", `
policy "p" {
  keys = ["*"]
  operations = ["sign"]
}`, []string{`x.hcl:2: policy "p" admits nobody: give users, groups or both`}},
		{"unknown user and group", `
policy "p" {
  keys = ["*"]
  users = ["mallory"]
  groups = ["wheel"]
  operations = ["sign"]
}`, []string{`x.hcl:4: no user "mallory" on this system`, `x.hcl:5: no group "wheel" on this system`}},
		{"unknown operation", `
policy "p" {
  keys = ["*"]
  users = ["root"]
  operations = ["sign", "encrypt"]
}`, []string{`x.hcl:5: policy "p": unknown operation "encrypt" (get_key, sign, decrypt`}},
		{"pattern of no scheme", `
policy "p" {
  keys = ["MyHSM:web-*"]
  users = ["root"]
  operations = ["sign"]
}`, []string{`x.hcl:3: policy "p": key pattern "MyHSM:web-*": unknown scheme "MyHSM"`}},
		{"akv pattern", `
policy "p" {
  keys = ["akv:vault=MyHSM,name=*"]
  users = ["root"]
  operations = ["sign"]
}`, []string{`x.hcl:3: policy "p": key pattern "akv:vault=MyHSM,name=*": akv: references`}},
		{"versioned pattern", `
policy "p" {
  keys = ["managedhsm:MyHSM:k?version=1"]
  users = ["root"]
  operations = ["sign"]
}`, []string{`x.hcl:3: policy "p": key pattern "managedhsm:MyHSM:k?version=1" names a version`}},
		{"empty lists", `
policy "p" {
  keys = []
  users = []
  groups = []
  operations = []
}`, []string{`x.hcl:3: policy "p": keys is empty`, `x.hcl:4: policy "p": users is empty`, `x.hcl:5: policy "p": groups is empty`, `x.hcl:6: policy "p": operations is empty`}},
		{"empty pattern", `
policy "p" {
  keys = [""]
  users = ["root"]
  operations = ["sign"]
}`, []string{`x.hcl:3: policy "p": an empty key pattern`}},
		{"relative executable", `
policy "p" {
  keys = ["*"]
  users = ["root"]
  executable = "nginx"
  operations = ["sign"]
}`, []string{`x.hcl:5: policy "p": executable "nginx" must be an absolute path`}},
		{"not lists", `
policy "p" {
  keys = "managedhsm:MyHSM:*"
  users = { a = 1 }
  operations = ["sign"]
}`, []string{`x.hcl:3: keys must be a list of key patterns`, `x.hcl:4: users must be a list of user names or uids`}},
		{"duplicate and bad names", `
policy "p" {
  keys = ["*"]
  users = ["root"]
  operations = ["sign"]
}
policy "p" {
  keys = ["*"]
  users = ["root"]
  operations = ["sign"]
}
policy "9 lives" {
  keys = ["*"]
  users = ["root"]
  operations = ["sign"]
}`, []string{`x.hcl:7: policy "p" is defined twice (first at x.hcl:2)`, `x.hcl:12: policy name "9 lives" must start with a letter`}},
		{"unknown attribute", `
policy "p" {
  keys = ["*"]
  users = ["root"]
  operations = ["sign"]
  uids = [0]
}`, []string{`x.hcl:6: Unsupported argument`}},
		{"no label", `
policy {
  keys = ["*"]
}`, []string{`x.hcl:2: Missing name for policy`}},
		{"unknown admins", `
admin_users = ["mallory"]
admin_groups = ["wheel", ""]
`, []string{`x.hcl:2: no user "mallory" on this system`, `x.hcl:3: no group "wheel" on this system`, `x.hcl:3: an empty group name`}},
		{"admins not a list", `admin_users = "alice"`, []string{`x.hcl:1: admin_users must be a list of user names or numbers`}},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.src), "x.hcl")
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n%s\ndoes not contain\n%s", c.name, err, w)
			}
		}
	}
}

// A name is resolved with the system's account database when no test
// replaces it: root is uid 0 everywhere.
func TestPolicyNamesResolveOnThisSystem(t *testing.T) {
	c, err := Parse([]byte(`policy "p" {
  keys = ["*"]
  users = ["root"]
  groups = ["root"]
  operations = ["sign"]
}`), "x.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Access.Rules[0]; r.Users[0].Num != 0 || r.Groups[0].Num != 0 {
		t.Fatalf("%+v", r)
	}
}
