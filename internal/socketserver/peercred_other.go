//go:build !linux

package socketserver

import (
	"net"

	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
)

// peerCred needs SO_PEERCRED; elsewhere connections are not counted per
// uid, and a caller is unknown to the access policy.
func peerCred(net.Conn) (ucred, bool) { return ucred{}, false }

func callerOf(ucred, bool) hostsvc.Caller { return hostsvc.Caller{} }
