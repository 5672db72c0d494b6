// Package devapi is the Azure Integrated HSM's native C API seen from Go, at
// the API's own level: partitions, sessions, keys and crypto calls, with the
// API's handles, algorithm ids and key properties (include/azihsm_api.h has
// the C side). It holds no cgo: the binding that loads the real library
// (package native) implements Library, and the backend (package azihsmdevice)
// uses only this interface, so the backend's logic can be read without C.
//
// Errors: every failed call returns a *StatusError that names the function
// and the status (its AZIHSM_STATUS_ name). StatusError maps each status onto
// hsmbridge's error kinds (core.ErrorKind), so errors.Is(err, core.ErrNotFound)
// works on device errors as on every backend's.
package devapi

import "fmt"

// Handle is an API handle (partition, session, key or streaming context).
type Handle uint32

// APIRev is an API revision.
type APIRev struct{ Major, Minor uint32 }

func (r APIRev) String() string { return fmt.Sprintf("%d.%d", r.Major, r.Minor) }

// PartitionInfo is one entry of the partition list.
type PartitionInfo struct {
	Path           string
	MinRev, MaxRev APIRev
}

// Credentials are a partition's application credential id and PIN.
type Credentials struct {
	ID  [16]byte
	PIN [16]byte
}

// BackupKeySource and EndorsementSource select where azihsm_part_init takes
// the owner backup key and the POTA endorsement from.
type BackupKeySource uint32
type EndorsementSource uint32

const (
	SourceCaller BackupKeySource = 1
	SourceTPM    BackupKeySource = 2

	EndorseCaller EndorsementSource = 1
	EndorseTPM    EndorsementSource = 2
)

// PartitionInit is what azihsm_part_init takes besides the credentials.
// Nil slices are passed as NULL buffers.
type PartitionInit struct {
	BMK, MUK                     []byte // backup masking key, masked unwrapping key (optional)
	OBKSource                    BackupKeySource
	OBK, MOBK                    []byte // with SourceCaller: exactly one of them
	POTASource                   EndorsementSource
	POTASignature, POTAPublicKey []byte // with EndorseCaller
}

// PartProp is a partition property id (AZIHSM_PART_PROP_ID_*).
type PartProp uint32

const (
	PartPropType            PartProp = 1
	PartPropPath            PartProp = 2
	PartPropDriverVersion   PartProp = 3
	PartPropFirmwareVersion PartProp = 4
	PartPropHardwareVersion PartProp = 5
	PartPropPCIHardwareID   PartProp = 6
	PartPropMinAPIRev       PartProp = 7
	PartPropMaxAPIRev       PartProp = 8
	PartPropCertChain       PartProp = 9
	PartPropBMK             PartProp = 10
	PartPropMOBK            PartProp = 11
	PartPropPublicKey       PartProp = 12
)

// AlgoID is an algorithm id (AZIHSM_ALGO_ID_*).
type AlgoID uint32

const (
	AlgoRSAUnwrappingKeyPairGen AlgoID = 0x00010001
	AlgoRSAPKCS1SHA1            AlgoID = 0x00010003
	AlgoRSAPKCS1SHA256          AlgoID = 0x00010004
	AlgoRSAPKCS1SHA384          AlgoID = 0x00010005
	AlgoRSAPKCS1SHA512          AlgoID = 0x00010006
	AlgoRSAPSS                  AlgoID = 0x00010007 // on a digest; PSSParams
	AlgoRSAOAEP                 AlgoID = 0x0001000C // OAEPParams
	AlgoRSAPKCS1                AlgoID = 0x0001000D // encryption padding
	AlgoRSAAESKeyWrap           AlgoID = 0x0001000E // RSAAESKeyWrapParams
	AlgoECKeyPairGen            AlgoID = 0x00020001
	AlgoECDSA                   AlgoID = 0x00020002 // on a digest; raw r‖s
	AlgoECDH                    AlgoID = 0x00020007 // ECDHParams
	AlgoSHA1                    AlgoID = 0x00040001
	AlgoSHA256                  AlgoID = 0x00040002
	AlgoSHA384                  AlgoID = 0x00040003
	AlgoSHA512                  AlgoID = 0x00040004
	AlgoHMACSHA256              AlgoID = 0x00050002
	AlgoHMACSHA384              AlgoID = 0x00050003
	AlgoHMACSHA512              AlgoID = 0x00050004
	AlgoHKDF                    AlgoID = 0x00060001 // HKDFParams
	AlgoKBKDFCounter            AlgoID = 0x00060002 // KBKDFParams
)

// MGF1 is an MGF1 hash id (AZIHSM_MGF1_ID_*).
type MGF1 uint32

const (
	MGF1SHA256 MGF1 = 1
	MGF1SHA384 MGF1 = 2
	MGF1SHA512 MGF1 = 3
	MGF1SHA1   MGF1 = 4
)

// Algo is an algorithm and its parameters: Params is nil or one of the
// *...Params types below, as the algorithm id requires.
type Algo struct {
	ID     AlgoID
	Params any
}

type ECDHParams struct{ PeerPublicKeyDER []byte }

type HKDFParams struct {
	HMAC       AlgoID
	Salt, Info []byte // nil: NULL buffer
}

type KBKDFParams struct {
	HMAC           AlgoID
	Label, Context []byte
}

type OAEPParams struct {
	Hash  AlgoID
	MGF1  MGF1
	Label []byte
}

type RSAAESKeyWrapParams struct {
	AESKeyBits uint32
	OAEP       OAEPParams
}

type PSSParams struct {
	Hash    AlgoID
	MGF1    MGF1
	SaltLen uint32
}

// KeyPropID is a key property id (AZIHSM_KEY_PROP_ID_*).
type KeyPropID uint32

const (
	PropClass       KeyPropID = 1  // uint32 KeyClass
	PropKind        KeyPropID = 2  // uint32 KeyKind
	PropBitLen      KeyPropID = 3  // uint32
	PropLabel       KeyPropID = 4  // bytes
	PropPubKeyInfo  KeyPropID = 5  // DER SubjectPublicKeyInfo
	PropECCurve     KeyPropID = 6  // uint32 Curve
	PropMaskedKey   KeyPropID = 7  // the masked blob
	PropSession     KeyPropID = 8  // bool (1 byte)
	PropLocal       KeyPropID = 9  // bool
	PropSensitive   KeyPropID = 10 // bool
	PropExtractable KeyPropID = 11 // bool
	PropEncrypt     KeyPropID = 12 // bool, and so on for the usages
	PropDecrypt     KeyPropID = 13
	PropSign        KeyPropID = 14
	PropVerify      KeyPropID = 15
	PropWrap        KeyPropID = 16
	PropUnwrap      KeyPropID = 17
	PropDerive      KeyPropID = 18
)

// KeyKind (AZIHSM_KEY_KIND_*), KeyClass and Curve values.
type KeyKind uint32
type KeyClass uint32
type Curve uint32

const (
	KindRSA          KeyKind = 1
	KindECC          KeyKind = 2
	KindAES          KeyKind = 3
	KindSharedSecret KeyKind = 5
	KindHMACSHA256   KeyKind = 7
	KindHMACSHA384   KeyKind = 8
	KindHMACSHA512   KeyKind = 9

	ClassSecret  KeyClass = 1
	ClassPublic  KeyClass = 2
	ClassPrivate KeyClass = 3

	CurveP256 Curve = 1
	CurveP384 Curve = 2
	CurveP521 Curve = 3
)

// KeyProp is one property as the API passes it: an id and its value bytes
// (little-endian uint32 or one byte for a bool; see U32 and Bool).
type KeyProp struct {
	ID    KeyPropID
	Value []byte
}

// U32 makes a uint32-valued property.
func U32(id KeyPropID, v uint32) KeyProp {
	return KeyProp{ID: id, Value: []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}}
}

// Bool makes a bool-valued property.
func Bool(id KeyPropID, v bool) KeyProp {
	b := byte(0)
	if v {
		b = 1
	}
	return KeyProp{ID: id, Value: []byte{b}}
}

// AsU32 reads a uint32 property value.
func AsU32(v []byte) (uint32, bool) {
	if len(v) != 4 {
		return 0, false
	}
	return uint32(v[0]) | uint32(v[1])<<8 | uint32(v[2])<<16 | uint32(v[3])<<24, true
}

// Library is the native API. Every method is one API call (or, for calls
// with an output buffer, the two calls of the size-then-fill convention),
// safe for concurrent use as the library is. Methods return *StatusError on a
// non-zero status.
type Library interface {
	// Partitions lists the partitions (azihsm_part_get_list, _get_count,
	// _get_info for each, _free_list).
	Partitions() ([]PartitionInfo, error)
	OpenPartition(path string, rev APIRev) (Handle, error)
	InitPartition(part Handle, creds Credentials, init PartitionInit) error
	PartitionProperty(part Handle, id PartProp) ([]byte, error)
	ClosePartition(part Handle) error

	OpenSession(part Handle, creds Credentials, seed []byte) (Handle, error)
	SessionAPIRev(session Handle) (APIRev, error)
	CloseSession(session Handle) error

	GenerateKeyPair(session Handle, algo Algo, priv, pub []KeyProp) (privKey, pubKey Handle, err error)
	UnwrapKeyPair(algo Algo, unwrappingKey Handle, wrapped []byte, priv, pub []KeyProp) (privKey, pubKey Handle, err error)
	Unmask(session Handle, kind KeyKind, masked []byte) (Handle, error)
	UnmaskPair(session Handle, kind KeyKind, masked []byte) (privKey, pubKey Handle, err error)
	Derive(session Handle, algo Algo, base Handle, props []KeyProp) (Handle, error)
	DeleteKey(key Handle) error
	KeyProperty(key Handle, id KeyPropID) ([]byte, error)

	// Sign is one-shot azihsm_crypt_sign (ECDSA and PSS on a digest, HMAC).
	Sign(algo Algo, key Handle, data []byte) ([]byte, error)
	// SignStream is azihsm_crypt_sign_init, one _update per chunk, _finish,
	// and azihsm_free_ctx_handle on every path (RSA PKCS#1 v1.5 hashes in
	// the device, so it takes the message).
	SignStream(algo Algo, key Handle, chunks ...[]byte) ([]byte, error)
	Verify(algo Algo, key Handle, data, sig []byte) error
	Decrypt(algo Algo, key Handle, ciphertext []byte) ([]byte, error)

	// Path is where the library was loaded from, for messages.
	Path() string
	Close() error
}

// HandleCounts is what an emulated device reports about its open handles
// (a control call of the emulation; the real library has none).
type HandleCounts struct {
	Partitions, Sessions, Keys, Contexts int
}

// HandleCounter is an emulated device's azihsm_emu_open_handles. A Library
// loaded from an emulated device gives one (see CounterOf in emulator.go).
type HandleCounter interface {
	OpenHandles() (HandleCounts, error)
}
