package socketserver

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseStatusGroupsAndEffectiveUID(t *testing.T) {
	status := "Name:\tnginx\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1001\t33\t33\t33\nGid:\t1001\t1001\t1001\t1001\nFDSize:\t64\nGroups:\t4 24 103 \nNStgid:\t77\n"
	groups, euid, ok := parseStatus([]byte(status))
	if !ok || euid != 33 || !slices.Equal(groups, []uint32{4, 24, 103}) {
		t.Fatalf("groups %v, euid %d, ok %v", groups, euid, ok)
	}
	if g, _, ok := parseStatus([]byte("Uid:\t0\t0\t0\t0\nGroups:\t\n")); !ok || len(g) != 0 {
		t.Fatalf("no supplementary groups: %v %v", g, ok)
	}
	for _, bad := range []string{"Uid:\t0\t0\t0\t0\n", "Groups:\t1\n", "Uid:\tx\tx\nGroups:\n", "Uid:\t0\t0\nGroups:\t1 two\n"} {
		if _, _, ok := parseStatus([]byte(bad)); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The caller of a real connection: the kernel's uid, gid and pid, the
// groups and the executable of this very process.
func TestCallerOfARealConnection(t *testing.T) {
	dir, err := os.MkdirTemp("", "pc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("unix", filepath.Join(dir, "s"))
		if err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cred, known := peerCred(c)
	if !known || int(cred.uid) != os.Geteuid() || int(cred.gid) != os.Getegid() || int(cred.pid) != os.Getpid() {
		t.Fatalf("cred %+v known %v", cred, known)
	}
	caller := callerOf(cred, known)
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	if caller.Exe != exe {
		t.Errorf("exe %q, want %q", caller.Exe, exe)
	}
	want, _ := os.Getgroups()
	var got []int
	for _, g := range caller.Groups {
		got = append(got, int(g))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("groups %v, want %v", got, want)
	}
	// A pid that now belongs to another uid keeps only the kernel's word.
	cred.uid++
	if c := callerOf(cred, true); c.Groups != nil || c.Exe != "" || !c.Known {
		t.Errorf("a mismatched /proc entry was used: %+v", c)
	}
	if c := callerOf(ucred{}, false); c.Known {
		t.Error("unknown credentials made a known caller")
	}
}
