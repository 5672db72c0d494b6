package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"hash"
	"os"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
)

// The Integrated HSM seed's key-agreement chain, verbatim:
//
//	ECDH (pkeyutl -derive, output_file) -> masked secret
//	  -> HKDF (openssl kdf ... HKDF) -> masked AES or HMAC key
//	  -> HMAC (openssl mac ... HMAC)
//
// Nothing secret leaves the backend, so the checks are made from the peer's
// side, as issue 3 asks: Go computes the same ECDH secret with the peer's
// private key and the backend key's public key, the same HKDF (crypto/hkdf)
// and the same HMAC (crypto/hmac), and the MAC the provider returns must be
// that one. A derived AES key wraps a known key in the backend (hsmhost's
// protocol client, not the provider) and OpenSSL's default provider must
// unwrap it with the locally derived key.

var chainMessage = bytes.Repeat([]byte("no 1024-byte cap here. "), 5000) // 115 KB

// chainKeys makes the backend keys with hsmhost's protocol client (the
// provider's genpkey is tested elsewhere) and the peer's key with OpenSSL's
// default provider; it returns the ECDH secret as the peer computes it.
func chainKeys(t *testing.T, h *host) []byte {
	t.Helper()
	hc := hostClient(t, h)
	ctx := context.Background()
	spec := core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP384}
	blob, mine, err := hc.GenerateMasked(ctx, "azihsm://./ec_p384_ecdh.bin;type=ec", spec, []string{"keyAgreement"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.path("ec_p384_ecdh.bin"), blob, 0o600); err != nil {
		t.Fatal(err)
	}
	sig, _, err := hc.GenerateMasked(ctx, "azihsm://./ec_p384_sign.bin;type=ec", spec, []string{"digitalSignature"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.path("ec_p384_sign.bin"), sig, 0o600); err != nil {
		t.Fatal(err)
	}

	h.shell("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out peer_priv.pem")
	h.shell("openssl pkey -in peer_priv.pem -pubout -out peer_pub.pem")
	block, _ := pem.Decode(readBytes(t, h, "peer_priv.pem"))
	if block == nil {
		t.Fatal("peer_priv.pem holds no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := k.(*ecdsa.PrivateKey).ECDH()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(mine.PublicKeyDER)
	if err != nil {
		t.Fatal(err)
	}
	minePub, err := pub.(*ecdsa.PublicKey).ECDH()
	if err != nil {
		t.Fatal(err)
	}
	z, err := peer.ECDH(minePub)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func chainHash(name string) func() hash.Hash {
	switch name {
	case "SHA256":
		return sha256.New
	case "SHA384":
		return sha512.New384
	}
	return sha512.New
}

// checkMasked fails unless the file is a masked blob of the host's backend
// (docs/MASKED_KEYS.md for the simulator's).
func checkMasked(t *testing.T, h *host, name string) []byte {
	t.Helper()
	b := readBytes(t, h, name)
	if !bytes.HasPrefix(b, []byte(h.blobMagic)) {
		t.Fatalf("%s is not a masked key (%d bytes: %x...)", name, len(b), b[:min(len(b), 16)])
	}
	return b
}

// wrapUnwrapCheck wraps a known key in the backend with the masked AES key
// in file and has OpenSSL's default provider unwrap it with localKey (AES-128,
// -192 or -256: the RFC 3394 algorithm of that size).
func wrapUnwrapCheck(t *testing.T, h *host, file string, localKey []byte) {
	t.Helper()
	hc := hostClient(t, h)
	ctx := context.Background()
	k, err := hc.OpenMasked(ctx, "azihsm://./"+file+";type=ec", readBytes(t, h, file))
	if err != nil {
		t.Fatal(err)
	}
	bits := len(localKey) * 8
	if !h.aesKeysWrap {
		// Nothing in the backend's operations uses an AES key (the device
		// has no AES key wrap): check what the device says the key is.
		if k.Type != core.KeyTypeOct || k.Bits != bits {
			t.Fatalf("%s opens as %s %d bits, want an AES key of %d", file, k.Type, k.Bits, bits)
		}
		return
	}
	known := bytes.Repeat([]byte{0x5a, 0xa5, 0x0f, 0xf0}, 8)
	wrapped, err := hc.WrapKey(ctx, k.Reference, "", known, core.WrapAlgorithm(fmt.Sprintf("A%dKW", bits)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.path("wrapped.bin"), wrapped, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(h.path("unwrapped.bin"))
	h.shell(fmt.Sprintf("openssl enc -d -id-aes%d-wrap -K %s -iv A6A6A6A6A6A6A6A6 -in wrapped.bin -out unwrapped.bin", bits, hex.EncodeToString(localKey)))
	if got := readBytes(t, h, "unwrapped.bin"); !bytes.Equal(got, known) {
		t.Fatalf("%s: OpenSSL unwrapped %x with the locally derived key, want %x", file, got, known)
	}
}

func TestAzIHSMChainECDHThenHKDFThenHMAC(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	z := chainKeys(t, h)

	// ECDH, the seed's command: the secret goes to output_file masked, and
	// nothing to the output (secret length 0).
	out := h.shell(`openssl pkeyutl -derive ` + azihsmFlags + ` -inkey "azihsm://./ec_p384_ecdh.bin;type=ec" -peerkey peer_pub.pem -pkeyopt output_file:shared_secret.bin`)
	if out != "" {
		t.Fatalf("pkeyutl -derive wrote %d bytes of output, want none: %q", len(out), out)
	}
	checkMasked(t, h, "shared_secret.bin")
	h.shell(`openssl pkeyutl -derive ` + azihsmFlags + ` -inkey "azihsm://./ec_p384_ecdh.bin;type=ec" -peerkey peer_pub.pem -pkeyopt output_file:./secret2.bin -out /dev/null`)
	checkMasked(t, h, "secret2.bin")
	os.WriteFile(h.path("msg.bin"), chainMessage, 0o644)

	salt, _ := hex.DecodeString("000102030405060708090a0b0c")
	info, _ := hex.DecodeString("f0f1f2f3f4f5f6f7f8f9")
	for _, d := range []struct {
		digest string
		bits   int
	}{{"SHA256", 256}, {"SHA384", 384}, {"SHA512", 512}} {
		t.Run("hmac-"+d.digest, func(t *testing.T) {
			file := "derived_hmac_key_" + d.digest + ".bin"
			h.shell(fmt.Sprintf(`openssl kdf `+azihsmFlags+` -keylen 4096 -kdfopt digest:%s -kdfopt azihsm.ikm_file:./shared_secret.bin -kdfopt output_file:./%s -kdfopt derived_key_type:hmac -kdfopt derived_key_bits:%d -kdfopt hexsalt:000102030405060708090a0b0c -kdfopt hexinfo:f0f1f2f3f4f5f6f7f8f9 -binary -out /dev/null HKDF`, d.digest, file, d.bits))
			checkMasked(t, h, file)

			local, err := hkdf.Key(chainHash(d.digest), z, salt, string(info), d.bits/8)
			if err != nil {
				t.Fatal(err)
			}
			m := hmac.New(chainHash(d.digest), local)
			m.Write(chainMessage)
			want := hex.EncodeToString(m.Sum(nil))

			got := h.shell(fmt.Sprintf(`openssl mac `+azihsmFlags+` -macopt digest:%s -macopt azihsm.key_file:./%s -in msg.bin HMAC`, d.digest, file))
			if !strings.EqualFold(strings.TrimSpace(got), want) {
				t.Fatalf("HMAC-%s through the provider = %s, from the peer's side %s", d.digest, strings.TrimSpace(got), want)
			}
			// The blob as the key octets gives the same MAC.
			got = h.shell(fmt.Sprintf(`openssl mac `+azihsmFlags+` -macopt digest:%s -macopt hexkey:%s -in msg.bin HMAC`, d.digest, hex.EncodeToString(readBytes(t, h, file))))
			if !strings.EqualFold(strings.TrimSpace(got), want) {
				t.Fatalf("HMAC-%s with the blob as key octets = %s, want %s", d.digest, strings.TrimSpace(got), want)
			}
		})
	}

	t.Run("aes", func(t *testing.T) {
		// The seed's AES command (SHA256, no salt or info) and its full-chain
		// one (SHA384).
		h.shell(`openssl kdf ` + azihsmFlags + ` -keylen 4096 -kdfopt digest:SHA256 -kdfopt azihsm.ikm_file:./shared_secret.bin -kdfopt output_file:./derived_aes_key.bin -kdfopt derived_key_type:aes -kdfopt derived_key_bits:256 -binary -out /dev/null HKDF`)
		checkMasked(t, h, "derived_aes_key.bin")
		local, _ := hkdf.Key(sha256.New, z, nil, "", 32)
		wrapUnwrapCheck(t, h, "derived_aes_key.bin", local)

		h.shell(`openssl kdf ` + azihsmFlags + ` -keylen 4096 -kdfopt digest:SHA384 -kdfopt azihsm.ikm_file:./shared_secret.bin -kdfopt output_file:./aes_key.bin -kdfopt derived_key_type:aes -kdfopt derived_key_bits:256 -binary -out /dev/null HKDF`)
		local384, _ := hkdf.Key(sha512.New384, z, nil, "", 32)
		wrapUnwrapCheck(t, h, "aes_key.bin", local384)

		// Into the caller's buffer: -keylen of the blob's size gives exactly
		// the blob; the input as key octets works like the file.
		size := len(readBytes(t, h, "derived_aes_key.bin"))
		h.shell(fmt.Sprintf(`openssl kdf `+azihsmFlags+` -keylen %d -kdfopt digest:SHA256 -kdfopt hexkey:%s -binary -out buffer_aes_key.bin HKDF`, size, hex.EncodeToString(readBytes(t, h, "shared_secret.bin"))))
		checkMasked(t, h, "buffer_aes_key.bin")
		wrapUnwrapCheck(t, h, "buffer_aes_key.bin", local)
	})

	t.Run("raw-keys-stay-ordinary", func(t *testing.T) {
		// Without a masked input our HKDF and HMAC compute what OpenSSL's
		// default provider computes.
		kdf := `openssl kdf %s -keylen 42 -kdfopt digest:SHA256 -kdfopt hexkey:0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b -kdfopt hexsalt:000102 -kdfopt hexinfo:f0f1 HKDF`
		if a, b := h.shell(fmt.Sprintf(kdf, azihsmFlags)), h.shell(fmt.Sprintf(kdf, "")); a != b {
			t.Fatalf("raw-key HKDF differs from the default provider's: %s vs %s", a, b)
		}
		mac := `openssl mac %s -macopt digest:SHA512 -macopt hexkey:0102030405 -in msg.bin HMAC`
		if a, b := h.shell(fmt.Sprintf(mac, azihsmFlags)), h.shell(fmt.Sprintf(mac, "")); a != b {
			t.Fatalf("raw-key HMAC differs from the default provider's: %s vs %s", a, b)
		}
	})

	// Refusals: each must fail and say why, naming the key or the file.
	b := checkMasked(t, h, "shared_secret.bin")
	os.WriteFile(h.path("truncated.bin"), b[:40], 0o600)
	alt := bytes.Clone(readBytes(t, h, "derived_hmac_key_SHA384.bin"))
	alt[len(alt)-20] ^= 0x01
	os.WriteFile(h.path("altered_hmac_key.bin"), alt, 0o600)
	os.WriteFile(h.path("big.bin"), make([]byte, 1000*1024), 0o644)
	for _, r := range []struct{ name, cmd, want1, want2 string }{
		{"ecdh-without-output_file",
			`openssl pkeyutl -derive ` + azihsmFlags + ` -inkey "azihsm://./ec_p384_ecdh.bin;type=ec" -peerkey peer_pub.pem -out /dev/null`,
			"azihsm://./ec_p384_ecdh.bin;type=ec", "needs output_file"},
		{"ecdh-with-signing-key",
			`openssl pkeyutl -derive ` + azihsmFlags + ` -inkey "azihsm://./ec_p384_sign.bin;type=ec" -peerkey peer_pub.pem -pkeyopt output_file:nope.bin`,
			"azihsm://./ec_p384_sign.bin;type=ec", "does not allow deriveKey"},
		{"mac-digest-mismatch",
			`openssl mac ` + azihsmFlags + ` -macopt digest:SHA256 -macopt azihsm.key_file:./derived_hmac_key_SHA384.bin -in msg.bin HMAC`,
			"derived_hmac_key_SHA384.bin", "the MAC digest must be sha384, not sha256"},
		{"hmac-key-of-the-wrong-size",
			`openssl kdf ` + azihsmFlags + ` -keylen 4096 -kdfopt digest:SHA256 -kdfopt azihsm.ikm_file:./shared_secret.bin -kdfopt output_file:./nope.bin -kdfopt derived_key_type:hmac -kdfopt derived_key_bits:384 -binary -out /dev/null HKDF`,
			"shared_secret.bin", "an HMAC-sha256 key has 256 bits, not 384"},
		{"truncated-ikm-file",
			`openssl kdf ` + azihsmFlags + ` -keylen 4096 -kdfopt azihsm.ikm_file:./truncated.bin -kdfopt output_file:./nope.bin -binary -out /dev/null HKDF`,
			"truncated.bin", "masked key is truncated"},
		{"altered-hmac-key-file",
			`openssl mac ` + azihsmFlags + ` -macopt digest:SHA384 -macopt azihsm.key_file:./altered_hmac_key.bin -in msg.bin HMAC`,
			"altered_hmac_key.bin", "altered or damaged"},
		{"missing-ikm-file",
			`openssl kdf ` + azihsmFlags + ` -keylen 4096 -kdfopt azihsm.ikm_file:./absent.bin -kdfopt output_file:./nope.bin HKDF`,
			"absent.bin", "does not exist"},
		{"no-hkdf-input",
			`openssl kdf ` + azihsmFlags + ` -keylen 4096 -kdfopt output_file:./nope.bin HKDF`,
			"HKDF needs its input keying material", "azihsm.ikm_file"},
		{"hkdf-buffer-too-small",
			`openssl kdf ` + azihsmFlags + ` -keylen 64 -kdfopt azihsm.ikm_file:./shared_secret.bin -binary -out /dev/null HKDF`,
			"output buffer too small", "-keylen"},
		{"aes-key-is-no-hkdf-input",
			`openssl kdf ` + azihsmFlags + ` -keylen 4096 -kdfopt azihsm.ikm_file:./derived_aes_key.bin -kdfopt output_file:./nope.bin HKDF`,
			"derived_aes_key.bin", "does not allow key derivation"},
		{"mac-message-over-900KiB",
			`openssl mac ` + azihsmFlags + ` -macopt digest:SHA384 -macopt azihsm.key_file:./derived_hmac_key_SHA384.bin -in big.bin HMAC`,
			"derived_hmac_key_SHA384.bin", "at most 921600 bytes"},
	} {
		t.Run("refuse-"+r.name, func(t *testing.T) {
			out, err := h.try("", "sh", "-c", r.cmd)
			if err == nil {
				t.Fatalf("succeeded:\n%s", out)
			}
			if !strings.Contains(out, r.want1) || !strings.Contains(out, r.want2) {
				t.Fatalf("the error does not say %q and %q:\n%s", r.want1, r.want2, out)
			}
		})
	}
	if _, err := os.Stat(h.path("nope.bin")); err == nil {
		t.Fatal("a refused operation wrote its output file")
	}
}
