// Package contracttests is the suite every hsmbridge backend plugin must
// pass. It starts the plugin exactly as hsmhost does (internal/pluginhost:
// go-plugin, the SDK handshake, automatic mTLS, a minimal environment) and
// drives it through the ports interfaces, so what passes here works behind
// hsmhost.
//
// Every cryptographic result is checked with Go's standard library alone:
// digests are computed here, signatures are verified with crypto/rsa and
// crypto/ecdsa against the public key the backend published (parsed by
// crypto/x509), ciphertexts are made here with crypto/rsa. P-256K, which
// the standard library lacks, is checked by the openssl CLI (secp256k1.go).
// The suite never trusts the backend's word, nor hsmbridge's own code, for
// a crypto result.
//
// The suite adapts to what the plugin declares: it signs with every scheme
// the plugin declares for each key type, decrypts only when decrypt is
// declared, creates keys only when create_key is declared (otherwise it uses
// the keys given in Config.Keys), and checks that undeclared operations are
// refused. Keys it creates get names unique to the run and are deleted at
// the end when the plugin declares delete_key.
package contracttests

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/pluginhost"
	"github.com/hsmbridge/hsmbridge/ports"
)

// Config says which plugin to test and how to run it.
type Config struct {
	// PluginPath is the plugin binary.
	PluginPath string
	// Args are given to the plugin binary.
	Args []string
	// Env holds "K=V" entries for the plugin, besides the minimal
	// environment hsmhost gives every plugin.
	Env []string
	// Settings are passed to the plugin's Configure, as hsmhost passes the
	// backend's settings from its config.
	Settings map[string]string
	// Namespace is where the suite creates keys (default "contract-tests").
	// For a backend whose namespace is a real thing (a Managed HSM name, a
	// partition) give one the credentials may create keys in.
	Namespace string
	// Keys are existing keys the suite uses as well as (or, for a backend
	// without create_key, instead of) the keys it creates. The suite reads
	// their type and allowed operations with GetKey; it never deletes them.
	Keys []core.KeyID
	// CallTimeout bounds each call (default one minute: RSA generation in a
	// remote HSM can be slow).
	CallTimeout time.Duration
}

// Backend is what the suite drives: a key lookup that says what it declared.
// It also asserts every other ports interface the backend may implement.
type Backend interface {
	ports.KeyLookup
	Description() core.BackendDescription
}

// Run starts the plugin and runs the whole suite against it.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	if cfg.PluginPath == "" {
		t.Fatal("contracttests: Config.PluginPath is empty")
	}
	b, err := Launch(context.Background(), cfg)
	if err != nil {
		t.Fatalf("starting plugin %s: %v", cfg.PluginPath, err)
	}
	t.Cleanup(b.Close)
	RunBackend(t, b, cfg)
}

// Launch starts a plugin binary the way hsmhost does and configures it with
// cfg.Settings.
func Launch(ctx context.Context, cfg Config) (*pluginhost.Backend, error) {
	return pluginhost.Start(ctx, pluginhost.Spec{
		Name: "contract-test", Command: cfg.PluginPath, Args: cfg.Args, Env: cfg.Env, Settings: cfg.Settings,
	})
}

// RunBackend runs the suite against a backend already running (in process
// or behind a plugin client). cfg.PluginPath, Args, Env and Settings are
// not used.
func RunBackend(t *testing.T, b Backend, cfg Config) {
	s := &suite{b: b, desc: b.Description(), cfg: cfg}
	if s.cfg.Namespace == "" {
		s.cfg.Namespace = "contract-tests"
	}
	if s.cfg.CallTimeout == 0 {
		s.cfg.CallTimeout = time.Minute
	}
	var r [6]byte
	rand.Read(r[:])
	s.prefix = "ct-" + hex.EncodeToString(r[:])
	t.Logf("backend %q version %q declares %v; signature schemes %v; encryption schemes %v",
		s.desc.Name, s.desc.Version, s.desc.Operations, s.desc.SignatureSchemes, s.desc.EncryptionSchemes)

	t.Run("description", s.testDescription)
	if t.Failed() {
		return
	}
	t.Cleanup(func() { s.cleanup(t) })
	t.Run("keys", s.testKeys)
	if len(s.keys) == 0 {
		t.Fatal("no keys to test with: the backend does not declare create_key and Config.Keys is empty")
	}
	t.Run("get_key", s.testGetKey)
	t.Run("sign", s.testSign)
	t.Run("decrypt", s.testDecrypt)
	t.Run("mask", s.testMask)
	t.Run("refusals", s.testRefusals)
	t.Run("operations", s.testOperations)
}

type suite struct {
	b      Backend
	desc   core.BackendDescription
	cfg    Config
	prefix string // unique to the run, for names of created keys

	keys    []testKey     // every key to test with
	created []core.KeyID  // keys to delete at the end
	decOnly *core.KeyInfo // a key that allows decrypt and not sign
	twoVer  *[2]core.KeyInfo
}

type testKey struct {
	info core.KeyInfo
	// spec is what was asked for when the suite created the key (zero for
	// keys from Config.Keys).
	spec core.KeySpec
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
	t.Cleanup(cancel)
	return ctx
}

func (s *suite) id(name string) core.KeyID {
	return core.KeyID{Namespace: s.cfg.Namespace, Name: s.prefix + "-" + name}
}

// parsePublic parses a KeyInfo's public key with crypto/x509 only and checks
// it against the declared type, size and curve.
func parsePublic(info core.KeyInfo) (crypto.PublicKey, error) {
	if info.Curve == core.CurveP256K {
		return parseP256K(info)
	}
	p, err := x509.ParsePKIXPublicKey(info.PublicKeyDER)
	if err != nil {
		return nil, fmt.Errorf("key %s: public key is not a valid SubjectPublicKeyInfo: %v", info.ID, err)
	}
	switch k := p.(type) {
	case *rsa.PublicKey:
		if info.Type != core.KeyTypeRSA || k.N.BitLen() != info.Bits {
			return nil, fmt.Errorf("key %s: public key is RSA-%d, KeyInfo says %s %d bits", info.ID, k.N.BitLen(), info.Type, info.Bits)
		}
	case *ecdsa.PublicKey:
		if info.Type != core.KeyTypeEC || k.Curve.Params().Name != string(info.Curve) {
			return nil, fmt.Errorf("key %s: public key is EC %s, KeyInfo says %s %s", info.ID, k.Curve.Params().Name, info.Type, info.Curve)
		}
	default:
		return nil, fmt.Errorf("key %s: public key of type %T", info.ID, p)
	}
	return p, nil
}

func (s *suite) testDescription(t *testing.T) {
	d := s.desc
	if d.Name == "" {
		t.Error("the backend declares no name")
	}
	if !d.Supports(core.OpGetKey) {
		t.Errorf("the backend does not declare %s, which every backend must implement", core.OpGetKey)
	}
	known := core.AllOperations()
	for _, op := range d.Operations {
		if !slices.Contains(known, op) {
			t.Errorf("declared operation %q is not one hsmbridge knows", op)
		}
	}
	for _, n := range d.SignatureSchemes {
		if s, err := core.ParseSignatureSchemeName(n); err != nil || s.Name() != n {
			t.Errorf("declared signature scheme %q is not a canonical scheme name", n)
		}
	}
	for _, n := range d.EncryptionSchemes {
		if s, err := core.ParseEncryptionSchemeName(n); err != nil || s.Name() != n {
			t.Errorf("declared encryption scheme %q is not a canonical scheme name", n)
		}
	}
	if d.Supports(core.OpSign) && len(d.SignatureSchemes) == 0 {
		t.Error("sign is declared with no signature scheme")
	}
	if d.Supports(core.OpDecrypt) && len(d.EncryptionSchemes) == 0 {
		t.Error("decrypt is declared with no encryption scheme")
	}
}

// privateHalf is the usage whose public-key counterpart a usage is.
var privateHalf = map[core.KeyUsage]core.KeyUsage{
	core.UsageVerify: core.UsageSign, core.UsageEncrypt: core.UsageDecrypt, core.UsageWrapKey: core.UsageUnwrapKey,
}

// testKeys creates the suite's keys (when the backend can) and loads the
// configured ones.
func (s *suite) testKeys(t *testing.T) {
	if gen, ok := s.b.(ports.KeyGenerator); ok && s.desc.Supports(core.OpCreateKey) {
		sign := []core.KeyUsage{core.UsageSign, core.UsageVerify}
		specs := map[string]core.KeySpec{
			"rsa2048": {Type: core.KeyTypeRSA, Bits: 2048, Usages: sign},
			"rsa3072": {Type: core.KeyTypeRSA, Bits: 3072, Usages: sign},
			"p256":    {Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: sign},
			"p384":    {Type: core.KeyTypeEC, Curve: core.CurveP384, Usages: sign},
			"p521":    {Type: core.KeyTypeEC, Curve: core.CurveP521, Usages: sign},
			"p256k":   {Type: core.KeyTypeEC, Curve: core.CurveP256K, Usages: sign},
			"rsa-dec": {Type: core.KeyTypeRSA, Bits: 2048, Usages: []core.KeyUsage{core.UsageDecrypt, core.UsageEncrypt}},
		}
		names := []string{"rsa2048", "rsa3072", "p256", "p384", "p521", "p256k", "rsa-dec"}
		for _, name := range names {
			spec := specs[name]
			t.Run("create_"+name, func(t *testing.T) {
				if spec.Curve == core.CurveP256K && !haveOpenSSL() {
					t.Skip("no openssl CLI to check P-256K with")
				}
				id := s.id(name)
				info, err := gen.CreateKey(s.ctx(t), id, spec)
				if err != nil && spec.Curve == core.CurveP256K && errors.Is(err, core.ErrUnsupported) {
					t.Skipf("the backend has no P-256K: %v", err) // refused as it should be
				}
				if err != nil {
					t.Fatalf("CreateKey %s %+v: %v", id, spec, err)
				}
				s.created = append(s.created, id)
				if info.ID.Namespace != id.Namespace || info.ID.Name != id.Name || info.ID.Version == "" {
					t.Errorf("CreateKey returned ID %+v for %+v: namespace and name must match and the version must be set", info.ID, id)
				}
				if info.Type != spec.Type || (spec.Type == core.KeyTypeRSA && info.Bits != spec.Bits) || info.Curve != spec.Curve {
					t.Errorf("created %s %d %s, asked for %s %d %s", info.Type, info.Bits, info.Curve, spec.Type, spec.Bits, spec.Curve)
				}
				for _, u := range spec.Usages {
					if !info.Allows(u) {
						t.Errorf("created key does not allow %s, which was asked for (allows %v)", u, info.Usages)
					}
				}
				// Nor more than asked: a backend's defaults must not add
				// usages (a public-key half of one asked for aside).
				for _, u := range info.Usages {
					if !slices.Contains(spec.Usages, u) && !slices.Contains(spec.Usages, privateHalf[u]) {
						t.Errorf("created key allows %s, which was not asked for (asked %v, allows %v)", u, spec.Usages, info.Usages)
					}
				}
				if !info.Enabled {
					t.Error("created key is not enabled")
				}
				if _, err := parsePublic(info); err != nil {
					t.Fatal(err)
				}
				s.keys = append(s.keys, testKey{info: info, spec: spec})
				if !info.Allows(core.UsageSign) && info.Allows(core.UsageDecrypt) {
					s.decOnly = &info
				}
			})
		}
		// A second version of one key, for latest-versus-pinned lookups.
		t.Run("new_version", func(t *testing.T) {
			id := s.id("versions")
			spec := specs["p256"]
			v1, err := gen.CreateKey(s.ctx(t), id, spec)
			if err != nil {
				t.Fatalf("CreateKey %s: %v", id, err)
			}
			s.created = append(s.created, id)
			v2, err := gen.CreateKey(s.ctx(t), id, spec)
			if err != nil {
				t.Fatalf("CreateKey %s again (a new version): %v", id, err)
			}
			if v1.ID.Version == v2.ID.Version {
				t.Fatalf("creating %s twice gave the same version %q", id, v1.ID.Version)
			}
			s.twoVer = &[2]core.KeyInfo{v1, v2}
		})
	} else if m, ok := s.b.(ports.MaskedKeyMaker); ok && (s.desc.Supports(core.OpGenerateMasked) || s.desc.Supports(core.OpImportMasked)) {
		t.Logf("create_key not declared: testing with masked keys the backend makes, and the %d key(s) of Config.Keys", len(s.cfg.Keys))
		s.testMaskedKeys(t, m)
	} else {
		t.Logf("create_key not declared: using the %d key(s) of Config.Keys only", len(s.cfg.Keys))
	}
	for _, id := range s.cfg.Keys {
		t.Run("existing_"+strings.ReplaceAll(id.String(), "/", "_"), func(t *testing.T) {
			info, err := s.b.GetKey(s.ctx(t), id)
			if err != nil {
				t.Fatalf("GetKey %s (from Config.Keys): %v", id, err)
			}
			if _, err := parsePublic(info); err != nil {
				t.Fatal(err)
			}
			s.keys = append(s.keys, testKey{info: info})
			if s.decOnly == nil && !info.Allows(core.UsageSign) && info.Allows(core.UsageDecrypt) && info.Type == core.KeyTypeRSA {
				s.decOnly = &info
			}
		})
	}
}

func (s *suite) testGetKey(t *testing.T) {
	for _, k := range s.keys {
		t.Run(k.info.ID.Name, func(t *testing.T) {
			unpinned := k.info.ID
			unpinned.Version = ""
			latest, err := s.b.GetKey(s.ctx(t), unpinned)
			if err != nil {
				t.Fatalf("GetKey %s: %v", unpinned, err)
			}
			if latest.ID.Version == "" {
				t.Errorf("GetKey %s (latest) does not say which version it resolved to", unpinned)
			}
			if k.spec.Type != "" && latest.ID != k.info.ID {
				t.Errorf("GetKey %s (latest) = %s, want the only version %s", unpinned, latest.ID, k.info.ID)
			}
			pinned, err := s.b.GetKey(s.ctx(t), latest.ID)
			if err != nil {
				t.Fatalf("GetKey %s (pinned): %v", latest.ID, err)
			}
			if pinned.ID != latest.ID || string(pinned.PublicKeyDER) != string(latest.PublicKeyDER) ||
				pinned.Type != latest.Type || pinned.Bits != latest.Bits || pinned.Curve != latest.Curve {
				t.Errorf("pinned lookup %+v differs from latest %+v", pinned.ID, latest.ID)
			}
			if _, err := parsePublic(pinned); err != nil {
				t.Error(err)
			}
		})
	}
	if s.twoVer != nil {
		t.Run("versions", func(t *testing.T) {
			v1, v2 := s.twoVer[0], s.twoVer[1]
			unpinned := v1.ID
			unpinned.Version = ""
			latest, err := s.b.GetKey(s.ctx(t), unpinned)
			if err != nil || latest.ID != v2.ID {
				t.Errorf("GetKey %s (latest) = %v, %v; want the newer version %s", unpinned, latest.ID, err, v2.ID)
			}
			old, err := s.b.GetKey(s.ctx(t), v1.ID)
			if err != nil || old.ID != v1.ID || string(old.PublicKeyDER) != string(v1.PublicKeyDER) {
				t.Errorf("GetKey %s (pinned to the older version) = %v, %v", v1.ID, old.ID, err)
			}
			if string(v1.PublicKeyDER) == string(v2.PublicKeyDER) {
				t.Error("two versions of a key have the same public key")
			}
		})
	}
}

// naturalHash is the digest an ECDSA curve is used with (ES256/384/512).
func naturalHash(c core.Curve) core.Hash {
	switch c {
	case core.CurveP384:
		return core.SHA384
	case core.CurveP521:
		return core.SHA512
	}
	return core.SHA256
}

func randomDigest(h core.Hash) []byte {
	msg := make([]byte, 100)
	rand.Read(msg)
	w := h.Crypto().New()
	w.Write(msg)
	return w.Sum(nil)
}

// verifySignature checks a signature with Go's standard library only.
func verifySignature(pub crypto.PublicKey, s core.SignatureScheme, digest, sig []byte) error {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if s.Padding == core.PaddingPSS {
			return rsa.VerifyPSS(p, s.Hash.Crypto(), digest, sig, &rsa.PSSOptions{SaltLength: s.SaltLength})
		}
		return rsa.VerifyPKCS1v15(p, s.Hash.Crypto(), digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, digest, sig) {
			return errors.New("ECDSA signature (DER ECDSA-Sig-Value) does not verify")
		}
		return nil
	case p256kPublic:
		return p.verify(digest, sig)
	}
	return fmt.Errorf("public key of type %T", pub)
}

func (s *suite) testSign(t *testing.T) {
	signer, ok := s.b.(ports.Signer)
	if !ok || !s.desc.Supports(core.OpSign) {
		t.Skip("sign not declared")
	}
	for _, k := range s.keys {
		if !k.info.Allows(core.UsageSign) {
			continue
		}
		pub, err := parsePublic(k.info)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range s.desc.SignatureSchemes {
			scheme, _ := core.ParseSignatureSchemeName(name)
			if (scheme.Padding == core.PaddingECDSA) != (k.info.Type == core.KeyTypeEC) {
				continue
			}
			if scheme.Padding == core.PaddingPSS {
				scheme.SaltLength = scheme.Hash.Size() // what TLS 1.3 and most callers use
			}
			// HSMs tie ECDSA curves to one digest (ES256 is P-256 with
			// SHA-256); other pairs may be refused, but only as unsupported.
			mayRefuse := scheme.Padding == core.PaddingECDSA && scheme.Hash != naturalHash(k.info.Curve)
			t.Run(k.info.ID.Name+"/"+name, func(t *testing.T) {
				d, sig, err := s.signOne(t, signer, k.info.ID, scheme)
				if err != nil {
					if mayRefuse && errors.Is(err, core.ErrUnsupported) {
						t.Skipf("%s with %s refused as unsupported: %v", name, k.info.Curve, err)
					}
					t.Fatalf("Sign %s with declared scheme %s: %v", k.info.ID, name, err)
				}
				if err := verifySignature(pub, scheme, d, sig); err != nil {
					t.Fatalf("signature by %s with %s does not verify: %v", k.info.ID, name, err)
				}
				// The check above must be able to fail.
				d[0] ^= 1
				if verifySignature(pub, scheme, d, sig) == nil {
					t.Fatalf("signature by %s verifies over a different digest", k.info.ID)
				}
			})
		}
	}
	// A latest-version signature must be made by the latest version, a
	// pinned one by that version.
	if s.twoVer != nil && s.desc.SupportsSignature(core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}) {
		t.Run("versions", func(t *testing.T) {
			scheme := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
			for _, c := range []struct {
				id   core.KeyID
				want core.KeyInfo
			}{
				{core.KeyID{Namespace: s.twoVer[0].ID.Namespace, Name: s.twoVer[0].ID.Name}, s.twoVer[1]},
				{s.twoVer[0].ID, s.twoVer[0]},
			} {
				d := randomDigest(core.SHA256)
				sig, err := signer.Sign(s.ctx(t), c.id, d, scheme)
				if err != nil {
					t.Fatalf("Sign %s: %v", c.id, err)
				}
				pub, _ := parsePublic(c.want)
				if err := verifySignature(pub, scheme, d, sig); err != nil {
					t.Errorf("Sign %s was not made by version %s: %v", c.id, c.want.ID.Version, err)
				}
			}
		})
	}
}

// testMask masks a signing key, opens the blob again and signs with the
// handle: the signature must verify with the original public key, and a
// damaged blob must be refused.
func (s *suite) testMask(t *testing.T) {
	m, ok := s.b.(ports.Masker)
	signer, canSign := s.b.(ports.Signer)
	if !ok || !s.desc.Supports(core.OpMask) || !s.desc.Supports(core.OpUnmask) {
		t.Skip("mask/unmask not declared")
	}
	for _, k := range s.keys {
		if !k.info.Allows(core.UsageSign) || k.info.Type != core.KeyTypeEC || !canSign {
			continue
		}
		blob, err := m.Mask(s.ctx(t), k.info.ID)
		if err != nil {
			t.Fatalf("mask %s: %v", k.info.ID, err)
		}
		handle, err := m.Unmask(s.ctx(t), blob)
		if err != nil {
			t.Fatalf("unmask: %v", err)
		}
		if string(handle.PublicKeyDER) != string(k.info.PublicKeyDER) {
			t.Fatal("the unmasked key's public key differs from the original's")
		}
		digest := sha256.Sum256([]byte("masked key"))
		sig, err := signer.Sign(s.ctx(t), handle.ID, digest[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
		if err != nil {
			t.Fatalf("sign with the unmasked key: %v", err)
		}
		pub, _ := parsePublic(k.info)
		if verifySignature(pub, core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}, digest[:], sig) != nil {
			t.Fatal("the unmasked key's signature does not verify with the original public key")
		}
		damaged := append(core.MaskedKey(nil), blob...)
		damaged[len(damaged)-1] ^= 1
		if _, err := m.Unmask(s.ctx(t), damaged); err == nil {
			t.Fatal("a damaged masked key was opened")
		}
		return
	}
	t.Skip("no EC signing key to mask")
}

func (s *suite) testDecrypt(t *testing.T) {
	dec, ok := s.b.(ports.Decrypter)
	if !ok || !s.desc.Supports(core.OpDecrypt) {
		t.Skip("decrypt not declared")
	}
	tested := false
	for _, k := range s.keys {
		if !k.info.Allows(core.UsageDecrypt) || k.info.Type != core.KeyTypeRSA {
			continue
		}
		pub, err := parsePublic(k.info)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range s.desc.EncryptionSchemes {
			scheme, _ := core.ParseEncryptionSchemeName(name)
			t.Run(k.info.ID.Name+"/"+name, func(t *testing.T) {
				tested = true
				msg := make([]byte, 32)
				rand.Read(msg)
				var ct []byte
				var err error
				if scheme.Padding == core.EncryptionOAEP {
					ct, err = rsa.EncryptOAEP(scheme.OAEPHash.Crypto().New(), rand.Reader, pub.(*rsa.PublicKey), msg, nil)
				} else {
					ct, err = rsa.EncryptPKCS1v15(rand.Reader, pub.(*rsa.PublicKey), msg)
				}
				if err != nil {
					t.Fatal(err)
				}
				pt, err := dec.Decrypt(s.ctx(t), k.info.ID, ct, scheme)
				if err != nil {
					t.Fatalf("Decrypt with %s and declared scheme %s: %v", k.info.ID, name, err)
				}
				if string(pt) != string(msg) {
					t.Fatalf("Decrypt with %s and %s returned %x, want %x", k.info.ID, name, pt, msg)
				}
			})
		}
		break // one key is enough: decryption does not depend on the size
	}
	if !tested {
		t.Skip("no RSA key that allows decrypt (create_key not declared and none in Config.Keys)")
	}
}

// expectKind fails unless err is one of the kinds.
func expectKind(t *testing.T, what string, err error, kinds ...*core.Error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded; want an error of kind %v", what, kindNames(kinds))
		return
	}
	for _, k := range kinds {
		if errors.Is(err, k) {
			return
		}
	}
	t.Errorf("%s: error of kind %q (%v); want kind %v", what, core.KindOf(err), err, kindNames(kinds))
}

func kindNames(kinds []*core.Error) string {
	var n []string
	for _, k := range kinds {
		n = append(n, string(k.Kind))
	}
	return strings.Join(n, " or ")
}

func (s *suite) firstKey(pred func(core.KeyInfo) bool) *core.KeyInfo {
	for _, k := range s.keys {
		if pred(k.info) {
			info := k.info
			return &info
		}
	}
	return nil
}

func (s *suite) testRefusals(t *testing.T) {
	base := s.keys[0].info
	unknown := core.KeyID{Namespace: base.ID.Namespace, Name: s.prefix + "-no-such-key"}
	t.Run("unknown_key", func(t *testing.T) {
		_, err := s.b.GetKey(s.ctx(t), unknown)
		expectKind(t, "GetKey of a key that does not exist", err, core.ErrNotFound)
	})
	t.Run("unknown_version", func(t *testing.T) {
		id := base.ID
		id.Version = "0123456789abcdef0123456789abcdef"
		if id.Version == base.ID.Version {
			id.Version = "fedcba9876543210fedcba9876543210"
		}
		_, err := s.b.GetKey(s.ctx(t), id)
		expectKind(t, "GetKey of a version that does not exist", err, core.ErrNotFound)
	})

	signer, canSign := s.b.(ports.Signer)
	canSign = canSign && s.desc.Supports(core.OpSign)
	// pickScheme returns a declared scheme for the key's family.
	pickScheme := func(info core.KeyInfo) (core.SignatureScheme, bool) {
		for _, n := range s.desc.SignatureSchemes {
			sc, _ := core.ParseSignatureSchemeName(n)
			if (sc.Padding == core.PaddingECDSA) != (info.Type == core.KeyTypeEC) {
				continue
			}
			if info.Type == core.KeyTypeEC && sc.Hash != naturalHash(info.Curve) {
				continue
			}
			if sc.Padding == core.PaddingPSS {
				sc.SaltLength = sc.Hash.Size()
			}
			return sc, true
		}
		return core.SignatureScheme{}, false
	}
	if !canSign {
		return
	}
	t.Run("sign_unknown_key", func(t *testing.T) {
		k := s.firstKey(func(i core.KeyInfo) bool { return i.Allows(core.UsageSign) })
		if k == nil {
			t.Skip("no signing key")
		}
		sc, ok := pickScheme(*k)
		if !ok {
			t.Skip("no declared scheme for " + k.Describe())
		}
		_, err := signer.Sign(s.ctx(t), unknown, randomDigest(sc.Hash), sc)
		expectKind(t, "Sign with a key that does not exist", err, core.ErrNotFound)
	})
	t.Run("operation_not_allowed", func(t *testing.T) {
		if s.decOnly == nil {
			t.Skip("no RSA key that allows decrypt but not sign (create_key not declared and none in Config.Keys)")
		}
		sc, ok := pickScheme(*s.decOnly)
		if !ok {
			t.Skip("no declared RSA signature scheme")
		}
		_, _, err := s.signOne(t, signer, s.decOnly.ID, sc)
		expectKind(t, "Sign with a key that allows only "+fmt.Sprint(s.decOnly.Usages), err, core.ErrOperationNotAllowed)
	})
	t.Run("wrong_key_family", func(t *testing.T) {
		k := s.firstKey(func(i core.KeyInfo) bool { return i.Allows(core.UsageSign) && i.Type == core.KeyTypeRSA })
		if k == nil {
			t.Skip("no RSA signing key")
		}
		sc := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
		_, err := signer.Sign(s.ctx(t), k.ID, randomDigest(sc.Hash), sc)
		expectKind(t, "Sign with an ECDSA scheme on an RSA key", err, core.ErrUnsupported, core.ErrInvalidInput)
		if e := s.firstKey(func(i core.KeyInfo) bool { return i.Allows(core.UsageSign) && i.Type == core.KeyTypeEC }); e != nil {
			sc := core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256}
			_, err := signer.Sign(s.ctx(t), e.ID, randomDigest(sc.Hash), sc)
			expectKind(t, "Sign with an RSA scheme on an EC key", err, core.ErrUnsupported, core.ErrInvalidInput)
		}
	})
	t.Run("undeclared_scheme", func(t *testing.T) {
		for _, n := range core.AllSignatureSchemeNames() {
			if slices.Contains(s.desc.SignatureSchemes, n) {
				continue
			}
			sc, _ := core.ParseSignatureSchemeName(n)
			k := s.firstKey(func(i core.KeyInfo) bool {
				return i.Allows(core.UsageSign) && (sc.Padding == core.PaddingECDSA) == (i.Type == core.KeyTypeEC)
			})
			if k == nil {
				continue
			}
			if sc.Padding == core.PaddingPSS {
				sc.SaltLength = sc.Hash.Size()
			}
			_, err := signer.Sign(s.ctx(t), k.ID, randomDigest(sc.Hash), sc)
			expectKind(t, "Sign with undeclared scheme "+n, err, core.ErrUnsupported)
			return
		}
		t.Skip("every scheme hsmbridge knows is declared")
	})
	t.Run("wrong_digest_length", func(t *testing.T) {
		tested := false
		for _, typ := range []core.KeyType{core.KeyTypeRSA, core.KeyTypeEC} {
			k := s.firstKey(func(i core.KeyInfo) bool { return i.Allows(core.UsageSign) && i.Type == typ })
			if k == nil {
				continue
			}
			sc, ok := pickScheme(*k)
			if !ok {
				continue
			}
			tested = true
			for _, d := range [][]byte{randomDigest(sc.Hash)[1:], append(randomDigest(sc.Hash), 0), nil} {
				_, err := signer.Sign(s.ctx(t), k.ID, d, sc)
				expectKind(t, fmt.Sprintf("Sign %s with a %d-byte digest for %s", k.Describe(), len(d), sc.Name()), err, core.ErrInvalidInput)
			}
		}
		if !tested {
			t.Skip("no signing key with a declared scheme")
		}
	})
}

// testOperations checks that every declared operation answers (rather than
// being refused as unimplemented) and that every undeclared one is refused.
func (s *suite) testOperations(t *testing.T) {
	someKey := s.keys[0].info
	missing := core.KeyID{Namespace: someKey.ID.Namespace, Name: s.prefix + "-missing"}
	// probe calls an operation harmlessly; ok says the interface exists.
	probe := func(t *testing.T, op core.Operation) (ok bool, err error) {
		ctx := s.ctx(t)
		switch op {
		case core.OpGetKey:
			_, err = s.b.GetKey(ctx, someKey.ID)
			return true, err
		case core.OpListKeys:
			l, ok := s.b.(ports.KeyLister)
			if !ok {
				return false, nil
			}
			var keys []core.KeyInfo
			keys, err = l.ListKeys(ctx, someKey.ID.Namespace)
			if err == nil && len(s.created) > 0 {
				for _, id := range s.created {
					if !slices.ContainsFunc(keys, func(k core.KeyInfo) bool { return k.ID.Name == id.Name && k.ID.Namespace == id.Namespace }) {
						t.Errorf("ListKeys(%q) does not list created key %s", someKey.ID.Namespace, id)
					}
				}
			}
			return true, err
		case core.OpCreateKey:
			g, ok := s.b.(ports.KeyGenerator)
			if !ok {
				return false, nil
			}
			if len(s.created) > 0 {
				return true, nil // already exercised by the keys subtest
			}
			id := s.id("probe")
			_, err = g.CreateKey(ctx, id, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}})
			if err == nil {
				s.created = append(s.created, id)
			}
			return true, err
		case core.OpImportKey:
			im, ok := s.b.(ports.KeyImporter)
			if !ok {
				return false, nil
			}
			return true, s.probeImport(t, im)
		case core.OpDeleteKey:
			d, ok := s.b.(ports.KeyDeleter)
			if !ok {
				return false, nil
			}
			_, err = d.DeleteKey(ctx, missing)
			return true, err
		case core.OpSign:
			sg, ok := s.b.(ports.Signer)
			if !ok {
				return false, nil
			}
			sc := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
			if len(s.desc.SignatureSchemes) > 0 {
				sc, _ = core.ParseSignatureSchemeName(s.desc.SignatureSchemes[0])
				if sc.Padding == core.PaddingPSS {
					sc.SaltLength = sc.Hash.Size()
				}
			}
			_, err = sg.Sign(ctx, missing, randomDigest(sc.Hash), sc)
			return true, err
		case core.OpDecrypt:
			d, ok := s.b.(ports.Decrypter)
			if !ok {
				return false, nil
			}
			sc := core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256}
			if len(s.desc.EncryptionSchemes) > 0 {
				sc, _ = core.ParseEncryptionSchemeName(s.desc.EncryptionSchemes[0])
			}
			_, err = d.Decrypt(ctx, missing, make([]byte, 256), sc)
			return true, err
		case core.OpAgree:
			a, ok := s.b.(ports.Agreer)
			if !ok {
				return false, nil
			}
			_, err = a.Agree(ctx, missing, someKey.PublicKeyDER)
			return true, err
		case core.OpDerive:
			d, ok := s.b.(ports.Deriver)
			if !ok {
				return false, nil
			}
			_, err = d.Derive(ctx, core.DeriveParams{Input: core.MaskedKey("not a masked key"), KDF: "hkdf", Hash: core.SHA256, OutputType: "aes", OutputBits: 256})
			return true, err
		case core.OpWrapKey, core.OpUnwrapKey:
			w, ok := s.b.(ports.KeyWrapper)
			if !ok {
				return false, nil
			}
			if op == core.OpWrapKey {
				_, err = w.WrapKey(ctx, missing, make([]byte, 32), core.WrapA256KW)
			} else {
				_, err = w.UnwrapKey(ctx, missing, make([]byte, 40), core.WrapA256KW)
			}
			return true, err
		case core.OpMAC:
			m, ok := s.b.(ports.MACer)
			if !ok {
				return false, nil
			}
			_, err = m.MAC(ctx, missing, core.SHA256, []byte("data"))
			return true, err
		case core.OpSignMessage:
			m, ok := s.b.(ports.MessageSigner)
			if !ok {
				return false, nil
			}
			_, err = m.SignMessage(ctx, missing, []byte("data"), core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256})
			return true, err
		case core.OpGenerateMasked:
			m, ok := s.b.(ports.MaskedKeyMaker)
			if !ok {
				return false, nil
			}
			_, info, err := m.GenerateMasked(ctx, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}}, "")
			if err == nil && len(info.PublicKeyDER) == 0 {
				t.Errorf("a generated masked key has no public key")
			}
			return true, err
		case core.OpImportMasked:
			m, ok := s.b.(ports.MaskedKeyMaker)
			if !ok {
				return false, nil
			}
			if _, err = m.ImportWrappingKey(ctx); err != nil {
				return true, err
			}
			_, _, err = m.ImportMasked(ctx, []byte("not a wrapped key"), core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048, Usages: []core.KeyUsage{core.UsageSign}}, "")
			if err == nil {
				t.Errorf("ImportMasked accepted bytes that are no wrapped key")
			}
			expectKind(t, "import of a damaged wrapped key", err, core.ErrInvalidInput)
			return true, nil
		case core.OpMask:
			m, ok := s.b.(ports.Masker)
			if !ok {
				return false, nil
			}
			_, err = m.Mask(ctx, missing)
			return true, err
		case core.OpUnmask:
			m, ok := s.b.(ports.Masker)
			if !ok {
				return false, nil
			}
			_, err = m.Unmask(ctx, core.MaskedKey("not a masked key"))
			return true, err
		case core.OpRandom:
			r, ok := s.b.(ports.RandomSource)
			if !ok {
				return false, nil
			}
			var first, second []byte
			if first, err = r.Random(ctx, 32); err != nil {
				return true, err
			}
			second, err = r.Random(ctx, 32)
			if err == nil && (len(first) != 32 || len(second) != 32 || string(first) == string(second)) {
				t.Errorf("Random(32) twice gave %x and %x", first, second)
			}
			return true, err
		}
		return false, nil
	}
	for _, op := range core.AllOperations() {
		t.Run(string(op), func(t *testing.T) {
			ok, err := probe(t, op)
			if s.desc.Supports(op) {
				if !ok {
					t.Fatalf("%s is declared but the backend does not implement it", op)
				}
				if errors.Is(err, core.ErrUnsupported) {
					t.Fatalf("%s is declared but refused as unsupported: %v", op, err)
				}
				switch op {
				case core.OpGetKey, core.OpListKeys, core.OpCreateKey, core.OpImportKey, core.OpRandom, core.OpGenerateMasked, core.OpImportMasked:
					if err != nil {
						t.Errorf("%s: %v", op, err)
					}
				case core.OpDeleteKey, core.OpSign, core.OpSignMessage, core.OpDecrypt, core.OpWrapKey, core.OpUnwrapKey, core.OpMask, core.OpMAC:
					expectKind(t, string(op)+" of a key that does not exist", err, core.ErrNotFound)
				}
				return
			}
			if ok {
				expectKind(t, "undeclared operation "+string(op), err, core.ErrUnsupported)
			}
		})
	}
}

// probeImport imports a P-256 key made here, checks the backend publishes
// its public key, signs with it if it can, and deletes it if it can.
func (s *suite) probeImport(t *testing.T, im ports.KeyImporter) error {
	local, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(local)
	if err != nil {
		t.Fatal(err)
	}
	id := s.id("imported")
	info, err := im.ImportKey(s.ctx(t), id, der, []core.KeyUsage{core.UsageSign})
	if err != nil {
		return err
	}
	s.created = append(s.created, id)
	pub, err := parsePublic(info)
	if err != nil {
		t.Error(err)
	} else if !local.PublicKey.Equal(pub) {
		t.Error("the imported key's public key is not the key that was imported")
	}
	sc := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}
	if sg, ok := s.b.(ports.Signer); ok && s.desc.Supports(core.OpSign) && s.desc.SupportsSignature(sc) {
		d := randomDigest(core.SHA256)
		sig, err := sg.Sign(s.ctx(t), info.ID, d, sc)
		if err != nil {
			t.Errorf("Sign with the imported key: %v", err)
		} else if !ecdsa.VerifyASN1(&local.PublicKey, d, sig) {
			t.Error("signature by the imported key does not verify with the original public key")
		}
	}
	return nil
}

// cleanup deletes the keys the suite created, and checks they are gone.
func (s *suite) cleanup(t *testing.T) {
	d, ok := s.b.(ports.KeyDeleter)
	if !ok || !s.desc.Supports(core.OpDeleteKey) || len(s.created) == 0 {
		if len(s.created) > 0 {
			t.Logf("delete_key not declared: created keys remain: %v", s.created)
		}
		return
	}
	seen := map[core.KeyID]bool{}
	for _, id := range s.created {
		if seen[id] {
			continue
		}
		seen[id] = true
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
		n, err := d.DeleteKey(ctx, id)
		if err != nil {
			t.Errorf("DeleteKey %s: %v", id, err)
		} else if n < 1 {
			t.Errorf("DeleteKey %s says it deleted %d versions", id, n)
		} else if _, err := s.b.GetKey(ctx, id); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("GetKey %s after DeleteKey: %v; want kind not_found", id, err)
		}
		cancel()
	}
}
