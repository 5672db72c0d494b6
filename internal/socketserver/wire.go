package socketserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hsmbridge/hsmbridge/api/hostapi"
	"github.com/hsmbridge/hsmbridge/core"
)

// MaxFrame is the largest message either side accepts.
const MaxFrame = 1 << 20

// FrameTooLargeError reports a length prefix above MaxFrame.
type FrameTooLargeError struct{ Size uint32 }

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("frame of %d bytes exceeds the %d-byte limit", e.Size, MaxFrame)
}

// frameChunk is all ReadFrame allocates for a body before its bytes come:
// a length prefix alone buys a client no more memory than this. The buffer
// then doubles, never past the announced length, as bytes arrive, so what a
// stalled frame holds is at most twice what was sent.
const frameChunk = 4 << 10

// ReadFrame reads one length-prefixed message body.
func ReadFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size > MaxFrame {
		return nil, &FrameTooLargeError{Size: size}
	}
	n := int(size)
	buf := make([]byte, 0, min(n, frameChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(2*cap(buf), n))
			copy(grown, buf)
			buf = grown
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// WriteFrame marshals m and writes it with its length prefix in one write.
func WriteFrame(w io.Writer, m proto.Message) error {
	body, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if len(body) > MaxFrame {
		return &FrameTooLargeError{Size: uint32(len(body))}
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	_, err = w.Write(buf)
	return err
}

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
