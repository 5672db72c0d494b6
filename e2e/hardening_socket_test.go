package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
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

// The provider talks only to an hsmhost it can trust (issue 9, defect 2):
// the socket and its folder must belong to root, to the process's own uid
// or to a uid named in hsmbridge_host_uid, the folder must not let other
// users replace the socket, and the process answering on it (SO_PEERCRED)
// must run as one of those uids. Otherwise another local user who creates
// the default per-user socket path first receives the victim's requests
// and answers them with its own keys. These tests use real users.

// osUser is a system user made for one test and removed after it.
type osUser struct {
	name     string
	uid, gid uint32
}

func newUser(t *testing.T, prefix string) osUser {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("HSMBRIDGE_REQUIRE_E2E") != "" {
			t.Fatal("the socket-trust tests create users: run them as root")
		}
		t.Skip("the socket-trust tests create users: run them as root")
	}
	useradd := requireTool(t, "useradd")
	b := make([]byte, 4)
	rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if out, err := exec.Command(useradd, "--system", "--no-create-home", "--user-group",
		"--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
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
	return osUser{name: name, uid: uint32(uid), gid: uint32(gid)}
}

// command runs as u, in dir, with only env (plus PATH, HOME and the modules).
func (u osUser) command(ctx context.Context, dir string, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + dir, "OPENSSL_MODULES=" + modulesDir}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}}
	return cmd
}

// mkdirOwned makes dir with mode, owned by u.
func mkdirOwned(t *testing.T, dir string, mode os.FileMode, u osUser) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(u.uid), int(u.gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// hostAs runs `hsmhost serve` as u on sock with a socket anyone may open
// (a squatter wants to be reached), state in its own folder, and a key
// managedhsm:MyHSM:mykey. byDefault: sock is not passed, it is where the
// host must put it by default (given env). It returns the host's process.
func hostAs(t *testing.T, u osUser, base, sock string, byDefault bool, env ...string) *exec.Cmd {
	t.Helper()
	home := filepath.Join(base, "home-"+u.name+"-"+filepath.Base(filepath.Dir(sock)))
	mkdirOwned(t, home, 0o700, u)
	cfg := filepath.Join(home, "hsmhost.hcl")
	if err := os.WriteFile(cfg, []byte("socket_mode = \"0666\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env = append(env, "HSMBRIDGE_STATE_DIR="+filepath.Join(home, "state"))
	if !byDefault {
		env = append(env, "HSMBRIDGE_SOCKET="+sock)
	}
	cmd := u.command(context.Background(), home, env, hsmhostBin, "serve", "--config", cfg)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	waitSocket(t, sock, &log)
	c := exec.Command(hsmhostBin, "key", "create", "--socket", sock, "managedhsm:MyHSM:mykey", "--kty", "EC", "--curve", "P-256", "--ops", "sign")
	c.Env = append(os.Environ(), "HSMBRIDGE_SOCKET="+sock)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("key create on %s: %v\n%s", sock, err, out)
	}
	return cmd
}

func waitSocket(t *testing.T, sock string, log *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hsmhost on %s within 15 s; its log:\n%s", sock, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// victimSign signs as u with OPENSSL_CONF = a config with settings; it
// returns the output and whether openssl succeeded.
func victimSign(t *testing.T, u osUser, dir string, env []string, settings ...string) (string, bool) {
	t.Helper()
	cnf := filepath.Join(dir, "victim.cnf")
	if err := os.WriteFile(cnf, []byte(hostConf(t, settings...)), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "sig.bin"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := u.command(ctx, dir, append([]string{"OPENSSL_CONF=" + cnf}, env...),
		"openssl", "dgst", "-sha256", "-sign", "managedhsm:MyHSM:mykey", "-out", "sig.bin", "data.txt")
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// refused checks that the victim's attempt failed with an error that says
// whose the socket is and what to configure.
func refused(t *testing.T, what, out string, ok bool, want ...string) {
	t.Helper()
	if ok {
		t.Errorf("%s: the victim signed through it (with the other user's key):\n%s", what, out)
		return
	}
	t.Logf("%s: %s", what, out)
	for _, w := range append(want, "hsmbridge_host_uid") {
		if !strings.Contains(out, w) {
			t.Errorf("%s: refused, but the error does not say %q:\n%s", what, w, out)
			return
		}
	}
}

func TestHardeningSocketSquatting(t *testing.T) {
	requireBuild(t)
	requireTool(t, "openssl")
	victim := newUser(t, "hbvic")
	squatter := newUser(t, "hbsqt")
	base, err := os.MkdirTemp("", "hsmbridge-squat-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	vdir := filepath.Join(base, "victim")
	mkdirOwned(t, vdir, 0o700, victim)
	if err := os.WriteFile(filepath.Join(vdir, "data.txt"), []byte("the victim's data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	squat := fmt.Sprintf("uid %d", squatter.uid)
	noHost := []string{"hsmbridge_autostart = no"}

	// The default per-user path, made first by the squatter (no
	// XDG_RUNTIME_DIR: the /tmp fallback everyone can create).
	defDir := fmt.Sprintf("/tmp/hsmbridge-%d", victim.uid)
	defSock := filepath.Join(defDir, "hsmhost.sock")
	os.RemoveAll(defDir)
	t.Cleanup(func() { os.RemoveAll(defDir) })
	t.Run("default-path-squatted", func(t *testing.T) {
		mkdirOwned(t, defDir, 0o755, squatter)
		h := hostAs(t, squatter, base, defSock, false)
		out, ok := victimSign(t, victim, vdir, nil, noHost...)
		refused(t, "a squatter's folder and socket at the default path", out, ok, squat, defDir)
		// Named in hsmbridge_host_uid (by name, or by number), the same
		// host is trusted: the setting is how a host run by a service
		// user is admitted.
		for _, who := range []string{squatter.name, fmt.Sprint(squatter.uid)} {
			if out, ok := victimSign(t, victim, vdir, nil, append(noHost, "hsmbridge_host_uid = "+who)...); !ok {
				t.Errorf("hsmbridge_host_uid = %s: the host of that user was refused:\n%s", who, out)
			}
		}
		h.Process.Signal(os.Interrupt)
		h.Wait()
		os.RemoveAll(defDir)
	})

	// A folder where everyone may create files but not replace others'
	// (sticky, like /tmp): the socket itself belongs to the squatter.
	t.Run("socket-of-another-user", func(t *testing.T) {
		sticky := filepath.Join(base, "sticky")
		mkdirOwned(t, sticky, 0o777|os.ModeSticky, osUser{uid: 0, gid: 0})
		sock := filepath.Join(sticky, "hsmhost.sock")
		hostAs(t, squatter, base, sock, false)
		out, ok := victimSign(t, victim, vdir, nil, append(noHost, "hsmbridge_socket = "+sock)...)
		refused(t, "a socket of another user in a sticky folder", out, ok, squat, sock)
	})

	// Path checks pass (folder and socket handed to the victim after the
	// squatter bound it), but the process answering runs as the squatter:
	// SO_PEERCRED catches it.
	t.Run("peer-credentials", func(t *testing.T) {
		dir := filepath.Join(base, "peer")
		mkdirOwned(t, dir, 0o755, squatter)
		sock := filepath.Join(dir, "hsmhost.sock")
		hostAs(t, squatter, base, sock, false)
		if err := os.Lchown(sock, int(victim.uid), int(victim.gid)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, int(victim.uid), int(victim.gid)); err != nil {
			t.Fatal(err)
		}
		out, ok := victimSign(t, victim, vdir, nil, append(noHost, "hsmbridge_socket = "+sock)...)
		refused(t, "a socket whose answering process is another user's", out, ok, squat, "answering")
	})

	// The victim's own host at the default path works as before; a folder
	// others could write to is refused even so.
	t.Run("own-host", func(t *testing.T) {
		os.RemoveAll(defDir)
		hostAs(t, victim, base, defSock, true)
		if out, ok := victimSign(t, victim, vdir, nil, noHost...); !ok {
			t.Fatalf("the victim's own host was refused:\n%s", out)
		}
		os.Chmod(defDir, 0o770)
		out, ok := victimSign(t, victim, vdir, nil, noHost...)
		os.Chmod(defDir, 0o700)
		if ok || !strings.Contains(out, "writable by other users") || !strings.Contains(out, defDir) {
			t.Errorf("a socket folder of mode 0770 was not refused as writable by others:\n%s", out)
		}
	})

	// With XDG_RUNTIME_DIR (an existing folder of the user's), the default
	// socket is $XDG_RUNTIME_DIR/hsmbridge/hsmhost.sock, in hsmhost and in
	// the provider alike; one that does not exist is not used by either.
	t.Run("xdg-runtime-dir", func(t *testing.T) {
		xdg := filepath.Join(base, "xdg")
		mkdirOwned(t, xdg, 0o700, victim)
		env := []string{"XDG_RUNTIME_DIR=" + xdg}
		hostAs(t, victim, base, filepath.Join(xdg, "hsmbridge", "hsmhost.sock"), true, env...)
		if out, ok := victimSign(t, victim, vdir, env, noHost...); !ok {
			t.Errorf("with XDG_RUNTIME_DIR=%s, the provider did not find the host's default socket:\n%s", xdg, out)
		}
	})
	t.Run("xdg-runtime-dir-missing", func(t *testing.T) {
		os.RemoveAll(defDir)
		env := []string{"XDG_RUNTIME_DIR=" + filepath.Join(base, "gone")}
		hostAs(t, victim, base, defSock, true, env...)
		if out, ok := victimSign(t, victim, vdir, env, noHost...); !ok {
			t.Errorf("with a missing XDG_RUNTIME_DIR, the provider did not find the host at %s:\n%s", defSock, out)
		}
	})
}

// The host answers a frame it cannot parse (a reference that is not valid
// UTF-8) with an error and id 0; that error reaches the error queue with
// its cause instead of "malformed or out-of-order frame" (issue 9, 7a).
func TestHardeningSocketInvalidUTF8Reference(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:utf", "--kty", "EC", "--curve", "P-256", "--ops", "sign")
	h.write("data.txt", "data\n")
	bad := "managedhsm:MyHSM:utf\xff\xfe"
	check := func(what, out string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: succeeded:\n%s", what, out)
			return
		}
		t.Logf("%s: %s", what, out)
		if strings.Contains(out, "malformed or out-of-order") || !strings.Contains(out, "UTF-8") {
			t.Errorf("%s: the error does not give the host's cause (invalid UTF-8):\n%s", what, out)
		}
	}
	out, err := h.try("", "openssl", "pkey", "-noout", "-provider", "hsmbridge", "-provider", "default", "-in", bad)
	check("openssl pkey -in <URI with invalid UTF-8>", out, err)

	// The same reference in a key-reference file, read the way nginx reads
	// its key (PEM_read_PrivateKey: the openssl app's file store would hide
	// our message, see the README's Limitations).
	der := []byte{0x0c, byte(len("hsmbridge-keyref-v1"))}
	der = append(der, "hsmbridge-keyref-v1"...)
	der = append(der, 0x0c, byte(len(bad)))
	der = append(der, bad...)
	der = append([]byte{0x30, byte(len(der))}, der...)
	h.write("bad.pem", string(pem.EncodeToMemory(&pem.Block{Type: "HSMBRIDGE KEY REFERENCE", Bytes: der})))
	h.write("openssl.cnf", providerConf)
	out, err = h.try("", "env", "OPENSSL_CONF="+h.path("openssl.cnf"), buildSignloop(t, h), "bad.pem")
	check("PEM_read_PrivateKey of a key-reference file with invalid UTF-8", out, err)
}
