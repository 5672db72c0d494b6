package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The access policy (issue 9) seen from OpenSSL: hsmhost runs as root with
// a socket open to a group; the real openssl CLI runs as users made for the
// test, with supplementary groups as a login gives them. An admitted user
// signs; a refused one gets the host's refusal on OpenSSL's error queue,
// naming the user and the rule.

// policyGroup makes a system group for the test and returns its gid.
func policyGroup(t *testing.T, name string) uint32 {
	t.Helper()
	if out, err := exec.Command(requireTool(t, "groupadd"), "--system", name).CombinedOutput(); err != nil {
		t.Fatalf("groupadd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("groupdel", name).Run() })
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(g.Gid)
	return uint32(n)
}

// policyUser makes a system user with its own group and the given
// supplementary groups.
func policyUser(t *testing.T, name string, groups ...string) osUser {
	t.Helper()
	args := []string{"--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", "--groups", strings.Join(groups, ","), name}
	if out, err := exec.Command(requireTool(t, "useradd"), args...).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
		exec.Command("groupdel", name).Run()
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return osUser{name: name, uid: uint32(uid), gid: uint32(gid)}
}

const policyHostConfig = `socket_mode  = "0660"
socket_group = %q

policy "web" {
  keys       = ["managedhsm:MyHSM:web-*"]
  users      = [%q]
  executable = %q
  operations = ["sign"]
}

policy "db" {
  keys       = ["managedhsm:MyHSM:db-*"]
  users      = ["root"]
  operations = ["decrypt"]
}

policy "public" {
  keys       = ["managedhsm:MyHSM:*"]
  users      = ["*"]
  operations = ["get_key"]
}

policy "ssl" {
  keys       = ["managedhsm:MyHSM:web-*"]
  groups     = [%q]
  operations = ["sign"]
}
`

func TestAccessPolicyOpenSSLAsOtherUsers(t *testing.T) {
	requireBuild(t)
	opensslBin := requireTool(t, "openssl")
	if os.Geteuid() != 0 {
		if os.Getenv("HSMBRIDGE_REQUIRE_E2E") != "" {
			t.Fatal("the access-policy test creates users: run it as root")
		}
		t.Skip("the access-policy test creates users: run it as root")
	}
	opensslReal, err := filepath.EvalSymlinks(opensslBin)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	rand.Read(b)
	s := hex.EncodeToString(b)
	sockGroup, sslGroup := "hbpsk"+s, "hbpss"+s
	sockGID, sslGID := policyGroup(t, sockGroup), policyGroup(t, sslGroup)
	web := policyUser(t, "hbpw"+s, sockGroup)
	member := policyUser(t, "hbpm"+s, sockGroup, sslGroup)

	h := startHost(t, fmt.Sprintf(policyHostConfig, sockGroup, web.name, opensslReal, sslGroup))
	cfg := h.path("hsmhost.hcl")
	h.hsmhost("key", "create", "managedhsm:MyHSM:web-1", "--kty", "EC", "--curve", "P-256", "--ops", "sign,verify")
	h.hsmhost("key", "create", "managedhsm:MyHSM:db-1", "--kty", "RSA", "--size", "2048", "--ops", "decrypt,encrypt")
	h.write("web.pub", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:web-1"))
	h.write("db.pub", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:db-1"))
	h.write("data.txt", "signed under a policy\n")
	h.write("openssl.cnf", providerConf)
	h.shell("openssl pkeyutl -encrypt -pubin -inkey db.pub -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in data.txt -out db.ct")
	for _, f := range []string{"web.pub", "db.pub", "data.txt", "openssl.cnf", "db.ct"} {
		os.Chmod(h.path(f), 0o644)
	}

	// as runs openssl as u with the given groups in a folder of u's own.
	as := func(u osUser, groups []uint32, args ...string) (string, bool) {
		t.Helper()
		work := filepath.Join(h.dir, "work-"+u.name)
		if _, err := os.Stat(work); err != nil {
			mkdirOwned(t, work, 0o755, u)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, opensslBin, args...)
		cmd.Dir = work
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + work, "OPENSSL_MODULES=" + h.modulesDir(),
			"OPENSSL_CONF=" + h.path("openssl.cnf"), "HSMBRIDGE_SOCKET=" + h.socket}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: groups}}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err == nil
	}
	sign := []string{"dgst", "-sha256", "-sign", "managedhsm:MyHSM:web-1", "-out", "sig.bin", h.path("data.txt")}
	verify := func(u osUser) {
		t.Helper()
		h.shell("openssl dgst -sha256 -verify web.pub -signature " + filepath.Join(h.dir, "work-"+u.name, "sig.bin") + " data.txt")
	}
	who := func(u osUser) string { return fmt.Sprintf("by uid %d (%s), pid ", u.uid, u.name) }

	// The admitted user signs with web-*.
	if out, ok := as(web, []uint32{sockGID}, sign...); !ok {
		t.Fatalf("%s could not sign with web-1:\n%s", web.name, out)
	}
	verify(web)

	// ... and is refused decryption with db-* (it may read the public key:
	// policy "public"), with the host's words on OpenSSL's error queue.
	out, ok := as(web, []uint32{sockGID}, "pkeyutl", "-decrypt", "-inkey", "managedhsm:MyHSM:db-1",
		"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-in", h.path("db.ct"), "-out", "plain.txt")
	if ok {
		t.Fatalf("%s decrypted with db-1:\n%s", web.name, out)
	}
	for _, w := range []string{"permission denied",
		"managedhsm:MyHSM:db-1: permission denied: decrypt " + who(web),
		", " + opensslReal + "; ",
		`policy "db" (` + cfg + `:11) grants decrypt on this key only to users root (0)`} {
		if !strings.Contains(out, w) {
			t.Errorf("the refusal does not say %q:\n%s", w, out)
		}
	}

	// A user admitted by a supplementary group; without that group, refused.
	if out, ok := as(member, []uint32{sockGID, sslGID}, sign...); !ok {
		t.Fatalf("%s (in %s) could not sign with web-1:\n%s", member.name, sslGroup, out)
	}
	verify(member)
	out, ok = as(member, []uint32{sockGID}, sign...)
	if ok {
		t.Fatalf("%s signed without the group %s:\n%s", member.name, sslGroup, out)
	}
	for _, w := range []string{"managedhsm:MyHSM:web-1: permission denied: sign " + who(member),
		`policy "web" (` + cfg + `:4) grants sign on this key only to users ` + web.name,
		`; policy "ssl" (` + cfg + `:23) grants sign on this key only to groups ` + sslGroup} {
		if !strings.Contains(out, w) {
			t.Errorf("the refusal does not say %q:\n%s", w, out)
		}
	}
	if !strings.Contains(h.log.String(), "request refused by the access policy") {
		t.Errorf("hsmhost did not log the refusals:\n%s", h.log)
	}
}
