// Package ports holds the interfaces between hsmbridge's core and the things
// that hold keys. There is one small interface per operation, in the manner
// of crypto.Signer: a backend implements the ones it supports and nothing
// else, and Operations tells which by type assertion, so a backend cannot
// declare an operation it does not implement.
//
// Every method returns *core.Error values (or wraps them) so that the kind of
// a failure survives every boundary; an error without a kind is internal.
package ports

import (
	"context"

	"github.com/hsmbridge/hsmbridge/core"
)

// KeyLookup is the one interface every backend implements.
type KeyLookup interface {
	// GetKey returns the key's metadata and public key. An empty
	// id.Version resolves to the latest version, and the result names it.
	GetKey(ctx context.Context, id core.KeyID) (core.KeyInfo, error)
}

// KeyLister lists keys (their latest versions).
type KeyLister interface {
	// ListKeys lists every key in namespace, or in every namespace if empty.
	ListKeys(ctx context.Context, namespace string) ([]core.KeyInfo, error)
}

// KeyGenerator creates keys inside the backend. Creating an existing name
// adds a new version, as Key Vault does.
type KeyGenerator interface {
	CreateKey(ctx context.Context, id core.KeyID, spec core.KeySpec) (core.KeyInfo, error)
}

// KeyImporter brings an existing private key into the backend.
type KeyImporter interface {
	ImportKey(ctx context.Context, id core.KeyID, pkcs8 []byte, usages []core.KeyUsage) (core.KeyInfo, error)
}

// KeyDeleter deletes a key and all its versions.
type KeyDeleter interface {
	DeleteKey(ctx context.Context, id core.KeyID) (versions int, err error)
}

// Signer signs a digest computed by the caller. ECDSA signatures are DER
// ECDSA-Sig-Value, as crypto.Signer returns them.
type Signer interface {
	Sign(ctx context.Context, id core.KeyID, digest []byte, scheme core.SignatureScheme) ([]byte, error)
}

// MessageSigner signs a whole message, hashing it inside the backend, for
// schemes a backend cannot apply to a digest (the Integrated HSM's RSA
// PKCS#1 v1.5 signatures). hsmhost calls it only with a message that hashes
// to the digest the provider computed, and signs digests with Signer
// otherwise.
type MessageSigner interface {
	SignMessage(ctx context.Context, id core.KeyID, message []byte, scheme core.SignatureScheme) ([]byte, error)
}

// Decrypter decrypts with a private key.
type Decrypter interface {
	Decrypt(ctx context.Context, id core.KeyID, ciphertext []byte, scheme core.EncryptionScheme) ([]byte, error)
}

// KeyWrapper wraps key material with a key held in the backend (AES key
// wrap with a symmetric key, or RSA encryption) and unwraps it again.
type KeyWrapper interface {
	WrapKey(ctx context.Context, id core.KeyID, key []byte, alg core.WrapAlgorithm) ([]byte, error)
	UnwrapKey(ctx context.Context, id core.KeyID, wrapped []byte, alg core.WrapAlgorithm) ([]byte, error)
}

// Agreer performs key agreement (ECDH); the shared secret never leaves the
// backend in clear and comes back masked.
type Agreer interface {
	Agree(ctx context.Context, id core.KeyID, peerPublicKeyDER []byte) (core.MaskedKey, error)
}

// Deriver derives a key from masked input keying material, masked again.
type Deriver interface {
	Derive(ctx context.Context, params core.DeriveParams) (core.MaskedKey, error)
}

// MACer computes an HMAC with a key held by the backend; hash must be the
// key's own kind.
type MACer interface {
	MAC(ctx context.Context, id core.KeyID, hash core.Hash, data []byte) ([]byte, error)
}

// Masker seals a key for storage outside the backend and opens it again.
type Masker interface {
	Mask(ctx context.Context, id core.KeyID) (core.MaskedKey, error)
	Unmask(ctx context.Context, blob core.MaskedKey) (core.KeyInfo, error)
}

// MaskedKeyMaker makes keys that leave the backend only as masked blobs,
// as the Integrated HSM does: generated inside it, or imported wrapped.
// session, when not empty, binds the key to that session: it is unusable
// once EndSession(session) has been called.
type MaskedKeyMaker interface {
	GenerateMasked(ctx context.Context, spec core.KeySpec, session string) (core.MaskedKey, core.KeyInfo, error)
	// ImportWrappingKey is the RSA public key (DER SubjectPublicKeyInfo)
	// that ImportMasked's input is wrapped under with CKM_RSA_AES_KEY_WRAP.
	ImportWrappingKey(ctx context.Context) ([]byte, error)
	// ImportMasked unwraps and masks a private key. spec carries the
	// usages and what the caller says the key is: a Type, Bits or Curve
	// that is set must match the unwrapped key, or the import is refused.
	ImportMasked(ctx context.Context, wrapped []byte, spec core.KeySpec, session string) (core.MaskedKey, core.KeyInfo, error)
}

// SessionEnder is told when an application's session ends (its last
// connection to hsmhost closed), so that its session keys stop working.
type SessionEnder interface {
	EndSession(ctx context.Context, session string) error
}

// RandomSource draws random bytes from the backend.
type RandomSource interface {
	Random(ctx context.Context, n int) ([]byte, error)
}

// Diagnoser checks a backend's own prerequisites for a namespace (an HSM):
// credentials, token, reachability. hsmhost doctor shows the results and
// then exercises the keys itself.
type Diagnoser interface {
	Diagnose(ctx context.Context, namespace string) ([]core.Check, error)
}

// StatsReporter is optional: counts a backend keeps of its own work (a
// cloud HSM's retries, throttled answers, token requests), read whenever
// hsmhost's metrics are scraped, so it must be quick.
type StatsReporter interface {
	Stats() []core.Counter
}

// Configurer receives the backend's settings from the host's config before
// any other call.
type Configurer interface {
	Configure(ctx context.Context, settings map[string]string) error
}

// SchemeLister narrows the signature and encryption schemes a Signer or
// Decrypter supports; without it a Signer is taken to support every scheme
// core can express and to refuse the rest itself.
type SchemeLister interface {
	SignatureSchemes() []string
	EncryptionSchemes() []string
}

// Operations lists the operations b implements, found by type assertion.
func Operations(b KeyLookup) []core.Operation {
	ops := []core.Operation{core.OpGetKey}
	add := func(ok bool, op core.Operation) {
		if ok {
			ops = append(ops, op)
		}
	}
	_, ok := b.(KeyLister)
	add(ok, core.OpListKeys)
	_, ok = b.(KeyGenerator)
	add(ok, core.OpCreateKey)
	_, ok = b.(KeyImporter)
	add(ok, core.OpImportKey)
	_, ok = b.(KeyDeleter)
	add(ok, core.OpDeleteKey)
	_, ok = b.(Signer)
	add(ok, core.OpSign)
	_, ok = b.(Decrypter)
	add(ok, core.OpDecrypt)
	_, ok = b.(KeyWrapper)
	add(ok, core.OpWrapKey)
	add(ok, core.OpUnwrapKey)
	_, ok = b.(Agreer)
	add(ok, core.OpAgree)
	_, ok = b.(Deriver)
	add(ok, core.OpDerive)
	_, ok = b.(MACer)
	add(ok, core.OpMAC)
	_, ok = b.(Masker)
	add(ok, core.OpMask)
	add(ok, core.OpUnmask)
	_, ok = b.(MaskedKeyMaker)
	add(ok, core.OpGenerateMasked)
	add(ok, core.OpImportMasked)
	_, ok = b.(MessageSigner)
	add(ok, core.OpSignMessage)
	_, ok = b.(RandomSource)
	add(ok, core.OpRandom)
	return ops
}

// Describe builds the description a backend declares: its name and version,
// the operations it implements and the schemes it signs and decrypts with.
func Describe(name, version string, b KeyLookup) core.BackendDescription {
	d := core.BackendDescription{Name: name, Version: version, Operations: Operations(b)}
	if sl, ok := b.(SchemeLister); ok {
		d.SignatureSchemes = sl.SignatureSchemes()
		d.EncryptionSchemes = sl.EncryptionSchemes()
	} else if _, ok := b.(Signer); ok {
		d.SignatureSchemes = core.AllSignatureSchemeNames()
	}
	return d
}
