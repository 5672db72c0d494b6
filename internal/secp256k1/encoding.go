package secp256k1

import (
	"crypto/subtle"
	"encoding/asn1"
	"errors"
	"math/big"
)

// The encodings OpenSSL reads and writes for the curve: RFC 5480
// SubjectPublicKeyInfo, RFC 5208 PKCS#8 around an RFC 5915 (SEC 1)
// ECPrivateKey, and the DER ECDSA-Sig-Value. Only the named curve is
// accepted (not explicit parameters), and public points only uncompressed,
// as every backend and OpenSSL's default output write them.

var (
	// OID is secp256k1's object identifier (SEC 2: 1.3.132.0.10).
	OID            = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
)

// ErrOtherKey says the DER is well formed but holds no secp256k1 key
// (another curve or algorithm), for callers that try other parsers next.
var ErrOtherKey = errors.New("secp256k1: not a secp256k1 key")

type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

type spki struct {
	Algorithm algorithmIdentifier
	PublicKey asn1.BitString
}

type pkcs8 struct {
	Version    int
	Algorithm  algorithmIdentifier
	PrivateKey []byte
	// [0] attributes: encoding/asn1 ignores what follows a struct's fields
}

type ecPrivateKey struct {
	Version       int
	PrivateKey    []byte
	NamedCurveOID asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey     asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

func algorithm() (algorithmIdentifier, error) {
	params, err := asn1.Marshal(OID)
	if err != nil {
		return algorithmIdentifier{}, err
	}
	return algorithmIdentifier{Algorithm: oidECPublicKey, Parameters: asn1.RawValue{FullBytes: params}}, nil
}

// isOurs checks an AlgorithmIdentifier: id-ecPublicKey with secp256k1.
func isOurs(a algorithmIdentifier) bool {
	if !a.Algorithm.Equal(oidECPublicKey) {
		return false
	}
	var curve asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(a.Parameters.FullBytes, &curve)
	return err == nil && len(rest) == 0 && curve.Equal(OID)
}

// MarshalPKIXPublicKey is the key's DER SubjectPublicKeyInfo.
func MarshalPKIXPublicKey(pub *PublicKey) ([]byte, error) {
	alg, err := algorithm()
	if err != nil {
		return nil, err
	}
	point := pub.Bytes()
	return asn1.Marshal(spki{Algorithm: alg, PublicKey: asn1.BitString{Bytes: point, BitLength: 8 * len(point)}})
}

// ParsePKIXPublicKey reads a DER SubjectPublicKeyInfo; ErrOtherKey if it is
// not secp256k1's.
func ParsePKIXPublicKey(der []byte) (*PublicKey, error) {
	var s spki
	rest, err := asn1.Unmarshal(der, &s)
	if err != nil || len(rest) != 0 {
		return nil, errors.New("secp256k1: not a DER SubjectPublicKeyInfo")
	}
	if !isOurs(s.Algorithm) {
		return nil, ErrOtherKey
	}
	if s.PublicKey.BitLength != 8*len(s.PublicKey.Bytes) {
		return nil, errors.New("secp256k1: public key bit string is not whole bytes")
	}
	return ParseUncompressed(s.PublicKey.Bytes)
}

// MarshalPKCS8PrivateKey is the key as DER PKCS#8 (the inner ECPrivateKey
// with the public key and without the curve, which the outer
// AlgorithmIdentifier names), as OpenSSL writes it.
func MarshalPKCS8PrivateKey(k *PrivateKey) ([]byte, error) {
	alg, err := algorithm()
	if err != nil {
		return nil, err
	}
	point := k.PublicKey.Bytes()
	inner, err := asn1.Marshal(ecPrivateKey{Version: 1, PrivateKey: k.Bytes(),
		PublicKey: asn1.BitString{Bytes: point, BitLength: 8 * len(point)}})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(pkcs8{Version: 0, Algorithm: alg, PrivateKey: inner})
}

// ParsePKCS8PrivateKey reads a DER PKCS#8 private key; ErrOtherKey if it is
// not secp256k1's.
func ParsePKCS8PrivateKey(der []byte) (*PrivateKey, error) {
	var p pkcs8
	rest, err := asn1.Unmarshal(der, &p)
	if err != nil || len(rest) != 0 {
		return nil, errors.New("secp256k1: not a DER PKCS#8 private key")
	}
	if !isOurs(p.Algorithm) {
		return nil, ErrOtherKey
	}
	if p.Version != 0 && p.Version != 1 {
		return nil, errors.New("secp256k1: unknown PKCS#8 version")
	}
	return parseECPrivateKey(p.PrivateKey, true)
}

// ParseECPrivateKey reads a DER SEC 1 ECPrivateKey ("EC PRIVATE KEY"),
// which must name the curve; ErrOtherKey if it names another.
func ParseECPrivateKey(der []byte) (*PrivateKey, error) {
	return parseECPrivateKey(der, false)
}

func parseECPrivateKey(der []byte, inPKCS8 bool) (*PrivateKey, error) {
	var e ecPrivateKey
	rest, err := asn1.Unmarshal(der, &e)
	if err != nil || len(rest) != 0 {
		return nil, errors.New("secp256k1: not a DER EC private key")
	}
	switch {
	case len(e.NamedCurveOID) != 0 && !e.NamedCurveOID.Equal(OID):
		return nil, ErrOtherKey
	case len(e.NamedCurveOID) == 0 && !inPKCS8:
		return nil, errors.New("secp256k1: the EC private key does not name its curve")
	}
	if e.Version != 1 {
		return nil, errors.New("secp256k1: unknown EC private key version")
	}
	if len(e.PrivateKey) != Size {
		return nil, errors.New("secp256k1: the private scalar is not 32 bytes")
	}
	k, err := NewPrivateKey(e.PrivateKey)
	if err != nil {
		return nil, err
	}
	if pub := e.PublicKey.Bytes; len(pub) != 0 && !matches(&k.PublicKey, pub) {
		return nil, errors.New("secp256k1: the public key in the file is not the private key's")
	}
	return k, nil
}

// matches compares a point with an encoded one, uncompressed or compressed.
func matches(p *PublicKey, enc []byte) bool {
	switch {
	case len(enc) == 1+2*Size && enc[0] == 4:
		return subtle.ConstantTimeCompare(enc, p.Bytes()) == 1
	case len(enc) == 1+Size && (enc[0] == 2 || enc[0] == 3):
		x := p.X.FillBytes(make([]byte, Size))
		return subtle.ConstantTimeCompare(enc[1:], x) == 1 && uint(enc[0]&1) == p.Y.Bit(0)
	}
	return false
}

func marshalSig(r, s *big.Int) ([]byte, error) {
	return asn1.Marshal(struct{ R, S *big.Int }{r, s})
}

func parseSig(der []byte) (*big.Int, *big.Int, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 {
		return nil, nil, errors.New("secp256k1: not a DER ECDSA signature")
	}
	return sig.R, sig.S, nil
}

// RawToASN1 turns JWS's r‖s (64 bytes) into a DER ECDSA-Sig-Value.
func RawToASN1(raw []byte) ([]byte, error) {
	if len(raw) != 2*Size {
		return nil, errors.New("secp256k1: a raw signature is 64 bytes")
	}
	return marshalSig(new(big.Int).SetBytes(raw[:Size]), new(big.Int).SetBytes(raw[Size:]))
}
