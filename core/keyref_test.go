package core

import (
	"errors"
	"strings"
	"testing"
)

func TestParseKeyRefCanonicalForms(t *testing.T) {
	cases := []struct{ in, canonical string }{
		{"managedhsm:MyHSM:mykey", "managedhsm:MyHSM:mykey"},
		{"managedhsm:MyHSM:mykey?version=0123456789abcdef0123456789abcdef", "managedhsm:MyHSM:mykey?version=0123456789abcdef0123456789abcdef"},
		{"akv:vault=MyHSM,name=mykey", "managedhsm:MyHSM:mykey"},
		{"akv:name=mykey,vault=MyHSM,version=abc123", "managedhsm:MyHSM:mykey?version=abc123"},
		{"MANAGEDHSM:MyHSM:k-1", "managedhsm:MyHSM:k-1"},
		{"azihsm://./key.bin;type=EC", "azihsm://./key.bin;type=ec"},
		{"azihsm:///var/lib/azihsm/rsa.bin;type=rsa-pss", "azihsm:///var/lib/azihsm/rsa.bin;type=rsa-pss"},
		{"hsmbridge:acme.partition-1:signing_key", "hsmbridge:acme.partition-1:signing_key"},
		{"hsmbridge:ns:k?version=7", "hsmbridge:ns:k?version=7"},
	}
	for _, c := range cases {
		r, err := ParseKeyRef(c.in)
		if err != nil {
			t.Errorf("ParseKeyRef(%q): %v", c.in, err)
			continue
		}
		if got := r.String(); got != c.canonical {
			t.Errorf("ParseKeyRef(%q).String() = %q, want %q", c.in, got, c.canonical)
		}
		again, err := ParseKeyRef(r.String())
		if err != nil || again != r {
			t.Errorf("canonical form of %q does not round-trip: %v %+v", c.in, err, again)
		}
	}
}

func TestParseKeyRefFields(t *testing.T) {
	r, err := ParseKeyRef("akv:vault=MyHSM,name=mykey,version=v1")
	if err != nil {
		t.Fatal(err)
	}
	want := KeyRef{Scheme: SchemeManagedHSM, Namespace: "MyHSM", Name: "mykey", Version: "v1"}
	if r != want {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	if id := r.ID(); id != (KeyID{"MyHSM", "mykey", "v1"}) {
		t.Fatalf("ID() = %+v", id)
	}
	az, err := ParseKeyRef("azihsm://./ec.bin;type=ec")
	if err != nil || az.Name != "./ec.bin" || az.Type != AzIHSMTypeEC {
		t.Fatalf("azihsm: %+v %v", az, err)
	}
}

func TestParseKeyRefErrorsQuoteTheReferenceAndSayWhy(t *testing.T) {
	cases := []struct{ in, why string }{
		{"", "no scheme"},
		{"mykey", "no scheme"},
		{"tpm2:token=x", "unknown scheme"},
		{"managedhsm:MyHSM", "expected managedhsm:<namespace>:<key>"},
		{"managedhsm:MyHSM:a:b", "too many"},
		{"managedhsm:MyHSM:", "key name"},
		{"managedhsm:1HSM:k", "HSM name"},
		{"managedhsm:MyHSM:my_key", "key name"},
		{"managedhsm:MyHSM:k?ver=1", "unknown parameter"},
		{"managedhsm:MyHSM:k?version=", "empty version"},
		{"managedhsm:MyHSM:k?version=a&version=b", "2 times"},
		{"managedhsm:MyHSM:k?version=a/b", "version"},
		{"akv:vault=MyHSM", "missing name"},
		{"akv:name=k", "missing vault"},
		{"akv:vault=MyHSM,name=k,colour=red", "unknown field"},
		{"akv:vault=MyHSM,vault=X,name=k", "given twice"},
		{"akv:vault", "not key=value"},
		{"azihsm://./k.bin", "missing ;type"},
		{"azihsm://./k.bin;type=dsa", "not ec, rsa or rsa-pss"},
		{"azihsm:./k.bin;type=ec", "expected azihsm://"},
		{"azihsm://;type=ec", "empty path"},
		{"hsmbridge:ns:", "key name"},
	}
	for _, c := range cases {
		_, err := ParseKeyRef(c.in)
		if err == nil {
			t.Errorf("ParseKeyRef(%q) succeeded", c.in)
			continue
		}
		if !errors.Is(err, ErrInvalidReference) {
			t.Errorf("ParseKeyRef(%q): kind %v", c.in, KindOf(err))
		}
		msg := err.Error()
		if !strings.Contains(msg, "\""+c.in+"\"") && !strings.Contains(msg, `"`+strings.ReplaceAll(c.in, `"`, `\"`)+`"`) {
			t.Errorf("ParseKeyRef(%q): message %q does not quote the reference", c.in, msg)
		}
		if !strings.Contains(msg, c.why) {
			t.Errorf("ParseKeyRef(%q): message %q does not say %q", c.in, msg, c.why)
		}
	}
}

func TestRefPEMRoundTripAmongOtherBlocks(t *testing.T) {
	ref, _ := ParseKeyRef("akv:vault=MyHSM,name=tls")
	p, err := EncodeRefPEM(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(p), "-----BEGIN HSMBRIDGE KEY REFERENCE-----\n") {
		t.Fatalf("unexpected PEM:\n%s", p)
	}
	bundle := "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n" + string(p)
	got, err := DecodeRefPEM([]byte(bundle))
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != "managedhsm:MyHSM:tls" {
		t.Fatalf("decoded %q", got)
	}
	if _, err := DecodeRefPEM([]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n")); err == nil {
		t.Fatal("a file without a reference block decoded")
	}
}
