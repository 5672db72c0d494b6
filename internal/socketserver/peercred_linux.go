package socketserver

import (
	"bytes"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
)

// peerCred is the uid, gid and pid of the process at the other end of a
// Unix connection, as the kernel recorded them at connect (SO_PEERCRED).
func peerCred(c net.Conn) (ucred, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ucred{}, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ucred{}, false
	}
	var cred *syscall.Ucred
	if cerr := raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); cerr != nil || err != nil {
		return ucred{}, false
	}
	return ucred{uid: cred.Uid, gid: cred.Gid, pid: cred.Pid}, true
}

// callerOf completes SO_PEERCRED with what only /proc has: the
// supplementary groups (the Groups: line of /proc/<pid>/status) and the
// executable (/proc/<pid>/exe). Both are read once per connection, at
// accept. If the process is gone, or /proc/<pid> now belongs to another
// effective uid (the pid was reused, or the process changed identity), the
// caller keeps only what the kernel gave: its primary gid and no
// executable, which can only make a policy refuse more.
//
// The executable is that of the process that connected, read after it
// did: a process of the same uid could connect and then exec another
// program while a child keeps the connection. So an executable rule tells
// programs of one user apart against mistakes, not against that user.
// Reading another user's /proc/<pid>/exe needs hsmhost to run as root (or
// with CAP_SYS_PTRACE); otherwise it is unknown and executable rules do
// not match.
func callerOf(cred ucred, known bool) hostsvc.Caller {
	if !known {
		return hostsvc.Caller{}
	}
	c := hostsvc.Caller{Known: true, UID: cred.uid, GID: cred.gid, PID: cred.pid}
	if cred.pid <= 0 {
		return c
	}
	dir := "/proc/" + strconv.Itoa(int(cred.pid))
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return c
	}
	groups, euid, ok := parseStatus(status)
	if !ok || euid != cred.uid {
		return c
	}
	c.Groups = groups
	if exe, err := os.Readlink(dir + "/exe"); err == nil {
		// A binary replaced since it started (a package upgrade) reads
		// "<path> (deleted)"; it is still the program that was at path.
		c.Exe = strings.TrimSuffix(exe, " (deleted)")
	}
	return c
}

// parseStatus reads the effective uid (second field of Uid:) and the
// supplementary groups from /proc/<pid>/status.
func parseStatus(b []byte) (groups []uint32, euid uint32, ok bool) {
	var haveUID, haveGroups bool
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("Uid:")):
			f := strings.Fields(string(line[4:]))
			if len(f) < 2 {
				return nil, 0, false
			}
			n, err := strconv.ParseUint(f[1], 10, 32)
			if err != nil {
				return nil, 0, false
			}
			euid, haveUID = uint32(n), true
		case bytes.HasPrefix(line, []byte("Groups:")):
			for _, f := range strings.Fields(string(line[7:])) {
				n, err := strconv.ParseUint(f, 10, 32)
				if err != nil {
					return nil, 0, false
				}
				groups = append(groups, uint32(n))
			}
			haveGroups = true
		}
	}
	return groups, euid, haveUID && haveGroups
}
