package core

import (
	"bytes"
	"encoding/pem"
	"errors"
	"testing"
)

// Fuzz targets for the key-reference PEM; seed corpora in
// testdata/fuzz/FuzzDecodeRefPEM and testdata/fuzz/FuzzRefPEMRoundTrip.

// FuzzDecodeRefPEM feeds arbitrary files to DecodeRefPEM. A failure has one
// of the kinds the decoder documents; a success is a valid reference that
// encodes to a file which decodes to the same reference.
func FuzzDecodeRefPEM(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRefPEM(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrInvalidReference) {
				t.Fatalf("DecodeRefPEM: error of kind %v: %v", KindOf(err), err)
			}
			return
		}
		if again, err := ParseKeyRef(r.String()); err != nil || again != r {
			t.Fatalf("decoded %+v, whose String() %q parses to %+v, %v", r, r.String(), again, err)
		}
		for _, encode := range []func(KeyRef) ([]byte, error){EncodeRefPEM, EncodeRefPKCS8PEM} {
			p, err := encode(r)
			if err != nil {
				t.Fatalf("decoded %+v from a file, but it does not encode: %v", r, err)
			}
			if again, err := DecodeRefPEM(p); err != nil || again != r {
				t.Fatalf("decoded %+v, re-encoded to\n%s\nwhich decodes to %+v, %v", r, p, again, err)
			}
		}
	})
}

// FuzzRefPEMRoundTrip encodes every reference that parses, in both forms,
// and decodes the file alone, after another PEM block (HAProxy puts the
// certificate first) and before one: each gives back the same reference.
// The file holds the canonical form and nothing else. The other block is
// also tried as a "PRIVATE KEY" of another algorithm, which is passed over.
func FuzzRefPEMRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string, other []byte) {
		r, err := ParseKeyRef(in)
		if err != nil {
			return
		}
		forms := []struct {
			label  string
			encode func(KeyRef) ([]byte, error)
		}{{RefPEMType, EncodeRefPEM}, {RefPKCS8PEMType, EncodeRefPKCS8PEM}}
		for _, form := range forms {
			p, err := form.encode(r)
			if err != nil {
				t.Fatalf("encoding %+v (parsed from %q) as %q: %v", r, in, form.label, err)
			}
			block, rest := pem.Decode(p)
			if block == nil || block.Type != form.label || len(rest) != 0 || len(block.Headers) != 0 {
				t.Fatalf("%+v is not one %q block:\n%s", r, form.label, p)
			}
			for _, label := range []string{"CERTIFICATE", RefPKCS8PEMType} {
				if label == RefPKCS8PEMType && bytes.Contains(other, refPKCS8AlgorithmID) {
					continue // might be one of ours
				}
				cert := pem.EncodeToMemory(&pem.Block{Type: label, Bytes: other})
				for _, file := range [][]byte{p, append(bytes.Clone(cert), p...), append(bytes.Clone(p), cert...)} {
					got, err := DecodeRefPEM(file)
					if err != nil || got != r {
						t.Fatalf("%+v as %q decodes to %+v, %v from\n%s", r, form.label, got, err, file)
					}
				}
			}
		}
	})
}
