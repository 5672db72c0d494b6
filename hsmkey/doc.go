// Package hsmkey lets Go programs use private keys that never leave an HSM,
// through hsmhost, with no OpenSSL and no sidecar. [Open] names a key by
// its reference and returns a [Key]: a [crypto.Signer] whose private half
// stays in the backend, so it goes wherever Go takes one:
//
//	key, err := hsmkey.Open(ctx, "managedhsm:MyHSM:mykey")
//	...
//	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}       // TLS 1.2 and 1.3, server or client
//	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, key)         // a CA key in the HSM
//	csr, err := x509.CreateCertificateRequest(rand.Reader, csrTmpl, key)
//
// RSA keys also implement [crypto.Decrypter] (see [Decrypter]): OAEP and
// PKCS #1 v1.5, including TLS 1.2's RSA key exchange. EC keys (P-256, P-384,
// P-521) sign ECDSA; RSA keys sign PKCS #1 v1.5 and PSS. P-256K keys cannot
// be opened: Go's crypto/ecdsa has no secp256k1.
//
// # Which host
//
// The package speaks hsmhost's socket protocol (api/hostapi/host.proto,
// the same generated schema the OpenSSL provider and the hsmhost CLI use)
// and finds the socket as they do: $HSMBRIDGE_SOCKET, else
// /run/hsmbridge/hsmhost.sock for root, else
// $XDG_RUNTIME_DIR/hsmbridge/hsmhost.sock when that folder exists and is the
// user's, else /tmp/hsmbridge-<uid>/hsmhost.sock. [WithSocket] names
// another. It does not start hsmhost: run `hsmhost serve` (or the service)
// first; an error says so when nothing listens.
//
// Whoever answers on the socket sees every digest the program signs and
// decides the signatures it gets back, so on Linux the socket is used only
// when it passes the OpenSSL provider's trust checks: its folder (not a
// symbolic link) belongs to a trusted uid and no one else may write to it
// (unless it is sticky, as /tmp), the socket belongs to a trusted uid, and
// the process listening on it (SO_PEERCRED) runs as one. The trusted uids
// are root, the program's effective uid and those given with
// [WithHostUIDs] (the provider's hsmbridge_host_uid), for a host that runs
// as a service user. Nothing is sent to a refused socket.
//
// # Concurrency and reconnection
//
// A [Client] holds one connection to hsmhost and pipelines over it: every
// request gets its own id, any number are in flight at once (hsmhost handles
// up to 64 per connection concurrently and stops reading beyond that, which
// holds the writers back), and one reader goroutine hands each answer to
// the goroutine waiting for its id, in whatever order they come. Keys and
// clients are safe for concurrent use. A connection is made on first use,
// starts with a Hello (protocol version 1), and is replaced when it breaks:
// after hsmhost restarts, the next request connects anew, and a request that
// fails because the connection broke under it (the host went away with it in
// flight, or the write failed) is sent once more on a fresh connection. Every
// request this package sends (GetKey, Sign, Decrypt) is idempotent, so the
// retry cannot do anything twice that matters. A request fails rather than
// waits when no host listens: a TLS server should not hang its handshakes
// on a host that is down.
//
// [Key.Sign] and [crypto.Decrypter]'s Decrypt take no context, so each
// request is bounded by the client's timeout ([WithTimeout]; default
// $HSMBRIDGE_TIMEOUT_MS, else 30 s, as the provider). [Key.SignContext] and
// [Decrypter.DecryptContext] also honour a context.
//
// # Versions
//
// Open resolves an unversioned reference to the key's current version once
// and every later operation on the Key names that version, as the provider
// does: a key rotated in the backend cannot make a running server sign with
// a key that no longer matches its certificate. Open the reference again to
// pick up a new version.
//
// # Errors
//
// Errors are *[core.Error] values: errors.Is(err, core.ErrNotFound) (or
// ErrOperationNotAllowed, ErrUnavailable, ...) works on them. An error the
// host answered carries its message verbatim, which names the canonical
// reference, the backend and the cause, e.g.
//
//	managedhsm:MyHSM:nokey: key not found in backend "simulator"
//
// Errors of the package itself (a bad option, an unreachable or refused
// socket, a timeout) name the reference and the socket.
//
// # Signing options
//
// Sign takes a digest and follows crypto/rsa and crypto/ecdsa: opts.HashFunc()
// names the digest's hash (SHA-1, SHA-224, SHA-256, SHA-384 or SHA-512;
// required, and the digest must have its length); an *[rsa.PSSOptions]
// selects PSS with MGF1 over the same hash, with [rsa.PSSSaltLengthAuto] the
// largest salt the key allows (the hash's length in FIPS 140-3 mode, as
// crypto/rsa) and [rsa.PSSSaltLengthEqualsHash] the hash's length; any other
// opts on an RSA key select PKCS #1 v1.5. ECDSA signatures are ASN.1 DER, as
// [ecdsa.SignASN1] makes them. The rand arguments are not used: the backend
// draws its own randomness.
package hsmkey
