// Package azihsmdevice is the hsmbridge backend for the Azure Integrated HSM,
// the HSM on the machine's own PCIe bus, used through its native C API
// (package devapi is that API seen from Go; package native loads the real
// library with dlopen; the plugin in plugins/azihsm-device serves this
// backend to hsmhost).
//
// The device keeps no key store: every key leaves it only as a masked blob,
// which the application keeps in a file (openssl genpkey … -pkeyopt
// azihsm.masked_key:key.bin) and hands back to use the key. The blobs are
// the device's own: this backend neither reads nor makes them, so a blob
// written by the upstream provider on the same partition loads here too.
//
// # Sessions
//
// The backend opens the partition once and one device session for all
// persistent keys (the main session). An application session (one
// application process, as hsmhost counts them) that makes session keys
// (azihsm.session:true) gets a device session of its own; its keys are made
// with the SESSION property inside it, so the device itself refuses them
// once EndSession closes it.
//
// # Open keys
//
// An opened blob becomes a pair of device handles (or one, for secrets)
// kept in memory under a name derived from the blob (the first 16 bytes of
// its SHA-256, hex), so opening the same file twice costs one unmask. The
// API needs the key's kind to unmask; the backend tries the kinds in turn
// and the device answers INVALID_KEY for a wrong one.
//
// # Faults
//
// The device can abort I/O (live migration), ask for a session to be
// negotiated again, or not be ready. After such a status the backend closes
// the session, opens a new one, unmasks again every key it had open in it
// from the blobs it kept, and retries the operation once; if the fault
// persists the operation fails with an error that says so. Session keys of
// an application session cannot be reloaded into a new device session (the
// device binds their blobs to the old one): they are reported lost.
//
// # Concurrency
//
// The native library is thread-safe, so operations run concurrently under
// a read lock; opening the device, recovery after a fault and session
// changes take the write lock. A generation counter lets many operations
// that hit the same fault recover once.
package azihsmdevice
