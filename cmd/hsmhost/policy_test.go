package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The access policy with real users (issue 9): hsmhost runs as root with a
// socket everyone may open; clients run as users made for the test, with
// their supplementary groups set as a login would set them, so hsmhost
// sees them through SO_PEERCRED and /proc like any other process.

type testUser struct {
	name     string
	uid, gid uint32
}

func requireRootWith(t *testing.T, tools ...string) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("the access-policy tests create users: run them as root on Linux")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
}

func suffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newGroup makes a system group for the test and removes it after.
func newGroup(t *testing.T, name string) {
	t.Helper()
	if out, err := exec.Command("groupadd", "--system", name).CombinedOutput(); err != nil {
		t.Fatalf("groupadd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("groupdel", name).Run() })
}

// newTestUser makes a system user with its own group, in the given
// supplementary groups, and removes both after the test.
func newTestUser(t *testing.T, name string, groups ...string) testUser {
	t.Helper()
	args := []string{"--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin"}
	if len(groups) > 0 {
		args = append(args, "--groups", strings.Join(groups, ","))
	}
	if out, err := exec.Command("useradd", append(args, name)...).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
		exec.Command("groupdel", name).Run() // gone already where USERGROUPS_ENAB
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return testUser{name: name, uid: uint32(uid), gid: uint32(gid)}
}

// run runs a program as u with the given supplementary groups (nil: the
// user's own, as initgroups would give them).
func (u testUser) run(t *testing.T, dir, sock string, groups []uint32, prog string, args ...string) (string, int) {
	t.Helper()
	if groups == nil {
		gs, err := (&user.User{Username: u.name, Gid: strconv.Itoa(int(u.gid))}).GroupIds()
		if err != nil {
			t.Fatal(err)
		}
		groups = []uint32{}
		for _, g := range gs {
			n, _ := strconv.Atoi(g)
			groups = append(groups, uint32(n))
		}
	}
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "HSMBRIDGE_SOCKET=" + sock, "HSMBRIDGE_CONFIG=" + filepath.Join(dir, "none.hcl")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: groups}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// buildPolicyClient builds the test client where every user can run it.
func buildPolicyClient(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "policyclient")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "./testdata/policyclient")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the policy client: %v\n%s", err, out)
	}
	return bin
}

const policyConfig = `socket_mode = "0666"
%s
backend "sim" {
  plugin   = "builtin:simulator"
  settings = { state_dir = %q }
}
route {
  prefix  = ""
  backend = "sim"
}

policy "web" {
  keys       = ["managedhsm:MyHSM:web-*"]
  users      = [%q]
  executable = %q
  operations = ["sign"]
}

policy "db" {
  keys       = ["managedhsm:MyHSM:db-*"]
  users      = ["root"]
  operations = ["decrypt", "sign"]
}

policy "ssl" {
  keys       = ["managedhsm:MyHSM:web-*"]
  groups     = [%q]
  operations = ["sign"]
}
`

func TestPolicyWithRealUsers(t *testing.T) {
	requireRootWith(t, "useradd", "userdel", "groupadd", "groupdel")
	s := suffix()
	sslGroup := "hbssl" + s
	newGroup(t, sslGroup)
	web := newTestUser(t, "hbweb"+s)
	member := newTestUser(t, "hbmem"+s, sslGroup)
	other := newTestUser(t, "hbadm"+s)

	// Everything the users touch is readable by them; the socket's folder
	// is root's, and the socket is open to all: only the policy decides.
	dir := shortTempDir(t)
	for _, d := range []string{dir, filepath.Dir(hsmhostBin)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	client := buildPolicyClient(t, dir)
	cfgPath := filepath.Join(dir, "hsmhost.hcl")
	writeCfg := func(admins string) {
		src := fmt.Sprintf(policyConfig, admins, filepath.Join(dir, "state"), web.name, client, sslGroup)
		if err := os.WriteFile(cfgPath, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("")
	h := startHost(t, dir, "--config", cfgPath)
	// Root administers keys by default.
	h.mustCLI("key", "create", "managedhsm:MyHSM:web-1", "--kty", "EC", "--curve", "P-256", "--ops", "sign,verify")
	h.mustCLI("key", "create", "managedhsm:MyHSM:db-1", "--kty", "RSA", "--size", "2048", "--ops", "decrypt,encrypt")

	expect := func(u testUser, groups []uint32, wantOK bool, wants []string, prog string, args ...string) {
		t.Helper()
		out, code := u.run(t, dir, h.socket, groups, prog, args...)
		if (code == 0) != wantOK {
			t.Errorf("%s %s as %s: exit %d\n%s", filepath.Base(prog), strings.Join(args, " "), u.name, code, out)
			return
		}
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s %s as %s:\n%s\nlacks\n%s", filepath.Base(prog), strings.Join(args, " "), u.name, out, w)
			}
		}
	}
	who := func(u testUser) string { return fmt.Sprintf("by uid %d (%s), pid ", u.uid, u.name) }

	// The admitted user signs with web-* and may not decrypt with db-*; the
	// refusal names the user, the program and the rule.
	expect(web, nil, true, []string{"ok"}, client, h.socket, "sign", "managedhsm:MyHSM:web-1")
	expect(web, nil, false, []string{"permission_denied: managedhsm:MyHSM:db-1: permission denied: decrypt " + who(web),
		", " + client + "; ", `policy "db" (` + cfgPath + `:19) grants decrypt on this key only to users root (0)`},
		client, h.socket, "decrypt", "managedhsm:MyHSM:db-1")
	// The same user through another program is not the rule's executable.
	expect(web, nil, false, []string{"permission denied: get_key " + who(web),
		`policy "web" (` + cfgPath + `:12) grants get_key on this key to this user only running ` + client + ` (the caller runs ` + hsmhostBin + `)`},
		hsmhostBin, "key", "show", "managedhsm:MyHSM:web-1")

	// A user admitted by a supplementary group, and the same user without it.
	expect(member, nil, true, []string{"ok"}, client, h.socket, "sign", "managedhsm:MyHSM:web-1")
	expect(member, nil, true, []string{"managedhsm:MyHSM:web-1?version="}, hsmhostBin, "key", "show", "managedhsm:MyHSM:web-1")
	expect(member, []uint32{}, false, []string{"permission denied: sign " + who(member), `policy "web" (` + cfgPath + `:12) grants sign on this key only to users ` + web.name, `; policy "ssl" (` + cfgPath + `:25) grants sign on this key only to groups ` + sslGroup},
		client, h.socket, "sign", "managedhsm:MyHSM:web-1")

	// Key administration is root's by default, and an admin_users entry's
	// after a reload.
	expect(other, nil, false, []string{"hsmhost: managedhsm:MyHSM:new-1: permission denied: create_key " + who(other),
		"key administration is for root, hsmhost's own user (uid 0) and admin_users or admin_groups in " + cfgPath},
		hsmhostBin, "key", "create", "managedhsm:MyHSM:new-1", "--kty", "EC")
	writeCfg(fmt.Sprintf("admin_users = [%q]", other.name))
	reloads := strings.Count(h.log.String(), "configuration reloaded")
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); strings.Count(h.log.String(), "configuration reloaded") == reloads; {
		if time.Now().After(deadline) {
			t.Fatalf("no reload:\n%s", h.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	expect(other, nil, true, []string{"managedhsm:MyHSM:new-1?version="}, hsmhostBin, "key", "create", "managedhsm:MyHSM:new-1", "--kty", "EC")
	expect(other, nil, true, nil, hsmhostBin, "key", "delete", "managedhsm:MyHSM:new-1")
	// An administrator does not use keys without a rule.
	expect(other, nil, false, []string{"permission denied: sign " + who(other)}, client, h.socket, "sign", "managedhsm:MyHSM:web-1")
	// The reload kept the other rules.
	expect(web, nil, true, []string{"ok"}, client, h.socket, "sign", "managedhsm:MyHSM:web-1")

	if !strings.Contains(h.log.String(), "request refused by the access policy") {
		t.Errorf("refusals not logged:\n%s", h.log.String())
	}
}
