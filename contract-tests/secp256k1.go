package contracttests

import (
	"bytes"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/hsmbridge/hsmbridge/core"
)

// P-256K (secp256k1) is not in Go's standard library, and the suite does
// not check a backend with hsmbridge's own code: a P-256K key's
// SubjectPublicKeyInfo is checked here with encoding/asn1 (id-ecPublicKey,
// the curve's OID, an uncompressed point) and its signatures by the openssl
// CLI (OpenSSL's default provider). Without openssl the suite makes no
// P-256K key.

// p256kPublic is a P-256K public key: its DER SubjectPublicKeyInfo.
type p256kPublic []byte

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

func parseP256K(info core.KeyInfo) (p256kPublic, error) {
	var spki struct {
		Algorithm struct {
			Algorithm asn1.ObjectIdentifier
			Curve     asn1.ObjectIdentifier
		}
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(info.PublicKeyDER, &spki)
	if err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("key %s: public key is not a valid SubjectPublicKeyInfo: %v", info.ID, err)
	}
	if !spki.Algorithm.Algorithm.Equal(oidECPublicKey) || !spki.Algorithm.Curve.Equal(oidSecp256k1) {
		return nil, fmt.Errorf("key %s: KeyInfo says EC P-256K, the public key is %v on %v", info.ID, spki.Algorithm.Algorithm, spki.Algorithm.Curve)
	}
	if p := spki.PublicKey.Bytes; len(p) != 65 || p[0] != 4 || info.Type != core.KeyTypeEC || info.Bits != 256 {
		return nil, fmt.Errorf("key %s: a P-256K public key is a 65-byte uncompressed point and 256 bits (%d bytes, %d bits)", info.ID, len(p), info.Bits)
	}
	return p256kPublic(info.PublicKeyDER), nil
}

func haveOpenSSL() bool {
	_, err := exec.LookPath("openssl")
	return err == nil
}

// verify checks a DER ECDSA signature over digest with openssl pkeyutl.
func (p p256kPublic) verify(digest, sig []byte) error {
	dir, err := os.MkdirTemp("", "contract-p256k-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for name, b := range map[string][]byte{"pub.pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: p}), "d.bin": digest, "sig.der": sig} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	cmd := exec.Command("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-in", "d.bin", "-sigfile", "sig.der")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Verified Successfully")) {
		return errors.New("OpenSSL does not verify the P-256K signature (DER ECDSA-Sig-Value)")
	}
	return nil
}
