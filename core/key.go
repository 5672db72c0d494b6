package core

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"slices"
	"time"
)

// KeyID names a key inside one backend. An empty Version means the latest.
type KeyID struct {
	Namespace string
	Name      string
	Version   string
}

func (id KeyID) String() string {
	if id.Namespace == MaskedNamespace {
		return "masked:" + id.Name // name and version are the same handle
	}
	s := id.Namespace + "/" + id.Name
	if id.Version != "" {
		s += "@" + id.Version
	}
	return s
}

// KeyType is the family of a key, in Key Vault's words (without -HSM).
type KeyType string

const (
	KeyTypeRSA KeyType = "RSA"
	KeyTypeEC  KeyType = "EC"
	KeyTypeOct KeyType = "oct"
	// A shared secret from key agreement: input for a KDF, nothing else.
	KeyTypeSecret KeyType = "secret"
	// An HMAC key; its kind (the hash) is fixed when it is derived.
	KeyTypeHMAC KeyType = "hmac"
)

// Curve names follow Key Vault (P-256, ...).
type Curve string

const (
	CurveP256 Curve = "P-256"
	CurveP384 Curve = "P-384"
	CurveP521 Curve = "P-521"
	// CurveP256K is SEC 2's secp256k1 (Key Vault's P-256K, JWS ES256K).
	// Go's crypto does not have it: internal/secp256k1 does.
	CurveP256K Curve = "P-256K"
)

// curves is every curve hsmbridge knows, in Key Vault's order, with its
// field size and its other names: OpenSSL's group names (and SEC 2's).
var curves = []struct {
	curve   Curve
	bits    int
	openssl string
	aliases []string
}{
	{CurveP256, 256, "prime256v1", []string{"secp256r1"}},
	{CurveP256K, 256, "secp256k1", nil},
	{CurveP384, 384, "secp384r1", nil},
	{CurveP521, 521, "secp521r1", nil},
}

const curveList = "P-256, P-256K, P-384 or P-521"

// Curves lists every curve, in Key Vault's order.
func Curves() []Curve {
	out := make([]Curve, len(curves))
	for i, c := range curves {
		out[i] = c.curve
	}
	return out
}

// ParseCurve accepts Key Vault's names in any case, as az does ("P-256K",
// "p-256k"), and OpenSSL's group names ("secp256k1", "prime256v1",
// "secp256r1", "secp384r1", "secp521r1").
func ParseCurve(s string) (Curve, error) {
	for _, c := range curves {
		if equalFoldASCII(string(c.curve), s) || equalFoldASCII(c.openssl, s) {
			return c.curve, nil
		}
		for _, a := range c.aliases {
			if equalFoldASCII(a, s) {
				return c.curve, nil
			}
		}
	}
	return "", Errorf(KindUnsupported, "curve %q is not supported (%s)", s, curveList)
}

// OpenSSLName is the curve's group name in OpenSSL ("" if unknown).
func (c Curve) OpenSSLName() string {
	for _, k := range curves {
		if k.curve == c {
			return k.openssl
		}
	}
	return ""
}

// KeyUsage is one operation a key allows, in Key Vault's key_ops words.
type KeyUsage string

const (
	UsageSign      KeyUsage = "sign"
	UsageVerify    KeyUsage = "verify"
	UsageEncrypt   KeyUsage = "encrypt"
	UsageDecrypt   KeyUsage = "decrypt"
	UsageWrapKey   KeyUsage = "wrapKey"
	UsageUnwrapKey KeyUsage = "unwrapKey"
	UsageDeriveKey KeyUsage = "deriveKey"
)

var knownUsages = []KeyUsage{UsageSign, UsageVerify, UsageEncrypt, UsageDecrypt, UsageWrapKey, UsageUnwrapKey, UsageDeriveKey}

// ParseKeyUsage accepts a key_ops word, case-insensitively.
func ParseKeyUsage(s string) (KeyUsage, error) {
	for _, u := range knownUsages {
		if equalFoldASCII(string(u), s) {
			return u, nil
		}
	}
	return "", Errorf(KindInvalidInput, "unknown key operation %q (known: sign, verify, encrypt, decrypt, wrapKey, unwrapKey, deriveKey)", s)
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// ParseUsageWords reads allowed operations given in Key Vault's words
// (sign, decrypt, ...) or in the X.509 key-usage words the Integrated HSM
// uses: digitalSignature (sign, verify), keyAgreement (deriveKey) and
// keyEncipherment (encrypt, decrypt).
func ParseUsageWords(words []string) ([]KeyUsage, error) {
	var out []KeyUsage
	add := func(us ...KeyUsage) {
		for _, u := range us {
			if !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	for _, w := range words {
		switch {
		case equalFoldASCII(w, "digitalSignature"):
			add(UsageSign, UsageVerify)
		case equalFoldASCII(w, "keyAgreement"):
			add(UsageDeriveKey)
		case equalFoldASCII(w, "keyEncipherment"):
			add(UsageEncrypt, UsageDecrypt)
		default:
			u, err := ParseKeyUsage(w)
			if err != nil {
				return nil, Errorf(KindInvalidInput, "unknown key usage %q (sign, verify, encrypt, decrypt, wrapKey, unwrapKey, deriveKey, or digitalSignature, keyAgreement, keyEncipherment)", w)
			}
			add(u)
		}
	}
	return out, nil
}

// KeySpec describes a key to create.
type KeySpec struct {
	Type   KeyType
	Bits   int   // RSA and oct
	Curve  Curve // EC
	Usages []KeyUsage
}

// Validate checks the spec against what hsmbridge supports for each type.
func (s KeySpec) Validate() error {
	switch s.Type {
	case KeyTypeRSA:
		if s.Bits != 2048 && s.Bits != 3072 && s.Bits != 4096 {
			return Errorf(KindUnsupported, "RSA key size %d is not supported (2048, 3072 or 4096)", s.Bits)
		}
	case KeyTypeEC:
		if _, err := s.Curve.Size(); err != nil {
			return err
		}
	case KeyTypeOct:
		if s.Bits != 128 && s.Bits != 192 && s.Bits != 256 {
			return Errorf(KindUnsupported, "oct key size %d is not supported (128, 192 or 256)", s.Bits)
		}
	default:
		return Errorf(KindUnsupported, "key type %q is not supported (RSA, EC or oct)", s.Type)
	}
	return nil
}

// DefaultUsages are the operations Managed HSM gives a new key of type t
// when the create request names none (as recorded from the service): what
// `az keyvault key create` without --ops gets, and what backends apply to a
// KeySpec with no Usages.
func DefaultUsages(t KeyType) []KeyUsage {
	switch t {
	case KeyTypeRSA:
		return []KeyUsage{UsageWrapKey, UsageDecrypt, UsageEncrypt, UsageUnwrapKey, UsageSign, UsageVerify}
	case KeyTypeEC:
		return []KeyUsage{UsageVerify, UsageDeriveKey, UsageSign}
	case KeyTypeOct:
		return []KeyUsage{UsageEncrypt, UsageDecrypt, UsageWrapKey, UsageUnwrapKey, UsageSign, UsageVerify, UsageDeriveKey}
	}
	return nil
}

// Size returns the curve's field size in bits.
func (c Curve) Size() (int, error) {
	for _, k := range curves {
		if k.curve == c {
			return k.bits, nil
		}
	}
	return 0, Errorf(KindUnsupported, "curve %q is not supported (%s)", c, curveList)
}

// KeyInfo is what a backend tells about a key: never private material.
type KeyInfo struct {
	ID           KeyID // Version always set
	Type         KeyType
	Bits         int
	Curve        Curve
	Usages       []KeyUsage
	PublicKeyDER []byte // SubjectPublicKeyInfo; nil for symmetric keys
	Enabled      bool
	Created      time.Time
}

// Allows reports whether the key's policy permits the usage.
func (k KeyInfo) Allows(u KeyUsage) bool { return slices.Contains(k.Usages, u) }

// PublicKey parses PublicKeyDER with crypto/x509, which has no P-256K
// (internal/secp256k1.ParsePKIXPublicKey reads those).
func (k KeyInfo) PublicKey() (crypto.PublicKey, error) {
	if len(k.PublicKeyDER) == 0 {
		return nil, Errorf(KindUnsupported, "key %s has no public key", k.ID)
	}
	if k.Curve == CurveP256K {
		return nil, Errorf(KindUnsupported, "key %s is on P-256K, which Go's crypto/x509 does not read", k.ID)
	}
	pub, err := x509.ParsePKIXPublicKey(k.PublicKeyDER)
	if err != nil {
		return nil, Errorf(KindInternal, "key %s: bad public key: %w", k.ID, err)
	}
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return pub, nil
	}
	return nil, Errorf(KindUnsupported, "key %s: public key type %T", k.ID, pub)
}

// MaskedKey is key material sealed by a backend for storage outside it.
// Only the backend that made it can open it.
type MaskedKey []byte

// DeriveParams describe a key derivation inside a backend.
type DeriveParams struct {
	Input      MaskedKey
	KDF        string // "hkdf" or "kbkdf" (SP 800-108 counter mode, HMAC PRF: Salt is the label, Info the context)
	Hash       Hash
	Salt, Info []byte
	OutputType string // "aes" or "hmac"
	OutputBits int
}

// Describe formats a key for messages and listings.
func (k KeyInfo) Describe() string {
	switch k.Type {
	case KeyTypeEC:
		return fmt.Sprintf("%s EC %s", k.ID, k.Curve)
	default:
		return fmt.Sprintf("%s %s %d", k.ID, k.Type, k.Bits)
	}
}
