package azihsmdevice

import (
	"crypto"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"

	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
	"github.com/hsmbridge/hsmbridge/core"
)

// partitionInit gathers what azihsm_part_init takes besides the credential:
// the backup masking key and masked unwrapping key when their files exist
// (the first start has none), the owner backup key, and the POTA
// endorsement of the partition's identity key.
func (c config) partitionInit(lib devapi.Library, part devapi.Handle) (devapi.PartitionInit, error) {
	init := devapi.PartitionInit{OBKSource: c.obkSource, POTASource: c.potaSource}
	var err error
	if init.BMK, err = readOptional(c.bmkPath, "backup masking key"); err != nil {
		return init, err
	}
	if init.MUK, err = readOptional(c.mukPath, "masked unwrapping key"); err != nil {
		return init, err
	}
	if c.obkSource == devapi.SourceCaller {
		if c.obkPath != "" {
			if init.OBK, err = readRequired(c.obkPath, "owner backup key"); err != nil {
				return init, err
			}
		} else if init.MOBK, err = readRequired(c.mobkPath, "masked owner backup key"); err != nil {
			return init, err
		}
	}
	if c.potaSource == devapi.EndorseCaller {
		if init.POTASignature, init.POTAPublicKey, err = c.endorse(lib, part); err != nil {
			return init, err
		}
	}
	return init, nil
}

// endorse signs the partition's identity public key with the partition
// owner's trust anchor key (ECDSA with SHA-384, DER), as POTA endorsement.
func (c config) endorse(lib devapi.Library, part devapi.Handle) (sig, pub []byte, err error) {
	pid, err := lib.PartitionProperty(part, devapi.PartPropPublicKey)
	if err != nil {
		return nil, nil, deviceError("reading the partition's identity key for the POTA endorsement", err)
	}
	keyPEM, err := readRequired(c.potaPriv, "POTA private key")
	if err != nil {
		return nil, nil, err
	}
	der := keyPEM
	if b, _ := pem.Decode(keyPEM); b != nil {
		der = b.Bytes
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		if ec, eerr := x509.ParseECPrivateKey(der); eerr == nil {
			k, err = ec, nil
		}
	}
	signer, ok := k.(crypto.Signer)
	if err != nil || !ok {
		return nil, nil, core.Errorf(core.KindInvalidInput, "azihsm-device: %s is not a PKCS#8 or SEC1 private key", c.potaPriv)
	}
	pubFile, err := readRequired(c.potaPub, "POTA public key")
	if err != nil {
		return nil, nil, err
	}
	pub = pubFile
	if b, _ := pem.Decode(pubFile); b != nil {
		pub = b.Bytes
	}
	h := sha512.Sum384(pid)
	sig, err = signer.Sign(rand.Reader, h[:], crypto.SHA384)
	if err != nil {
		return nil, nil, core.Errorf(core.KindInternal, "azihsm-device: signing the POTA endorsement: %v", err)
	}
	return sig, pub, nil
}

// keepPartitionKeys writes the backup masking key and the masked owner
// backup key the device made at its first initialisation to the files the
// settings name, where those do not exist yet, so later starts pass them in.
func (c config) keepPartitionKeys(lib devapi.Library, part devapi.Handle) {
	keep := func(path string, id devapi.PartProp) {
		if path == "" {
			return
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			return
		}
		if v, err := lib.PartitionProperty(part, id); err == nil && len(v) > 0 {
			os.WriteFile(path, v, 0o600)
		}
	}
	keep(c.bmkPath, devapi.PartPropBMK)
	if c.obkSource == devapi.SourceCaller && c.obkPath != "" {
		keep(c.mobkPath, devapi.PartPropMOBK)
	}
}

func readOptional(path, what string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, core.Errorf(core.KindInvalidInput, "azihsm-device: reading the %s from %s: %v", what, path, err)
	}
	return data, nil
}

func readRequired(path, what string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, core.Errorf(core.KindInvalidInput, "azihsm-device: reading the %s from %s: %v", what, path, err)
	}
	return data, nil
}
