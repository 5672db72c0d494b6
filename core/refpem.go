package core

import (
	"bytes"
	"encoding/asn1"
	"encoding/pem"
)

// A key-reference file lets programs that only take a key file path use a
// key held by a backend. It holds the reference and nothing secret:
//
//	-----BEGIN HSMBRIDGE KEY REFERENCE-----
//	base64(DER of KeyReferenceFile)
//	-----END HSMBRIDGE KEY REFERENCE-----
//
//	KeyReferenceFile ::= SEQUENCE {
//	    version    UTF8String,  -- exactly "hsmbridge-keyref-v1"
//	    reference  UTF8String   -- a key reference, e.g. managedhsm:MyHSM:mykey
//	}
//
// The OpenSSL front end decodes the same structure with an ASN.1 template.
const (
	RefPEMType    = "HSMBRIDGE KEY REFERENCE"
	RefPEMVersion = "hsmbridge-keyref-v1"
)

type keyReferenceFile struct {
	Version   string `asn1:"utf8"`
	Reference string `asn1:"utf8"`
}

// EncodeRefPEM returns the key-reference PEM for a parsed reference.
func EncodeRefPEM(ref KeyRef) ([]byte, error) {
	der, err := asn1.Marshal(keyReferenceFile{Version: RefPEMVersion, Reference: ref.String()})
	if err != nil {
		return nil, Errorf(KindInternal, "encoding key reference: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: RefPEMType, Bytes: der}), nil
}

// DecodeRefPEM finds the first key-reference block in data, wherever it is
// among other PEM blocks, and parses its reference.
func DecodeRefPEM(data []byte) (KeyRef, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return KeyRef{}, Errorf(KindInvalidInput, "no %q PEM block found", RefPEMType)
		}
		if block.Type != RefPEMType {
			continue
		}
		var f keyReferenceFile
		trailing, err := asn1.Unmarshal(block.Bytes, &f)
		if err != nil || len(bytes.TrimSpace(trailing)) != 0 {
			return KeyRef{}, Errorf(KindInvalidInput, "malformed %s block", RefPEMType)
		}
		if f.Version != RefPEMVersion {
			return KeyRef{}, Errorf(KindUnsupported, "key reference file version %q is not %q", f.Version, RefPEMVersion)
		}
		return ParseKeyRef(f.Reference)
	}
}
