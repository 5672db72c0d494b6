package contracttests

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/aeskw"
	"github.com/hsmbridge/hsmbridge/ports"
)

// Backends that keep no named keys (the Integrated HSM) make keys only as
// masked blobs: generated inside them, or imported wrapped. For those the
// suite makes its test keys that way and runs the same checks on the
// handles they return.

// testMaskedKeys fills s.keys with keys made by a MaskedKeyMaker: EC keys
// generated in the backend, RSA keys generated here and imported wrapped
// under the backend's import key (so that their public keys can be checked
// against what was sent).
func (s *suite) testMaskedKeys(t *testing.T, m ports.MaskedKeyMaker) {
	sign := []core.KeyUsage{core.UsageSign, core.UsageVerify}
	if s.desc.Supports(core.OpGenerateMasked) {
		for _, c := range []core.Curve{core.CurveP256, core.CurveP384, core.CurveP521} {
			spec := core.KeySpec{Type: core.KeyTypeEC, Curve: c, Usages: sign}
			t.Run("generate_masked_"+string(c), func(t *testing.T) {
				blob, info, err := m.GenerateMasked(s.ctx(t), spec, "")
				if err != nil {
					t.Fatalf("GenerateMasked %+v: %v", spec, err)
				}
				s.checkMasked(t, blob, info, spec, nil)
			})
		}
	}
	if !s.desc.Supports(core.OpImportMasked) {
		return
	}
	for _, c := range []struct {
		name string
		bits int
		use  []core.KeyUsage
	}{
		{"rsa2048", 2048, sign},
		{"rsa3072", 3072, sign},
		{"rsa-dec", 2048, []core.KeyUsage{core.UsageDecrypt, core.UsageEncrypt}},
	} {
		t.Run("import_masked_"+c.name, func(t *testing.T) {
			priv, err := rsa.GenerateKey(rand.Reader, c.bits)
			if err != nil {
				t.Fatal(err)
			}
			spec := core.KeySpec{Type: core.KeyTypeRSA, Bits: c.bits, Usages: c.use}
			wrapped := s.wrapForImport(t, m, priv)
			blob, info, err := m.ImportMasked(s.ctx(t), wrapped, spec, "")
			if err != nil {
				t.Fatalf("ImportMasked %+v: %v", spec, err)
			}
			s.checkMasked(t, blob, info, spec, &priv.PublicKey)
			// The backend must refuse a key that is not what the request says.
			wrong := spec
			wrong.Bits = c.bits + 1024
			_, _, err = m.ImportMasked(s.ctx(t), s.wrapForImport(t, m, priv), wrong, "")
			expectKind(t, "import of a key whose size is not the one the request says", err, core.ErrInvalidInput, core.ErrUnsupported)
		})
	}
}

// wrapForImport wraps priv as CKM_RSA_AES_KEY_WRAP under the backend's
// import key: RSA-OAEP-SHA256 of a fresh AES-256 key, then RFC 5649 AES key
// wrap with padding of the PKCS#8.
func (s *suite) wrapForImport(t *testing.T, m ports.MaskedKeyMaker, priv crypto.PrivateKey) []byte {
	t.Helper()
	spki, err := m.ImportWrappingKey(s.ctx(t))
	if err != nil {
		t.Fatalf("ImportWrappingKey: %v", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	w, err := aeskw.RSAAESWrap(spki, pkcs8)
	if err != nil {
		t.Fatalf("wrapping under the backend's import key: %v", err)
	}
	return w
}

// checkMasked checks what a masked-key maker returned and adds the key to
// the ones the suite tests with.
func (s *suite) checkMasked(t *testing.T, blob core.MaskedKey, info core.KeyInfo, spec core.KeySpec, want crypto.PublicKey) {
	t.Helper()
	if len(blob) == 0 {
		t.Fatal("no masked blob returned")
	}
	if info.ID.Namespace != core.MaskedNamespace || info.ID.Name == "" {
		t.Errorf("a masked key's handle must be in namespace %q, got %+v", core.MaskedNamespace, info.ID)
	}
	if info.Type != spec.Type || (spec.Type == core.KeyTypeRSA && info.Bits != spec.Bits) || info.Curve != spec.Curve {
		t.Errorf("made %s %d %s, asked for %s %d %s", info.Type, info.Bits, info.Curve, spec.Type, spec.Bits, spec.Curve)
	}
	for _, u := range spec.Usages {
		if !info.Allows(u) {
			t.Errorf("the key does not allow %s, which was asked for (allows %v)", u, info.Usages)
		}
	}
	pub, err := parsePublic(info)
	if err != nil {
		t.Fatal(err)
	}
	if want != nil {
		if eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(want) {
			t.Fatal("the imported key's public key is not the one that was imported")
		}
	}
	// Opening the blob again names the same key.
	if mk, ok := s.b.(ports.Masker); ok && s.desc.Supports(core.OpUnmask) {
		again, err := mk.Unmask(s.ctx(t), blob)
		if err != nil {
			t.Fatalf("Unmask of the blob just made: %v", err)
		}
		if !bytes.Equal(again.PublicKeyDER, info.PublicKeyDER) {
			t.Fatal("the blob opens as a key with another public key")
		}
		info = again
	}
	s.keys = append(s.keys, testKey{info: info, spec: spec})
	if !info.Allows(core.UsageSign) && info.Allows(core.UsageDecrypt) && info.Type == core.KeyTypeRSA {
		s.decOnly = &info
	}
}

// signOne signs a random digest with scheme or, where the backend refuses
// the digest as unsupported but signs whole messages, a random message; it
// returns what the signature must verify over (the digest).
func (s *suite) signOne(t *testing.T, signer ports.Signer, id core.KeyID, scheme core.SignatureScheme) (digest, sig []byte, err error) {
	digest = randomDigest(scheme.Hash)
	sig, err = signer.Sign(s.ctx(t), id, digest, scheme)
	ms, ok := s.b.(ports.MessageSigner)
	if !errors.Is(err, core.ErrUnsupported) || !ok || !s.desc.Supports(core.OpSignMessage) {
		return digest, sig, err
	}
	msg := make([]byte, 200)
	rand.Read(msg)
	h := scheme.Hash.Crypto().New()
	h.Write(msg)
	sig, err = ms.SignMessage(s.ctx(t), id, msg, scheme)
	return h.Sum(nil), sig, err
}
