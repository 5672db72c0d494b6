package core

import (
	"bytes"
	"encoding/asn1"
	"encoding/pem"
)

// A key-reference file lets programs that only take a key file path use a
// key held by a backend. It holds the reference and nothing secret, in one
// of two forms around the same DER:
//
//	KeyReferenceFile ::= SEQUENCE {
//	    version    UTF8String,  -- exactly "hsmbridge-keyref-v1"
//	    reference  UTF8String   -- a key reference, e.g. managedhsm:MyHSM:mykey
//	}
//
// The label form (EncodeRefPEM) has a label of its own:
//
//	-----BEGIN HSMBRIDGE KEY REFERENCE-----
//	base64(DER of KeyReferenceFile)
//	-----END HSMBRIDGE KEY REFERENCE-----
//
// The PKCS#8 form (EncodeRefPKCS8PEM) is for programs that pick PEM blocks
// by their label and skip one they do not know (Apache's
// SSLProxyMachineCertificateFile, Postfix's smtpd_tls_chain_files): a
// PKCS#8 PrivateKeyInfo whose algorithm is hsmbridge's own and whose
// privateKey is the KeyReferenceFile, so still nothing secret:
//
//	-----BEGIN PRIVATE KEY-----
//	base64(DER of PrivateKeyInfo {
//	    version              0,
//	    privateKeyAlgorithm  { RefPKCS8OID },  -- no parameters
//	    privateKey           OCTET STRING (DER of KeyReferenceFile) })
//	-----END PRIVATE KEY-----
//
// The project has no registered OID arc, so RefPKCS8OID is a UUID-derived
// OID (ITU-T X.667 / RFC 4122: 2.25.<the UUID as one integer>, which needs
// no registration) from the UUID 64bb7953-9efb-480e-bdd7-6f28868a1feb.
//
// The OpenSSL front end (adapters/openssl/provider/decoder.c) decodes both
// forms with an ASN.1 template.
const (
	RefPEMType    = "HSMBRIDGE KEY REFERENCE"
	RefPEMVersion = "hsmbridge-keyref-v1"
	// RefPKCS8PEMType is the PKCS#8 form's label, PKCS#8's own.
	RefPKCS8PEMType = "PRIVATE KEY"
	// RefPKCS8OID is the PKCS#8 form's algorithm.
	RefPKCS8OID = "2.25.133896219887739542807793727763915612139"
	// RefPKCS8UUID is the UUID RefPKCS8OID is made from.
	RefPKCS8UUID = "64bb7953-9efb-480e-bdd7-6f28868a1feb"
)

// refPKCS8AlgorithmID is the DER of the PKCS#8 form's AlgorithmIdentifier,
// SEQUENCE { OBJECT IDENTIFIER RefPKCS8OID }. The OID's last arc is a
// 128-bit number, too large for encoding/asn1.ObjectIdentifier, so the
// bytes are written out; refpem_test.go derives them from RefPKCS8UUID.
var refPKCS8AlgorithmID = []byte{
	0x30, 0x16, 0x06, 0x14,
	0x69, 0x81, 0xc9, 0xbb, 0xbc, 0xd4, 0xf3, 0xef, 0xda, 0xa0,
	0x9d, 0xbd, 0xeb, 0xdb, 0xe5, 0x88, 0xb4, 0xa8, 0xbf, 0x6b,
}

// refPKCS8 is PKCS#8's PrivateKeyInfo as the PKCS#8 form fills it. Rest
// holds whatever follows privateKey (attributes): the form has none.
type refPKCS8 struct {
	Version    int
	Algorithm  asn1.RawValue
	PrivateKey []byte
	Rest       asn1.RawValue `asn1:"optional"`
}

type keyReferenceFile struct {
	Version   string `asn1:"utf8"`
	Reference string `asn1:"utf8"`
}

// EncodeRefPEM returns the key-reference PEM, in the label form, for a
// parsed reference.
func EncodeRefPEM(ref KeyRef) ([]byte, error) {
	der, err := refDER(ref)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: RefPEMType, Bytes: der}), nil
}

// EncodeRefPKCS8PEM returns the key-reference PEM, in the PKCS#8 form, for
// a parsed reference.
func EncodeRefPKCS8PEM(ref KeyRef) ([]byte, error) {
	der, err := RefPKCS8DER(ref)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: RefPKCS8PEMType, Bytes: der}), nil
}

// RefPKCS8DER returns the PKCS#8 form's DER (the PEM block's contents) for
// a parsed reference.
func RefPKCS8DER(ref KeyRef) ([]byte, error) {
	inner, err := refDER(ref)
	if err != nil {
		return nil, err
	}
	der, err := asn1.Marshal(refPKCS8{Algorithm: asn1.RawValue{FullBytes: refPKCS8AlgorithmID}, PrivateKey: inner})
	if err != nil {
		return nil, Errorf(KindInternal, "encoding key reference: %w", err)
	}
	return der, nil
}

func refDER(ref KeyRef) ([]byte, error) {
	der, err := asn1.Marshal(keyReferenceFile{Version: RefPEMVersion, Reference: ref.String()})
	if err != nil {
		return nil, Errorf(KindInternal, "encoding key reference: %w", err)
	}
	return der, nil
}

// DecodeRefPEM finds the first key-reference block in data, in either
// form, wherever it is among other PEM blocks, and parses its reference.
// A "PRIVATE KEY" block of another algorithm (a real key) is passed over.
func DecodeRefPEM(data []byte) (KeyRef, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return KeyRef{}, Errorf(KindInvalidInput, "no %q PEM block found, nor a %q block of algorithm %s", RefPEMType, RefPKCS8PEMType, RefPKCS8OID)
		}
		inner := block.Bytes
		switch block.Type {
		case RefPEMType:
		case RefPKCS8PEMType:
			var p8 refPKCS8
			trailing, err := asn1.Unmarshal(block.Bytes, &p8)
			if err != nil || !bytes.Equal(p8.Algorithm.FullBytes, refPKCS8AlgorithmID) {
				continue // another algorithm's private key
			}
			if p8.Version != 0 || len(p8.Rest.FullBytes) != 0 || len(bytes.TrimSpace(trailing)) != 0 {
				return KeyRef{}, Errorf(KindInvalidInput, "malformed %s block of algorithm %s: not a version 0 PrivateKeyInfo without attributes", RefPKCS8PEMType, RefPKCS8OID)
			}
			inner = p8.PrivateKey
		default:
			continue
		}
		var f keyReferenceFile
		trailing, err := asn1.Unmarshal(inner, &f)
		if err != nil || len(bytes.TrimSpace(trailing)) != 0 {
			return KeyRef{}, Errorf(KindInvalidInput, "malformed %s block", block.Type)
		}
		if f.Version != RefPEMVersion {
			return KeyRef{}, Errorf(KindUnsupported, "key reference file version %q is not %q", f.Version, RefPEMVersion)
		}
		return ParseKeyRef(f.Reference)
	}
}
