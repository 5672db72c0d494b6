package core

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// Fuzz targets for the key-reference parser. The seed corpus is in
// testdata/fuzz/FuzzParseKeyRef; without -fuzz, `go test` runs each seed
// once, so the properties below are checked in CI on every push.
// scripts/fuzz.sh runs the target with the fuzzing engine.

// FuzzParseKeyRef checks, for any string:
//   - a failure is an invalid-reference error that quotes the input;
//   - a success is a reference in one of the canonical schemes whose
//     String() parses again to the same value, and String() is a fixed
//     point (the canonical form of the canonical form is itself).
func FuzzParseKeyRef(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string) {
		r, err := ParseKeyRef(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidReference) {
				t.Fatalf("ParseKeyRef(%q): error of kind %v, want %v: %v", in, KindOf(err), KindInvalidReference, err)
			}
			if !strings.Contains(err.Error(), strconv.Quote(in)) {
				t.Fatalf("ParseKeyRef(%q): error %q does not quote the reference", in, err)
			}
			return
		}
		switch r.Scheme {
		case SchemeManagedHSM, SchemeGeneric, SchemePKCS11:
			if r.Type != "" {
				t.Fatalf("ParseKeyRef(%q): %s reference with a type: %+v", in, r.Scheme, r)
			}
		case SchemeAzIHSM:
			if r.Namespace != "" {
				t.Fatalf("ParseKeyRef(%q): azihsm reference with a namespace: %+v", in, r)
			}
			switch r.Type {
			case AzIHSMTypeEC, AzIHSMTypeRSA, AzIHSMTypeRSAPSS:
			default:
				t.Fatalf("ParseKeyRef(%q): azihsm type %q", in, r.Type)
			}
		default:
			t.Fatalf("ParseKeyRef(%q): scheme %q is not canonical", in, r.Scheme)
		}
		if r.Name == "" {
			t.Fatalf("ParseKeyRef(%q): empty name: %+v", in, r)
		}
		s := r.String()
		if !strings.HasPrefix(s, string(r.Scheme)+":") {
			t.Fatalf("ParseKeyRef(%q).String() = %q does not start with %s:", in, s, r.Scheme)
		}
		again, err := ParseKeyRef(s)
		if err != nil {
			t.Fatalf("ParseKeyRef(%q) = %+v, but its String() %q does not parse: %v", in, r, s, err)
		}
		if again != r {
			t.Fatalf("ParseKeyRef(%q) = %+v, but ParseKeyRef(String() = %q) = %+v", in, r, s, again)
		}
		if again.String() != s {
			t.Fatalf("String() is not canonical: %q then %q", s, again.String())
		}
		if r.Scheme != SchemeAzIHSM {
			if id := r.ID(); id != (KeyID{Namespace: r.Namespace, Name: r.Name, Version: r.Version}) {
				t.Fatalf("ParseKeyRef(%q).ID() = %+v", in, id)
			}
		}
	})
}
