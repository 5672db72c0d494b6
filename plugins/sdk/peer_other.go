//go:build !linux

package sdk

import (
	"errors"
	"net"
)

// dataPathOffered: without SO_PEERCRED the plugin cannot tell who connects
// to a data socket, so it offers none and is served over gRPC.
const dataPathOffered = false

func peerUID(net.Conn) (uint32, error) {
	return 0, errors.New("peer credentials are not available on this system")
}
