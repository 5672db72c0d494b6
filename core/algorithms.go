package core

import (
	"crypto"
	"fmt"
	"strings"
)

// Hash is a digest algorithm used by signatures and encryption paddings.
type Hash int

const (
	HashUnspecified Hash = iota
	SHA1
	SHA224
	SHA256
	SHA384
	SHA512
)

var hashNames = map[Hash]string{SHA1: "sha1", SHA224: "sha224", SHA256: "sha256", SHA384: "sha384", SHA512: "sha512"}

func (h Hash) String() string {
	if n, ok := hashNames[h]; ok {
		return n
	}
	return "unspecified"
}

// hashNameFolder drops the separators people put in digest names.
var hashNameFolder = strings.NewReplacer("-", "", "_", "")

// ParseHash accepts sha256, SHA256, SHA2-256, sha-256 and the like.
func ParseHash(s string) (Hash, error) {
	n := strings.ToLower(hashNameFolder.Replace(s))
	if len(n) == 7 && strings.HasPrefix(n, "sha2") { // SHA2-256 and friends
		n = "sha" + n[4:]
	}
	for h, name := range hashNames {
		if name == n {
			return h, nil
		}
	}
	return HashUnspecified, Errorf(KindUnsupported, "digest %q is not supported (sha1, sha224, sha256, sha384, sha512)", s)
}

// Crypto maps to the standard library's identifier.
func (h Hash) Crypto() crypto.Hash {
	switch h {
	case SHA1:
		return crypto.SHA1
	case SHA224:
		return crypto.SHA224
	case SHA256:
		return crypto.SHA256
	case SHA384:
		return crypto.SHA384
	case SHA512:
		return crypto.SHA512
	}
	return 0
}

// Size is the digest length in bytes, 0 when unspecified.
func (h Hash) Size() int {
	if c := h.Crypto(); c != 0 {
		return c.Size()
	}
	return 0
}

// SignaturePadding is the signature family.
type SignaturePadding int

const (
	PaddingUnspecified SignaturePadding = iota
	PaddingPKCS1v15
	PaddingPSS
	PaddingECDSA
)

var paddingPrefixes = map[SignaturePadding]string{PaddingPKCS1v15: "rsa-pkcs1v15", PaddingPSS: "rsa-pss", PaddingECDSA: "ecdsa"}

// SignatureScheme says how to sign a digest, in the manner of crypto.SignerOpts.
type SignatureScheme struct {
	Padding SignaturePadding
	Hash    Hash
	// PSS only: salt length in bytes, already resolved by the caller.
	SaltLength int
	// PSS only: MGF1 digest; unspecified means Hash.
	MGF1Hash Hash
}

// Name is the scheme's stable name, e.g. "rsa-pss-sha256"; backends declare
// the names they support.
func (s SignatureScheme) Name() string {
	return paddingPrefixes[s.Padding] + "-" + s.Hash.String()
}

// ParseSignatureSchemeName is the inverse of Name (salt and MGF1 are not
// part of a name).
func ParseSignatureSchemeName(name string) (SignatureScheme, error) {
	i := strings.LastIndexByte(name, '-')
	if i > 0 {
		h, err := ParseHash(name[i+1:])
		for p, prefix := range paddingPrefixes {
			if err == nil && prefix == name[:i] {
				return SignatureScheme{Padding: p, Hash: h}, nil
			}
		}
	}
	return SignatureScheme{}, Errorf(KindUnsupported, "unknown signature scheme %q", name)
}

// EffectiveMGF1 is the MGF1 hash actually used.
func (s SignatureScheme) EffectiveMGF1() Hash {
	if s.MGF1Hash != HashUnspecified {
		return s.MGF1Hash
	}
	return s.Hash
}

// CheckFor validates the scheme and digest against the key: right family,
// digest length, salt that fits. Every backend calls it before signing.
func (s SignatureScheme) CheckFor(k KeyInfo, digest []byte) error {
	if s.Hash.Size() == 0 {
		return Errorf(KindInvalidInput, "signature scheme has no digest algorithm")
	}
	if len(digest) != s.Hash.Size() {
		return Errorf(KindInvalidInput, "digest is %d bytes, %s needs %d", len(digest), s.Hash, s.Hash.Size())
	}
	switch s.Padding {
	case PaddingPKCS1v15, PaddingPSS:
		if k.Type != KeyTypeRSA {
			return Errorf(KindInvalidInput, "%s needs an RSA key, key %s is %s", s.Name(), k.ID, k.Type)
		}
		if s.Padding == PaddingPSS {
			emLen := (k.Bits - 1 + 7) / 8
			if s.SaltLength < 0 || s.SaltLength > emLen-s.Hash.Size()-2 {
				return Errorf(KindInvalidInput, "PSS salt length %d does not fit a %d-bit key with %s", s.SaltLength, k.Bits, s.Hash)
			}
		}
	case PaddingECDSA:
		if k.Type != KeyTypeEC {
			return Errorf(KindInvalidInput, "%s needs an EC key, key %s is %s", s.Name(), k.ID, k.Type)
		}
	default:
		return Errorf(KindInvalidInput, "signature scheme has no padding")
	}
	return nil
}

// EncryptionPadding is the RSA encryption padding.
type EncryptionPadding int

const (
	EncryptionUnspecified EncryptionPadding = iota
	EncryptionPKCS1v15
	EncryptionOAEP
)

// EncryptionScheme says how a ciphertext was made.
type EncryptionScheme struct {
	Padding  EncryptionPadding
	OAEPHash Hash
	MGF1Hash Hash // unspecified means OAEPHash
	Label    []byte
}

// Name is e.g. "rsa-oaep-sha256" or "rsa-pkcs1v15".
func (s EncryptionScheme) Name() string {
	switch s.Padding {
	case EncryptionPKCS1v15:
		return "rsa-pkcs1v15"
	case EncryptionOAEP:
		return "rsa-oaep-" + s.OAEPHash.String()
	}
	return "unspecified"
}

// ParseEncryptionSchemeName is the inverse of Name.
func ParseEncryptionSchemeName(name string) (EncryptionScheme, error) {
	if name == "rsa-pkcs1v15" {
		return EncryptionScheme{Padding: EncryptionPKCS1v15}, nil
	}
	if h, ok := strings.CutPrefix(name, "rsa-oaep-"); ok {
		if hash, err := ParseHash(h); err == nil {
			return EncryptionScheme{Padding: EncryptionOAEP, OAEPHash: hash}, nil
		}
	}
	return EncryptionScheme{}, Errorf(KindUnsupported, "unknown encryption scheme %q", name)
}

// Operation is a backend capability. A backend declares the ones it
// implements; the host refuses the others before calling the backend.
type Operation string

const (
	OpGetKey    Operation = "get_key"
	OpListKeys  Operation = "list_keys"
	OpCreateKey Operation = "create_key"
	OpImportKey Operation = "import_key"
	OpDeleteKey Operation = "delete_key"
	OpSign      Operation = "sign"
	OpDecrypt   Operation = "decrypt"
	OpAgree     Operation = "agree"
	OpDerive    Operation = "derive"
	OpMask      Operation = "mask"
	OpUnmask    Operation = "unmask"
	OpRandom    Operation = "random"
	OpWrapKey   Operation = "wrap_key"
	OpUnwrapKey Operation = "unwrap_key"
	// Masked keys made in the backend (MaskedKeyMaker).
	OpGenerateMasked Operation = "generate_masked"
	OpImportMasked   Operation = "import_masked"
	OpMAC            Operation = "mac"
	// Signing a whole message, for backends that hash in the device.
	OpSignMessage Operation = "sign_message"
)

// AllOperations lists every operation a backend can declare.
func AllOperations() []Operation {
	return []Operation{OpGetKey, OpListKeys, OpCreateKey, OpImportKey, OpDeleteKey, OpSign, OpDecrypt,
		OpWrapKey, OpUnwrapKey, OpAgree, OpDerive, OpMask, OpUnmask, OpGenerateMasked, OpImportMasked, OpMAC, OpSignMessage, OpRandom}
}

// BackendDescription is what a backend declares about itself.
type BackendDescription struct {
	Name              string
	Version           string
	Operations        []Operation
	SignatureSchemes  []string // SignatureScheme.Name values
	EncryptionSchemes []string // EncryptionScheme.Name values
}

// Supports reports whether op was declared.
func (d BackendDescription) Supports(op Operation) bool {
	for _, o := range d.Operations {
		if o == op {
			return true
		}
	}
	return false
}

// SupportsSignature reports whether the scheme's name was declared.
func (d BackendDescription) SupportsSignature(s SignatureScheme) bool {
	for _, n := range d.SignatureSchemes {
		if n == s.Name() {
			return true
		}
	}
	return false
}

// AllSignatureSchemeNames lists every scheme hsmbridge can express.
func AllSignatureSchemeNames() []string {
	var names []string
	for _, p := range []SignaturePadding{PaddingPKCS1v15, PaddingPSS, PaddingECDSA} {
		for _, h := range []Hash{SHA1, SHA224, SHA256, SHA384, SHA512} {
			names = append(names, SignatureScheme{Padding: p, Hash: h}.Name())
		}
	}
	return names
}

func (p SignaturePadding) String() string {
	if s, ok := paddingPrefixes[p]; ok {
		return s
	}
	return fmt.Sprintf("padding(%d)", int(p))
}

// WrapAlgorithm names a key-wrapping algorithm in Key Vault's words.
type WrapAlgorithm string

const (
	WrapA128KW        WrapAlgorithm = "A128KW"
	WrapA192KW        WrapAlgorithm = "A192KW"
	WrapA256KW        WrapAlgorithm = "A256KW"
	WrapAESKeyWrap    WrapAlgorithm = "CKM_AES_KEY_WRAP"     // RFC 3394, any AES key size
	WrapAESKeyWrapPad WrapAlgorithm = "CKM_AES_KEY_WRAP_PAD" // RFC 5649
	WrapRSAOAEP       WrapAlgorithm = "RSA-OAEP"             // SHA-1
	WrapRSAOAEP256    WrapAlgorithm = "RSA-OAEP-256"
	WrapRSA1_5        WrapAlgorithm = "RSA1_5"
)

// ImportWrapAlgorithm is how a private key is wrapped for import into a
// backend that makes masked keys: RSA-OAEP (SHA-256, MGF1 SHA-256, no label)
// of a fresh AES-256 key under the backend's import key, followed by the
// RFC 5649 wrap of the PKCS#8 key under that AES key.
const ImportWrapAlgorithm = "CKM_RSA_AES_KEY_WRAP"

var wrapAlgorithms = []WrapAlgorithm{WrapA128KW, WrapA192KW, WrapA256KW, WrapAESKeyWrap, WrapAESKeyWrapPad, WrapRSAOAEP, WrapRSAOAEP256, WrapRSA1_5}

// ParseWrapAlgorithm accepts Key Vault's names, case-insensitively.
func ParseWrapAlgorithm(s string) (WrapAlgorithm, error) {
	for _, a := range wrapAlgorithms {
		if equalFoldASCII(string(a), s) {
			return a, nil
		}
	}
	return "", Errorf(KindUnsupported, "unknown key-wrap algorithm %q (A128KW, A192KW, A256KW, CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD, RSA-OAEP, RSA-OAEP-256, RSA1_5)", s)
}

// KeyType is the type of key the algorithm wraps with.
func (a WrapAlgorithm) KeyType() KeyType {
	switch a {
	case WrapRSAOAEP, WrapRSAOAEP256, WrapRSA1_5:
		return KeyTypeRSA
	}
	return KeyTypeOct
}

// AESKeyBits is the key size an AnnnKW algorithm requires, 0 for the others.
func (a WrapAlgorithm) AESKeyBits() int {
	switch a {
	case WrapA128KW:
		return 128
	case WrapA192KW:
		return 192
	case WrapA256KW:
		return 256
	}
	return 0
}

// CheckFor validates the algorithm against the wrapping key.
func (a WrapAlgorithm) CheckFor(k KeyInfo) error {
	if a.KeyType() != k.Type {
		return Errorf(KindInvalidInput, "%s needs a %s key, key %s is %s", a, a.KeyType(), k.ID, k.Type)
	}
	if bits := a.AESKeyBits(); bits != 0 && bits != k.Bits {
		return Errorf(KindInvalidInput, "%s needs a %d-bit key, key %s has %d bits", a, bits, k.ID, k.Bits)
	}
	return nil
}
