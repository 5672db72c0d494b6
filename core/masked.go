package core

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// A masked key is key material sealed by a backend so that it can be kept
// outside it (a file next to the application) and opened only by the same
// backend instance. docs/MASKED_KEYS.md describes the format:
//
//	offset  size  field
//	0       8     magic "HSMBMASK"
//	8       1     format version (1)
//	9       1     flags (bit 0: session key)
//	10      16    backend instance id
//	26      12    AES-GCM nonce
//	38      n+16  AES-256-GCM ciphertext and tag; the additional data is bytes 0-37
//
// The plaintext is the backend's own business. Every failure to open says
// which of truncated, not a masked key, unknown version, another instance
// or altered it was.
const (
	maskedMagic       = "HSMBMASK"
	MaskedVersion1    = 1
	MaskedFlagSession = 1 << 0
	maskedHeaderLen   = 8 + 1 + 1 + 16 + 12
	maskedTagLen      = 16
)

// InstanceID names one backend instance (for the simulator: one state
// directory); masked keys are bound to it.
type InstanceID [16]byte

func (id InstanceID) String() string { return hex.EncodeToString(id[:]) }

// SealMasked seals plaintext under the instance's 32-byte masking key.
func SealMasked(maskingKey []byte, instance InstanceID, flags byte, plaintext []byte) (MaskedKey, error) {
	gcm, err := maskingAEAD(maskingKey)
	if err != nil {
		return nil, err
	}
	header := make([]byte, maskedHeaderLen, maskedHeaderLen+len(plaintext)+maskedTagLen)
	copy(header, maskedMagic)
	header[8] = MaskedVersion1
	header[9] = flags
	copy(header[10:26], instance[:])
	if _, err := rand.Read(header[26:38]); err != nil {
		return nil, Errorf(KindInternal, "masking: %w", err)
	}
	return gcm.Seal(header, header[26:38], plaintext, header), nil
}

// MaskedHeader is the clear part of a masked key.
type MaskedHeader struct {
	Version  byte
	Flags    byte
	Instance InstanceID
}

// ParseMaskedHeader reads the clear header without opening the blob.
func ParseMaskedHeader(blob MaskedKey) (MaskedHeader, error) {
	var h MaskedHeader
	if len(blob) == 0 {
		return h, Errorf(KindInvalidInput, "masked key is empty")
	}
	if len(blob) < 8 || !bytes.Equal(blob[:8], []byte(maskedMagic)) {
		if len(blob) < 8 && bytes.HasPrefix([]byte(maskedMagic), blob) {
			return h, Errorf(KindInvalidInput, "masked key is truncated: %d bytes, a masked key has at least %d", len(blob), maskedHeaderLen+maskedTagLen)
		}
		return h, Errorf(KindInvalidInput, "not an hsmbridge masked key (no %q magic)", maskedMagic)
	}
	if len(blob) < maskedHeaderLen+maskedTagLen {
		return h, Errorf(KindInvalidInput, "masked key is truncated: %d bytes, a masked key has at least %d", len(blob), maskedHeaderLen+maskedTagLen)
	}
	h.Version, h.Flags = blob[8], blob[9]
	copy(h.Instance[:], blob[10:26])
	if h.Version != MaskedVersion1 {
		return h, Errorf(KindUnsupported, "masked key format version %d is not supported (this build reads version %d)", h.Version, MaskedVersion1)
	}
	return h, nil
}

// OpenMasked checks the header and opens the blob.
func OpenMasked(maskingKey []byte, instance InstanceID, blob MaskedKey) (MaskedHeader, []byte, error) {
	h, err := ParseMaskedHeader(blob)
	if err != nil {
		return h, nil, err
	}
	if h.Instance != instance {
		return h, nil, Errorf(KindInvalidInput, "masked key was made by another backend instance (%s); this one is %s", h.Instance, instance)
	}
	gcm, err := maskingAEAD(maskingKey)
	if err != nil {
		return h, nil, err
	}
	plain, err := gcm.Open(nil, blob[26:38], blob[maskedHeaderLen:], blob[:maskedHeaderLen])
	if err != nil {
		return h, nil, Errorf(KindInvalidInput, "masked key is altered or damaged: its authentication tag does not match")
	}
	return h, plain, nil
}

func maskingAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, Errorf(KindInternal, "masking key is %d bytes, not 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, Errorf(KindInternal, "masking: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, Errorf(KindInternal, "masking: %w", err)
	}
	return gcm, nil
}

// String summarises a header for messages.
func (h MaskedHeader) String() string {
	return fmt.Sprintf("masked key v%d flags %#x instance %s", h.Version, h.Flags, h.Instance)
}
