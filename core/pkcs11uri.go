package core

import (
	"encoding/hex"
	"strings"
)

// SchemePKCS11 is RFC 7512's pkcs11: URI scheme. hsmbridge accepts it so
// users of pkcs11-provider and libp11 keep their key names; hsmhost's config
// chooses the module, the token's PIN and (by routing) the backend.
const SchemePKCS11 Scheme = "pkcs11"

// PKCS11URI is a parsed RFC 7512 URI, reduced to what hsmbridge uses.
type PKCS11URI struct {
	Token  string // token= (may be empty)
	Object string // object=, the CKA_LABEL; required
	ID     []byte // id=, decoded; nil when absent
	Type   string // type=, empty or "private"
	// Version is hsmbridge's own x-hsmbridge-version= attribute: a backend
	// version that is not even-length hex and so cannot be an id.
	Version string
}

// pkcs11VersionAttr carries a version that cannot be written as id=.
const pkcs11VersionAttr = "x-hsmbridge-version"

const maxPKCS11ID = 32

func isUnreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// pk11Allowed reports whether c may appear unencoded in a value: RFC 7512
// pk11-pchar (path) or pk11-qchar (query).
func pk11Allowed(c byte, query bool) bool {
	if isUnreserved(c) {
		return true
	}
	switch c {
	case ':', '[', ']', '@', '!', '$', '\'', '(', ')', '*', '+', ',', '=':
		return true
	case '&':
		return !query
	case '/', '?', '|':
		return query
	}
	return false
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func pk11Decode(uri, attr, v string, query bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '%' {
			if i+2 >= len(v) {
				return "", badRef(uri, "attribute %s: bad percent-escape at end of value", attr)
			}
			h, ok1 := unhex(v[i+1])
			l, ok2 := unhex(v[i+2])
			if !ok1 || !ok2 {
				return "", badRef(uri, "attribute %s: bad percent-escape %q", attr, v[i:i+3])
			}
			b.WriteByte(h<<4 | l)
			i += 2
			continue
		}
		if !pk11Allowed(c, query) {
			return "", badRef(uri, "attribute %s: character %q must be percent-encoded", attr, c)
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

var pk11PathAttrs = map[string]bool{
	"token": true, "manufacturer": true, "serial": true, "model": true,
	"library-manufacturer": true, "library-description": true, "library-version": true,
	"object": true, "type": true, "id": true, "slot-description": true,
	"slot-manufacturer": true, "slot-id": true,
}

var pk11QueryAttrs = map[string]bool{
	"pin-source": true, "pin-value": true, "module-name": true, "module-path": true,
}

// ParsePKCS11URI parses s by RFC 7512's grammar and hsmbridge's rules: it
// must name a private key by object=, and carries neither a PIN nor a module.
// Token-identifying attributes other than token= are accepted and dropped.
func ParsePKCS11URI(s string) (PKCS11URI, error) {
	var u PKCS11URI
	if len(s) < 7 || !strings.EqualFold(s[:7], "pkcs11:") {
		return u, badRef(s, "not a pkcs11: URI")
	}
	rest := s[7:]
	path, query, hasQuery := strings.Cut(rest, "?")
	seen := map[string]bool{}
	var typ string
	hasType := false
	handle := func(part string, q bool) error {
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return badRef(s, "attribute %q is not name=value", part)
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return badRef(s, "bad attribute name %q", k)
			}
		}
		if seen[k] {
			return badRef(s, "attribute %s given twice", k)
		}
		seen[k] = true
		val, err := pk11Decode(s, k, v, q)
		if err != nil {
			return err
		}
		if k == pkcs11VersionAttr {
			if !versionPattern.MatchString(val) {
				return badRef(s, "%s %q must be 1-64 letters or digits", k, val)
			}
			u.Version = val
			return nil
		}
		if strings.HasPrefix(k, "x-") {
			return nil
		}
		known := pk11PathAttrs[k]
		if q {
			known = pk11QueryAttrs[k]
		}
		if !known {
			return badRef(s, "unknown attribute %q", k)
		}
		switch k {
		case "token":
			u.Token = val
		case "object":
			u.Object = val
		case "id":
			if len(val) > maxPKCS11ID {
				return badRef(s, "id is %d bytes; at most %d", len(val), maxPKCS11ID)
			}
			u.ID = []byte(val)
		case "type":
			typ, hasType = val, true
		case "pin-value", "pin-source":
			return badRef(s, "%s: a key reference carries no PIN; hsmhost's config gives the token's PIN", k)
		case "module-name", "module-path":
			return badRef(s, "%s: hsmhost's config chooses the PKCS#11 module", k)
		}
		return nil
	}
	if path != "" {
		for _, part := range strings.Split(path, ";") {
			if err := handle(part, false); err != nil {
				return PKCS11URI{}, err
			}
		}
	}
	if hasQuery && query != "" {
		for _, part := range strings.Split(query, "&") {
			if err := handle(part, true); err != nil {
				return PKCS11URI{}, err
			}
		}
	}
	if hasType && typ != "private" {
		return PKCS11URI{}, badRef(s, "type=%s names no private key", typ)
	}
	u.Type = typ
	if u.Object == "" {
		return PKCS11URI{}, badRef(s, "missing object= (the key's label)")
	}
	if u.ID != nil && u.Version != "" {
		return PKCS11URI{}, badRef(s, "both id and %s given", pkcs11VersionAttr)
	}
	return u, nil
}

func pk11Encode(v string) string {
	var b strings.Builder
	const hx = "0123456789ABCDEF"
	for i := 0; i < len(v); i++ {
		c := v[i]
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hx[c>>4])
			b.WriteByte(hx[c&15])
		}
	}
	return b.String()
}

func parsePKCS11Ref(ref string) (KeyRef, error) {
	u, err := ParsePKCS11URI(ref)
	if err != nil {
		return KeyRef{}, err
	}
	r := KeyRef{Scheme: SchemePKCS11, Namespace: u.Token, Name: u.Object, Version: u.Version}
	if u.ID != nil {
		r.Version = hex.EncodeToString(u.ID)
		if r.Version == "" {
			return KeyRef{}, badRef(ref, "empty id")
		}
	}
	return r, nil
}

// pkcs11IDVersion reports whether v can be written as id=: lowercase,
// even-length hex of at most 32 bytes.
func pkcs11IDVersion(v string) ([]byte, bool) {
	if v == "" || len(v)%2 != 0 || len(v) > 2*maxPKCS11ID || strings.ToLower(v) != v {
		return nil, false
	}
	b, err := hex.DecodeString(v)
	return b, err == nil
}

// pkcs11String is the canonical pkcs11: form. A version that is hex becomes
// id=; any other version (a backend's own) goes in x-hsmbridge-version=.
func (r KeyRef) pkcs11String() string {
	s := "pkcs11:"
	if r.Namespace != "" {
		s += "token=" + pk11Encode(r.Namespace) + ";"
	}
	s += "object=" + pk11Encode(r.Name)
	if r.Version != "" {
		if id, ok := pkcs11IDVersion(r.Version); ok {
			s += ";id="
			for _, c := range id {
				s += "%" + strings.ToUpper(hex.EncodeToString([]byte{c}))
			}
		} else {
			s += ";" + pkcs11VersionAttr + "=" + pk11Encode(r.Version)
		}
	}
	return s + ";type=private"
}
