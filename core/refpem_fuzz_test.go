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
		p, err := EncodeRefPEM(r)
		if err != nil {
			t.Fatalf("decoded %+v from a file, but it does not encode: %v", r, err)
		}
		if again, err := DecodeRefPEM(p); err != nil || again != r {
			t.Fatalf("decoded %+v, re-encoded to\n%s\nwhich decodes to %+v, %v", r, p, again, err)
		}
	})
}

// FuzzRefPEMRoundTrip encodes every reference that parses and decodes the
// file alone, after another PEM block (HAProxy puts the certificate first)
// and before one: each gives back the same reference. The file holds the
// canonical form and nothing else.
func FuzzRefPEMRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string, other []byte) {
		r, err := ParseKeyRef(in)
		if err != nil {
			return
		}
		p, err := EncodeRefPEM(r)
		if err != nil {
			t.Fatalf("EncodeRefPEM(%+v) (parsed from %q): %v", r, in, err)
		}
		block, rest := pem.Decode(p)
		if block == nil || block.Type != RefPEMType || len(rest) != 0 || len(block.Headers) != 0 {
			t.Fatalf("EncodeRefPEM(%+v) is not one %q block:\n%s", r, RefPEMType, p)
		}
		cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other})
		for _, file := range [][]byte{p, append(bytes.Clone(cert), p...), append(bytes.Clone(p), cert...)} {
			got, err := DecodeRefPEM(file)
			if err != nil || got != r {
				t.Fatalf("EncodeRefPEM(%+v) decodes to %+v, %v from\n%s", r, got, err, file)
			}
		}
	})
}
