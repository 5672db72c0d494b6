// Package fakebackend is an in-process backend for tests of the host: real
// keys from crypto/ecdsa and crypto/rsa kept in memory, a call counter per
// operation, and a description that can be narrowed independently of what
// the type implements, to prove that the host honours declarations.
package fakebackend

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/ports"
)

// Backend implements every operation the host routes.
type Backend struct {
	name string
	desc core.BackendDescription

	mu     sync.Mutex
	keys   map[string][]entry // namespace/name -> versions, oldest first
	calls  map[core.Operation]int
	closed bool

	// SignHook, when set, runs before each signature (tests use it to hold
	// or reorder calls).
	SignHook func(digest []byte)
}

type entry struct {
	info core.KeyInfo
	priv crypto.Signer
}

// New returns a backend declaring every operation it implements.
func New(name string) *Backend {
	b := &Backend{name: name, keys: map[string][]entry{}, calls: map[core.Operation]int{}}
	b.desc = ports.Describe(name, "test", b)
	return b
}

// Without removes operations from the declaration (the methods stay).
func (b *Backend) Without(ops ...core.Operation) *Backend {
	var keep []core.Operation
	for _, o := range b.desc.Operations {
		drop := false
		for _, x := range ops {
			drop = drop || x == o
		}
		if !drop {
			keep = append(keep, o)
		}
	}
	b.desc.Operations = keep
	return b
}

// WithSignatureSchemes narrows the declared signature schemes.
func (b *Backend) WithSignatureSchemes(names ...string) *Backend {
	b.desc.SignatureSchemes = names
	return b
}

func (b *Backend) Name() string                         { return b.name }
func (b *Backend) Description() core.BackendDescription { return b.desc }

// Calls counts the calls made for op.
func (b *Backend) Calls(op core.Operation) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[op]
}

// Close records that the host closed the backend.
func (b *Backend) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

// Closed reports whether Close was called.
func (b *Backend) Closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

func (b *Backend) count(op core.Operation) {
	b.mu.Lock()
	b.calls[op]++
	b.mu.Unlock()
}

func (b *Backend) find(id core.KeyID) (entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	vs := b.keys[id.Namespace+"/"+id.Name]
	if len(vs) == 0 {
		return entry{}, core.Errorf(core.KindNotFound, "key not found")
	}
	if id.Version == "" {
		return vs[len(vs)-1], nil
	}
	for _, e := range vs {
		if e.info.ID.Version == id.Version {
			return e, nil
		}
	}
	return entry{}, core.Errorf(core.KindNotFound, "key version %s not found", id.Version)
}

func (b *Backend) GetKey(ctx context.Context, id core.KeyID) (core.KeyInfo, error) {
	b.count(core.OpGetKey)
	e, err := b.find(id)
	return e.info, err
}

func (b *Backend) ListKeys(ctx context.Context, ns string) ([]core.KeyInfo, error) {
	b.count(core.OpListKeys)
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []core.KeyInfo
	for _, vs := range b.keys {
		if ns == "" || vs[0].info.ID.Namespace == ns {
			out = append(out, vs[len(vs)-1].info)
		}
	}
	return out, nil
}

func (b *Backend) store(id core.KeyID, priv crypto.Signer, typ core.KeyType, usages []core.KeyUsage) (core.KeyInfo, error) {
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return core.KeyInfo{}, err
	}
	info := core.KeyInfo{Type: typ, Usages: usages, PublicKeyDER: der, Enabled: true, Created: time.Now()}
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		info.Curve = core.Curve("P-" + strconv.Itoa(k.Curve.Params().BitSize))
		info.Bits = k.Curve.Params().BitSize
	case *rsa.PrivateKey:
		info.Bits = k.N.BitLen()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	key := id.Namespace + "/" + id.Name
	info.ID = core.KeyID{Namespace: id.Namespace, Name: id.Name, Version: fmt.Sprintf("v%d", len(b.keys[key])+1)}
	b.keys[key] = append(b.keys[key], entry{info: info, priv: priv})
	return info, nil
}

func (b *Backend) CreateKey(ctx context.Context, id core.KeyID, spec core.KeySpec) (core.KeyInfo, error) {
	b.count(core.OpCreateKey)
	var priv crypto.Signer
	var err error
	switch spec.Type {
	case core.KeyTypeEC:
		curve := map[core.Curve]elliptic.Curve{core.CurveP256: elliptic.P256(), core.CurveP384: elliptic.P384(), core.CurveP521: elliptic.P521()}[spec.Curve]
		if curve == nil {
			return core.KeyInfo{}, core.Errorf(core.KindUnsupported, "curve %s is not supported", spec.Curve)
		}
		priv, err = ecdsa.GenerateKey(curve, rand.Reader)
	case core.KeyTypeRSA:
		priv, err = rsa.GenerateKey(rand.Reader, spec.Bits)
	default:
		return core.KeyInfo{}, core.Errorf(core.KindUnsupported, "key type %s is not supported", spec.Type)
	}
	if err != nil {
		return core.KeyInfo{}, err
	}
	return b.store(id, priv, spec.Type, spec.Usages)
}

func (b *Backend) ImportKey(ctx context.Context, id core.KeyID, pkcs8 []byte, usages []core.KeyUsage) (core.KeyInfo, error) {
	b.count(core.OpImportKey)
	k, err := x509.ParsePKCS8PrivateKey(pkcs8)
	if err != nil {
		return core.KeyInfo{}, core.Errorf(core.KindInvalidInput, "not a PKCS#8 private key: %v", err)
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return b.store(id, k, core.KeyTypeEC, usages)
	case *rsa.PrivateKey:
		return b.store(id, k, core.KeyTypeRSA, usages)
	}
	return core.KeyInfo{}, core.Errorf(core.KindUnsupported, "key type %T is not supported", k)
}

func (b *Backend) DeleteKey(ctx context.Context, id core.KeyID) (int, error) {
	b.count(core.OpDeleteKey)
	b.mu.Lock()
	defer b.mu.Unlock()
	key := id.Namespace + "/" + id.Name
	n := len(b.keys[key])
	if n == 0 {
		return 0, core.Errorf(core.KindNotFound, "key not found")
	}
	delete(b.keys, key)
	return n, nil
}

func (b *Backend) Sign(ctx context.Context, id core.KeyID, digest []byte, s core.SignatureScheme) ([]byte, error) {
	b.count(core.OpSign)
	if b.SignHook != nil {
		b.SignHook(digest)
	}
	e, err := b.find(id)
	if err != nil {
		return nil, err
	}
	if !e.info.Allows(core.UsageSign) {
		return nil, core.Errorf(core.KindOperationNotAllowed, "key does not allow sign")
	}
	if err := s.CheckFor(e.info, digest); err != nil {
		return nil, err
	}
	var opts crypto.SignerOpts = s.Hash.Crypto()
	if s.Padding == core.PaddingPSS {
		opts = &rsa.PSSOptions{SaltLength: s.SaltLength, Hash: s.Hash.Crypto()}
	}
	return e.priv.Sign(rand.Reader, digest, opts)
}

func (b *Backend) Decrypt(ctx context.Context, id core.KeyID, ct []byte, s core.EncryptionScheme) ([]byte, error) {
	b.count(core.OpDecrypt)
	e, err := b.find(id)
	if err != nil {
		return nil, err
	}
	k, ok := e.priv.(*rsa.PrivateKey)
	if !ok {
		return nil, core.Errorf(core.KindInvalidInput, "decryption needs an RSA key")
	}
	switch s.Padding {
	case core.EncryptionOAEP:
		return rsa.DecryptOAEP(s.OAEPHash.Crypto().New(), rand.Reader, k, ct, s.Label)
	case core.EncryptionPKCS1v15:
		return rsa.DecryptPKCS1v15(rand.Reader, k, ct)
	}
	return nil, core.Errorf(core.KindUnsupported, "encryption scheme %s", s.Name())
}

func (b *Backend) Random(ctx context.Context, n int) ([]byte, error) {
	b.count(core.OpRandom)
	out := make([]byte, n)
	_, err := rand.Read(out)
	return out, err
}

// Names lists the stored keys (for debugging tests).
func (b *Backend) Names() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n []string
	for k := range b.keys {
		n = append(n, k)
	}
	return strings.Join(n, ",")
}
