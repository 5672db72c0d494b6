package core

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Scheme is the first part of a key reference. akv: references are accepted
// as input but canonicalise to managedhsm:, since both name the same key.
type Scheme string

const (
	SchemeManagedHSM Scheme = "managedhsm"
	SchemeAKV        Scheme = "akv"
	SchemeAzIHSM     Scheme = "azihsm"
	// SchemeGeneric addresses a key in any backend, a third party's included:
	// hsmbridge:<namespace>:<name>[?version=<v>]. The namespace means whatever
	// the backend makes of it (a vault, a partition, a slot).
	SchemeGeneric Scheme = "hsmbridge"
)

// AzIHSMKeyType is the type= attribute of an azihsm:// reference.
type AzIHSMKeyType string

const (
	AzIHSMTypeEC     AzIHSMKeyType = "ec"
	AzIHSMTypeRSA    AzIHSMKeyType = "rsa"
	AzIHSMTypeRSAPSS AzIHSMKeyType = "rsa-pss"
)

// KeyRef is a parsed key reference. The zero value is not valid.
type KeyRef struct {
	Scheme Scheme // managedhsm, azihsm or hsmbridge; never akv
	// Namespace is the Managed HSM name for managedhsm:, the backend's
	// namespace for hsmbridge:, and empty for azihsm:.
	Namespace string
	// Name is the key name, or for azihsm: the masked-key file path as written.
	Name    string
	Version string // empty: the latest version
	Type    AzIHSMKeyType
}

var (
	// Managed HSM names: 3-24 characters, letters, digits and hyphens,
	// starting with a letter and not ending with a hyphen.
	hsmNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$`)
	// Key Vault key names: 1-127 letters, digits and hyphens.
	akvKeyNamePattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,127}$`)
	versionPattern    = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
	genericPattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$`)
)

func badRef(ref, format string, args ...any) *Error {
	return &Error{Kind: KindInvalidReference,
		Message: fmt.Sprintf("invalid key reference %q: %s", ref, fmt.Sprintf(format, args...))}
}

// ParseKeyRef parses any supported key reference form. The error quotes the
// reference and says what is wrong with it.
func ParseKeyRef(ref string) (KeyRef, error) {
	scheme, rest, ok := strings.Cut(ref, ":")
	if !ok || scheme == "" {
		return KeyRef{}, badRef(ref, "no scheme; expected managedhsm:, akv:, azihsm://, hsmbridge: or pkcs11:")
	}
	switch Scheme(strings.ToLower(scheme)) {
	case SchemeManagedHSM:
		return parseColonForm(ref, SchemeManagedHSM, rest)
	case SchemeGeneric:
		return parseColonForm(ref, SchemeGeneric, rest)
	case SchemeAKV:
		return parseAKV(ref, rest)
	case SchemeAzIHSM:
		return parseAzIHSM(ref, rest)
	case SchemePKCS11:
		return parsePKCS11Ref(ref)
	}
	return KeyRef{}, badRef(ref, "unknown scheme %q; expected managedhsm, akv, azihsm, hsmbridge or pkcs11", scheme)
}

// parseColonForm reads <namespace>:<name>[?version=<v>].
func parseColonForm(ref string, scheme Scheme, rest string) (KeyRef, error) {
	body, query, hasQuery := strings.Cut(rest, "?")
	ns, name, ok := strings.Cut(body, ":")
	if !ok {
		return KeyRef{}, badRef(ref, "expected %s:<namespace>:<key>", scheme)
	}
	if strings.Contains(name, ":") {
		return KeyRef{}, badRef(ref, "too many ':' separators")
	}
	r := KeyRef{Scheme: scheme, Namespace: ns, Name: name}
	if hasQuery {
		values, err := url.ParseQuery(query)
		if err != nil {
			return KeyRef{}, badRef(ref, "bad query %q", query)
		}
		for k, v := range values {
			if k != "version" {
				return KeyRef{}, badRef(ref, "unknown parameter %q (only version= is known)", k)
			}
			if len(v) != 1 {
				return KeyRef{}, badRef(ref, "version given %d times", len(v))
			}
			r.Version = v[0]
			if r.Version == "" {
				return KeyRef{}, badRef(ref, "empty version")
			}
		}
	}
	return r, r.validate(ref)
}

// parseAKV reads vault=<v>,name=<k>[,version=<ver>] in any order.
func parseAKV(ref, rest string) (KeyRef, error) {
	r := KeyRef{Scheme: SchemeManagedHSM}
	seen := map[string]bool{}
	for _, field := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(field, "=")
		k = strings.TrimSpace(k)
		if !ok {
			return KeyRef{}, badRef(ref, "field %q is not key=value", field)
		}
		if seen[k] {
			return KeyRef{}, badRef(ref, "field %q given twice", k)
		}
		seen[k] = true
		switch k {
		case "vault":
			r.Namespace = v
		case "name":
			r.Name = v
		case "version":
			if v == "" {
				return KeyRef{}, badRef(ref, "empty version")
			}
			r.Version = v
		default:
			return KeyRef{}, badRef(ref, "unknown field %q (expected vault, name, version)", k)
		}
	}
	if r.Namespace == "" {
		return KeyRef{}, badRef(ref, "missing vault=")
	}
	if r.Name == "" {
		return KeyRef{}, badRef(ref, "missing name=")
	}
	return r, r.validate(ref)
}

// parseAzIHSM reads //<path>;type=ec|rsa|rsa-pss (type case-insensitive).
func parseAzIHSM(ref, rest string) (KeyRef, error) {
	if !strings.HasPrefix(rest, "//") {
		return KeyRef{}, badRef(ref, "expected azihsm://<path>;type=ec|rsa|rsa-pss")
	}
	parts := strings.Split(rest[2:], ";")
	r := KeyRef{Scheme: SchemeAzIHSM, Name: parts[0]}
	if r.Name == "" {
		return KeyRef{}, badRef(ref, "empty path")
	}
	if !utf8.ValidString(r.Name) {
		// A reference travels as text (a UTF8String in a key-reference
		// file, a protobuf string to hsmhost): a path that is not UTF-8
		// could be parsed here but never sent or read back.
		return KeyRef{}, badRef(ref, "path is not valid UTF-8")
	}
	for _, attr := range parts[1:] {
		k, v, _ := strings.Cut(attr, "=")
		if strings.EqualFold(k, "version") {
			// Not a user's attribute: hsmhost names an opened masked key's
			// handle this way.
			if r.Version != "" || !versionPattern.MatchString(v) {
				return KeyRef{}, badRef(ref, "bad or repeated version attribute")
			}
			r.Version = v
			continue
		}
		if !strings.EqualFold(k, "type") {
			return KeyRef{}, badRef(ref, "unknown attribute %q (only type= is known)", k)
		}
		if r.Type != "" {
			return KeyRef{}, badRef(ref, "type given twice")
		}
		switch t := AzIHSMKeyType(strings.ToLower(v)); t {
		case AzIHSMTypeEC, AzIHSMTypeRSA, AzIHSMTypeRSAPSS:
			r.Type = t
		default:
			return KeyRef{}, badRef(ref, "type %q is not ec, rsa or rsa-pss", v)
		}
	}
	if r.Type == "" {
		return KeyRef{}, badRef(ref, "missing ;type=ec|rsa|rsa-pss")
	}
	return r, nil
}

func (r KeyRef) validate(ref string) error {
	switch r.Scheme {
	case SchemeManagedHSM:
		if !hsmNamePattern.MatchString(r.Namespace) {
			return badRef(ref, "HSM name %q must be 3-24 letters, digits or hyphens, starting with a letter", r.Namespace)
		}
		if !akvKeyNamePattern.MatchString(r.Name) {
			return badRef(ref, "key name %q must be 1-127 letters, digits or hyphens", r.Name)
		}
	case SchemeGeneric:
		if !genericPattern.MatchString(r.Namespace) {
			return badRef(ref, "namespace %q must be 1-127 letters, digits, '.', '_' or '-'", r.Namespace)
		}
		if !genericPattern.MatchString(r.Name) {
			return badRef(ref, "key name %q must be 1-127 letters, digits, '.', '_' or '-'", r.Name)
		}
	}
	if r.Version != "" && !versionPattern.MatchString(r.Version) {
		return badRef(ref, "version %q must be 1-64 letters or digits", r.Version)
	}
	return nil
}

// String returns the canonical form: akv: becomes managedhsm:, the azihsm
// type is lower case, and a version appears only when pinned.
func (r KeyRef) String() string {
	switch r.Scheme {
	case SchemeAzIHSM:
		s := "azihsm://" + r.Name + ";type=" + string(r.Type)
		if r.Version != "" {
			s += ";version=" + r.Version
		}
		return s
	case SchemePKCS11:
		return r.pkcs11String()
	case "":
		return ""
	}
	s := string(r.Scheme) + ":" + r.Namespace + ":" + r.Name
	if r.Version != "" {
		s += "?version=" + r.Version
	}
	return s
}

// WithVersion returns the reference pinned to version v.
func (r KeyRef) WithVersion(v string) KeyRef {
	r.Version = v
	return r
}

// MaskedNamespace is the namespace of keys opened from masked blobs; their
// name and version are the handle the backend gave when it opened the blob.
const MaskedNamespace = "@masked"

// ID is what a backend needs to find the key: the scheme is the host's
// business (routing), not the backend's. An azihsm:// reference names a
// masked-key file in the application's directory, which the backend never
// sees: its ID is the handle of the opened blob (the version).
func (r KeyRef) ID() KeyID {
	if r.Scheme == SchemeAzIHSM {
		return KeyID{Namespace: MaskedNamespace, Name: r.Version, Version: r.Version}
	}
	return KeyID{Namespace: r.Namespace, Name: r.Name, Version: r.Version}
}
