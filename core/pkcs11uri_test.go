package core

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePKCS11URIRFCExamples(t *testing.T) {
	bad := map[string]string{
		"pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91": "names no private key",
		"pkcs11:object=k;type=public":          "names no private key",
		"pkcs11:object=k?pin-value=1234":       "carries no PIN",
		"pkcs11:object=k?pin-source=file:/p":   "carries no PIN",
		"pkcs11:object=k?module-name=softhsm2": "module",
		"pkcs11:object=k?module-path=/x.so":    "module",
		"pkcs11:token=t":                       "missing object",
		"pkcs11:object=a;object=b":             "given twice",
		"pkcs11:object=a%2":                    "percent-escape",
		"pkcs11:object=a%zz":                   "percent-escape",
		"pkcs11:object=a b":                    "must be percent-encoded",
		"pkcs11:object=a;color=red":            "unknown attribute",
		"pkcs11:object=a;id=%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00": "at most 32",
	}
	for in, want := range bad {
		_, err := ParseKeyRef(in)
		if err == nil || !errors.Is(err, ErrInvalidReference) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "pkcs11:") {
			t.Errorf("ParseKeyRef(%q) = %v, want error containing %q", in, err, want)
		}
	}
	good := map[string]KeyRef{
		"pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-key;type=private;id=%69%95%3E%5C%F4%BD%EC%91": {Scheme: SchemePKCS11, Namespace: "The Software PKCS#11 Softtoken", Name: "my-key", Version: "69953e5cf4bdec91"},
		"pkcs11:object=my-key;x-vendor=1?x-q=2":                                  {Scheme: SchemePKCS11, Name: "my-key"},
		"pkcs11:token=tok;object=web%20key;serial=1;slot-id=3;library-version=1": {Scheme: SchemePKCS11, Namespace: "tok", Name: "web key"},
	}
	for in, want := range good {
		r, err := ParseKeyRef(in)
		if err != nil || r != want {
			t.Fatalf("ParseKeyRef(%q) = %+v, %v; want %+v", in, r, err, want)
		}
		again, err := ParseKeyRef(r.String())
		if err != nil || again != r {
			t.Fatalf("round trip of %q via %q: %+v, %v", in, r.String(), again, err)
		}
	}
	r := KeyRef{Scheme: SchemePKCS11, Namespace: "tok", Name: "web key"}
	if got, want := r.WithVersion("0aff").String(), "pkcs11:token=tok;object=web%20key;id=%0A%FF;type=private"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	v := r.WithVersion("v1") // a backend's version that is not hex
	if s := v.String(); !strings.Contains(s, "x-hsmbridge-version=v1") {
		t.Errorf("String = %q", s)
	} else if again, err := ParseKeyRef(s); err != nil || again != v {
		t.Errorf("round trip %q: %+v %v", s, again, err)
	}
}

func FuzzPKCS11URI(f *testing.F) {
	f.Add("pkcs11:token=tok;object=web%20key;id=%01;type=private")
	f.Add("pkcs11:object=a?x-y=1")
	f.Fuzz(func(t *testing.T, in string) {
		r, err := ParseKeyRef("pkcs11:" + in)
		if err != nil {
			return
		}
		s := r.String()
		again, err := ParseKeyRef(s)
		if err != nil || again != r || again.String() != s {
			t.Fatalf("%q: %+v -> %q -> %+v, %v", in, r, s, again, err)
		}
	})
}
