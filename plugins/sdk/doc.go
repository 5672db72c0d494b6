// Package sdk is everything a backend plugin needs, and the host's side of
// the same boundary.
//
// A backend is a Go type that implements ports.KeyLookup plus whichever other
// ports interfaces (Signer, Decrypter, ...) it supports. Its main is one line:
//
//	func main() { sdk.Serve(mybackend.New()) }
//
// Serve speaks hashicorp/go-plugin's gRPC protocol (backendpb/backend.proto)
// with the handshake below. The operations a plugin declares are derived
// from the interfaces its type implements (ports.Describe), so a plugin can
// never declare what it cannot do; an RPC for an undeclared operation is
// answered with an "unsupported" error without reaching the backend. The
// host asks for the description when the plugin starts and again after
// Configure, so the schemes a ports.SchemeLister returns may follow its
// settings (a PKCS#11 token's mechanism list, say). A backend that also
// implements ports.StatsReporter has its counters exported in hsmhost's
// metrics (hsmbridge_backend_events_total).
//
// Errors cross the boundary as gRPC statuses carrying a BackendError detail
// with the core.ErrorKind, so errors.Is(err, core.ErrNotFound) works on the
// host exactly as it did inside the plugin.
package sdk

import "github.com/hashicorp/go-plugin"

// Handshake must match between host and plugin. ProtocolVersion is bumped
// whenever backend.proto changes incompatibly.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "HSMBRIDGE_BACKEND_PLUGIN",
	MagicCookieValue: "9b1e6f0c2d7a4e83a5c0f4d2b86e1a37",
}

// PluginName is the single plugin a backend binary serves.
const PluginName = "backend"
