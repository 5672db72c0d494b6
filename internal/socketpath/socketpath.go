// Package socketpath is where hsmhost's socket is when nothing names it:
// the one rule that hsmhost (internal/config), its CLI and the Go key
// package (hsmkey) share with the C front end (adapters/openssl/provider/
// socket.c, hb_default_socket_path). It depends on nothing else of
// hsmbridge, so a client can use it without the host's dependencies.
package socketpath

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Default follows the shared convention: $HSMBRIDGE_SOCKET, else
// /run/hsmbridge/hsmhost.sock for root, else $XDG_RUNTIME_DIR/hsmbridge/
// hsmhost.sock where that folder exists and is ours, else
// /tmp/hsmbridge-<uid>/hsmhost.sock.
func Default() string {
	if p := os.Getenv("HSMBRIDGE_SOCKET"); p != "" {
		return p
	}
	uid := os.Getuid()
	if uid == 0 {
		return "/run/hsmbridge/hsmhost.sock"
	}
	// Only a runtime folder as its specification describes it (absolute,
	// existing, ours); the C front end applies the same test.
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid {
				return filepath.Join(d, "hsmbridge", "hsmhost.sock")
			}
		}
	}
	// Literally /tmp, not $TMPDIR: the C front end computes the same path.
	return fmt.Sprintf("/tmp/hsmbridge-%d/hsmhost.sock", uid)
}
