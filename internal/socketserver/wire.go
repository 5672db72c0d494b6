package socketserver

import (
	"time"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
	"github.com/hsmbridge/hsmbridge/core"
)

var kindToProto = map[core.ErrorKind]hostapi.ErrorKind{
	core.KindInternal:            hostapi.ErrorKind_ERROR_KIND_INTERNAL,
	core.KindInvalidReference:    hostapi.ErrorKind_ERROR_KIND_INVALID_REFERENCE,
	core.KindNotFound:            hostapi.ErrorKind_ERROR_KIND_NOT_FOUND,
	core.KindOperationNotAllowed: hostapi.ErrorKind_ERROR_KIND_OPERATION_NOT_ALLOWED,
	core.KindUnsupported:         hostapi.ErrorKind_ERROR_KIND_UNSUPPORTED,
	core.KindInvalidInput:        hostapi.ErrorKind_ERROR_KIND_INVALID_INPUT,
	core.KindUnavailable:         hostapi.ErrorKind_ERROR_KIND_UNAVAILABLE,
	core.KindPermissionDenied:    hostapi.ErrorKind_ERROR_KIND_PERMISSION_DENIED,
	core.KindUnauthenticated:     hostapi.ErrorKind_ERROR_KIND_UNAUTHENTICATED,
	core.KindAlreadyExists:       hostapi.ErrorKind_ERROR_KIND_ALREADY_EXISTS,
	core.KindNoRoute:             hostapi.ErrorKind_ERROR_KIND_NO_ROUTE,
}

// KindToProto maps a domain error kind to the wire; unknown kinds are internal.
func KindToProto(k core.ErrorKind) hostapi.ErrorKind {
	if p, ok := kindToProto[k]; ok {
		return p
	}
	return hostapi.ErrorKind_ERROR_KIND_INTERNAL
}

// KindFromProto is the inverse of KindToProto.
func KindFromProto(p hostapi.ErrorKind) core.ErrorKind {
	for k, v := range kindToProto {
		if v == p {
			return k
		}
	}
	return core.KindInternal
}

var hashes = map[core.Hash]hostapi.Hash{
	core.SHA1: hostapi.Hash_HASH_SHA1, core.SHA224: hostapi.Hash_HASH_SHA224, core.SHA256: hostapi.Hash_HASH_SHA256,
	core.SHA384: hostapi.Hash_HASH_SHA384, core.SHA512: hostapi.Hash_HASH_SHA512,
}

// HashToProto and HashFromProto convert digest identifiers.
func HashToProto(h core.Hash) hostapi.Hash { return hashes[h] }

func HashFromProto(p hostapi.Hash) core.Hash {
	for k, v := range hashes {
		if v == p {
			return k
		}
	}
	return core.HashUnspecified
}

var paddings = map[core.SignaturePadding]hostapi.SignaturePadding{
	core.PaddingPKCS1v15: hostapi.SignaturePadding_SIGNATURE_PADDING_PKCS1V15,
	core.PaddingPSS:      hostapi.SignaturePadding_SIGNATURE_PADDING_PSS,
	core.PaddingECDSA:    hostapi.SignaturePadding_SIGNATURE_PADDING_ECDSA,
}

// SignatureSchemeToProto converts a signature scheme to the wire.
func SignatureSchemeToProto(s core.SignatureScheme) *hostapi.SignatureScheme {
	return &hostapi.SignatureScheme{Padding: paddings[s.Padding], Hash: HashToProto(s.Hash),
		SaltLength: int32(s.SaltLength), Mgf1Hash: HashToProto(s.MGF1Hash)}
}

// SignatureSchemeFromProto converts a signature scheme from the wire.
func SignatureSchemeFromProto(p *hostapi.SignatureScheme) core.SignatureScheme {
	s := core.SignatureScheme{Hash: HashFromProto(p.GetHash()), SaltLength: int(p.GetSaltLength()), MGF1Hash: HashFromProto(p.GetMgf1Hash())}
	for k, v := range paddings {
		if v == p.GetPadding() {
			s.Padding = k
		}
	}
	return s
}

// EncryptionSchemeToProto converts an encryption scheme to the wire.
func EncryptionSchemeToProto(s core.EncryptionScheme) *hostapi.EncryptionScheme {
	p := &hostapi.EncryptionScheme{OaepHash: HashToProto(s.OAEPHash), Mgf1Hash: HashToProto(s.MGF1Hash), Label: s.Label}
	switch s.Padding {
	case core.EncryptionPKCS1v15:
		p.Padding = hostapi.EncryptionPadding_ENCRYPTION_PADDING_PKCS1V15
	case core.EncryptionOAEP:
		p.Padding = hostapi.EncryptionPadding_ENCRYPTION_PADDING_OAEP
	}
	return p
}

// EncryptionSchemeFromProto converts an encryption scheme from the wire.
func EncryptionSchemeFromProto(p *hostapi.EncryptionScheme) core.EncryptionScheme {
	s := core.EncryptionScheme{OAEPHash: HashFromProto(p.GetOaepHash()), MGF1Hash: HashFromProto(p.GetMgf1Hash()), Label: p.GetLabel()}
	switch p.GetPadding() {
	case hostapi.EncryptionPadding_ENCRYPTION_PADDING_PKCS1V15:
		s.Padding = core.EncryptionPKCS1v15
	case hostapi.EncryptionPadding_ENCRYPTION_PADDING_OAEP:
		s.Padding = core.EncryptionOAEP
	}
	return s
}

var keyTypes = map[core.KeyType]hostapi.KeyType{
	core.KeyTypeRSA: hostapi.KeyType_KEY_TYPE_RSA, core.KeyTypeEC: hostapi.KeyType_KEY_TYPE_EC, core.KeyTypeOct: hostapi.KeyType_KEY_TYPE_OCT,
}

// KeyTypeToProto and KeyTypeFromProto convert key types.
func KeyTypeToProto(t core.KeyType) hostapi.KeyType { return keyTypes[t] }

func KeyTypeFromProto(p hostapi.KeyType) core.KeyType {
	for k, v := range keyTypes {
		if v == p {
			return k
		}
	}
	return ""
}

// KeyInfoToProto converts a key as the host reports it.
func KeyInfoToProto(reference, backend string, k core.KeyInfo) *hostapi.KeyInfo {
	p := &hostapi.KeyInfo{
		Reference: reference, Version: k.ID.Version, KeyType: KeyTypeToProto(k.Type), Bits: int32(k.Bits),
		Curve: string(k.Curve), PublicKeyDer: k.PublicKeyDER, Backend: backend, Enabled: k.Enabled,
	}
	if !k.Created.IsZero() {
		p.CreatedUnix = k.Created.Unix()
	}
	for _, u := range k.Usages {
		p.AllowedOps = append(p.AllowedOps, string(u))
	}
	return p
}

// KeyInfoFromProto is the inverse of KeyInfoToProto. The KeyID comes from
// the reference, which the host always sends in canonical form.
func KeyInfoFromProto(p *hostapi.KeyInfo) (reference, backend string, k core.KeyInfo) {
	k = core.KeyInfo{Type: KeyTypeFromProto(p.GetKeyType()), Bits: int(p.GetBits()), Curve: core.Curve(p.GetCurve()),
		PublicKeyDER: p.GetPublicKeyDer(), Enabled: p.GetEnabled()}
	if r, err := core.ParseKeyRef(p.GetReference()); err == nil {
		k.ID = r.ID()
	}
	k.ID.Version = p.GetVersion()
	if p.GetCreatedUnix() != 0 {
		k.Created = time.Unix(p.GetCreatedUnix(), 0)
	}
	for _, o := range p.GetAllowedOps() {
		k.Usages = append(k.Usages, core.KeyUsage(o))
	}
	return p.GetReference(), p.GetBackend(), k
}
