package hsmkey

// The OpenSSL provider's socket trust checks (adapters/openssl/provider/
// socket.c explains each), so a Go program and an OpenSSL one refuse the
// same sockets: the socket's folder and the socket itself (lstat, links
// not followed) belong to a trusted uid and only their owner may replace
// the socket; after connecting, the listening process (SO_PEERCRED) runs as
// a trusted uid. The last check is what guarantees who answers; the first
// two refuse before anything is sent and say which file is wrong.

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hsmbridge/hsmbridge/core"
)

func isTrusted(uid uint32, extra []uint32) bool {
	if uid == 0 || uid == uint32(os.Geteuid()) {
		return true
	}
	for _, u := range extra {
		if u == uid {
			return true
		}
	}
	return false
}

func checkSocketPath(path string, trusted []uint32) error {
	dir := filepath.Dir(path)
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return nil // connecting fails and says so
	}
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFDIR:
		return refused(path, fmt.Sprintf("its folder %s is not a folder (a symbolic link?)", dir))
	case !isTrusted(st.Uid, trusted):
		return refusedUID(path, "its folder "+dir, "belongs to", st.Uid, trusted)
	case st.Mode&0o022 != 0 && st.Mode&syscall.S_ISVTX == 0:
		return refused(path, fmt.Sprintf("its folder %s (mode %04o) may be written by other users and is not sticky, so another user may replace the socket", dir, st.Mode&0o7777))
	}
	if err := syscall.Lstat(path, &st); err != nil {
		return nil
	}
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFSOCK:
		return refused(path, "it is not a socket (a symbolic link?)")
	case !isTrusted(st.Uid, trusted):
		return refusedUID(path, "it", "belongs to", st.Uid, trusted)
	}
	return nil
}

func checkPeer(nc net.Conn, path string, trusted []uint32) error {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return core.Errorf(core.KindUnavailable, "hsmhost socket %s: %v", path, err)
	}
	var cred *syscall.Ucred
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		cred, gerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || gerr != nil {
		return core.Errorf(core.KindUnavailable, "hsmhost socket %s: cannot tell who listens (SO_PEERCRED): %v", path, firstErr(err, gerr))
	}
	if !isTrusted(cred.Uid, trusted) {
		return refusedUID(path, "the process listening on it", "runs as", cred.Uid, trusted)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func refused(path, why string) error {
	return core.Errorf(core.KindPermissionDenied, "refusing the hsmhost socket %s: %s", path, why)
}

// refusedUID words a refusal as the provider does: whose it is, whom we
// trust, and what to configure.
func refusedUID(path, what, verb string, uid uint32, trusted []uint32) error {
	who := describeUID(uid)
	extra := "none set"
	if len(trusted) > 0 {
		var s []string
		for _, u := range trusted {
			s = append(s, strconv.FormatUint(uint64(u), 10))
		}
		extra = strings.Join(s, ", ")
	}
	return refused(path, fmt.Sprintf("%s %s %s, not %s root, uid %d (this process) or a uid in WithHostUIDs (%s), so another user may answer in hsmhost's place. "+
		"If %s runs your hsmhost, pass hsmkey.WithHostUIDs(%d); otherwise stop that process, remove what it made and start hsmhost",
		what, verb, who, verb, os.Geteuid(), extra, who, uid))
}

func describeUID(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return fmt.Sprintf("uid %d (%s)", uid, u.Username)
	}
	return fmt.Sprintf("uid %d", uid)
}
