package hostsvc

import (
	"context"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
)

// Every operation that uses or administers a key is reported, when it ends,
// to the service's Observer (the audit trail and the Prometheus metrics,
// internal/telemetry): refused ones too, whether by the access policy, for
// want of a route or by the backend. The report is a KeyOp passed by value
// and holds only strings the service already has: the canonical reference
// computed for routing, the backend's name, and an algorithm name taken
// from fixed tables (never built per request), so that reporting allocates
// nothing and its labels come from a bounded set whatever a client sends.
// It carries sizes and never data: no digest, no plaintext, no key.

// KeyOp is one finished key operation.
type KeyOp struct {
	// Reference is the canonical reference, pinned to a version when the
	// request named one; for a reference that does not parse, the
	// request's text, cut to maxReportedRef bytes.
	Reference string
	Backend   string         // "" when refused before routing
	Op        core.Operation // sign, decrypt, wrap_key, unwrap_key, agree, derive, mac, unmask, ...
	Algorithm string         // e.g. "ecdsa-sha256", "rsa-oaep-sha256", "A256KW", "hkdf-sha256"; "" when none applies
	Kind      core.ErrorKind // "" on success
	Bytes     int            // size of what the backend returned (signature, plaintext, wrapped key, blob)
	Latency   time.Duration  // from the request reaching the service to its answer
	Caller    *Caller        // nil when not known (calls from inside hsmhost)
}

// Observer is told of every finished key operation. It is called on the
// request's goroutine, so it must be quick and safe for concurrent use.
type Observer interface {
	KeyOperation(KeyOp)
}

// Observe sets the observer of key operations. It must be called before
// the service serves its first request; nil (the default) reports nothing.
func (s *Service) Observe(o Observer) { s.observer = o }

// maxReportedRef bounds a reference that did not parse in a report.
const maxReportedRef = 256

// report tells the observer, if any, how an operation ended. c is the
// routed call, or nil when the request was refused before routing; ref and
// version are then the request's own.
func (s *Service) report(ctx context.Context, start uint64, c *call, ref, version string, op core.Operation, alg string, n int, err error) {
	o := s.observer
	if o == nil {
		return
	}
	ev := KeyOp{Op: op, Algorithm: alg, Bytes: n, Latency: time.Duration(nanotime() - start), Caller: CallerFrom(ctx)}
	if c != nil {
		ev.Reference, ev.Backend = c.canonical, c.backend.Name()
	} else {
		ev.Reference = reportedRef(ref, version)
	}
	if err != nil {
		ev.Kind = core.KindOf(err)
		ev.Bytes = 0
	}
	o.KeyOperation(ev)
}

// reportedRef is the canonical form of a reference refused before routing
// (only error paths pay for parsing it again), or its text, cut short.
func reportedRef(ref, version string) string {
	if r, err := core.ParseKeyRef(ref); err == nil {
		if version != "" && r.Version == "" {
			r = r.WithVersion(version)
		}
		return r.String()
	}
	if len(ref) > maxReportedRef {
		return ref[:maxReportedRef] + "…"
	}
	return ref
}

// Algorithm names, computed once: core's Name methods build their string
// at every call.
var (
	signatureNames  [4][6]string // [core.SignaturePadding][core.Hash]
	encryptionNames [3][6]string // [core.EncryptionPadding][core.Hash]
	macNames        [6]string    // [core.Hash]
	deriveNames     = map[string]*[6]string{"hkdf": {}, "kbkdf": {}}
)

func init() {
	for h := core.SHA1; h <= core.SHA512; h++ {
		for p := core.PaddingPKCS1v15; p <= core.PaddingECDSA; p++ {
			signatureNames[p][h] = core.SignatureScheme{Padding: p, Hash: h}.Name()
		}
		encryptionNames[core.EncryptionPKCS1v15][h] = core.EncryptionScheme{Padding: core.EncryptionPKCS1v15}.Name()
		encryptionNames[core.EncryptionOAEP][h] = core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: h}.Name()
		macNames[h] = "hmac-" + h.String()
		for kdf, names := range deriveNames {
			names[h] = kdf + "-" + h.String()
		}
	}
}

// The lookups below answer "" (no algorithm) for what the tables lack, so
// a label never holds a client's free text.

func signatureName(s core.SignatureScheme) string {
	if s.Padding < 0 || int(s.Padding) >= len(signatureNames) || s.Hash < 0 || int(s.Hash) >= len(signatureNames[0]) {
		return ""
	}
	return signatureNames[s.Padding][s.Hash]
}

func encryptionName(s core.EncryptionScheme) string {
	if s.Padding < 0 || int(s.Padding) >= len(encryptionNames) || s.OAEPHash < 0 || int(s.OAEPHash) >= len(encryptionNames[0]) {
		return ""
	}
	if s.Padding == core.EncryptionPKCS1v15 {
		return encryptionNames[s.Padding][core.SHA1] // the same for every hash
	}
	return encryptionNames[s.Padding][s.OAEPHash]
}

func macName(h core.Hash) string {
	if h < 0 || int(h) >= len(macNames) {
		return ""
	}
	return macNames[h]
}

func deriveName(p core.DeriveParams) string {
	kdf := p.KDF
	if kdf == "" {
		kdf = "hkdf"
	}
	names, ok := deriveNames[kdf]
	if !ok || p.Hash < 0 || int(p.Hash) >= len(names) {
		return ""
	}
	return names[p.Hash]
}

func keyTypeName(t core.KeyType) string {
	switch t {
	case core.KeyTypeRSA, core.KeyTypeEC, core.KeyTypeOct, core.KeyTypeSecret, core.KeyTypeHMAC:
		return string(t)
	}
	return ""
}

func wrapName(a core.WrapAlgorithm) string {
	known, err := core.ParseWrapAlgorithm(string(a))
	if err != nil {
		return ""
	}
	return string(known)
}
