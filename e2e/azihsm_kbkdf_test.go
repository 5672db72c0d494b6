package e2e

import (
	"crypto/hmac"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"strings"
	"testing"
)

// The key-agreement chain with KBKDF instead of HKDF:
//
//	ECDH (pkeyutl -derive, output_file) -> masked secret
//	  -> KBKDF (openssl kdf ... KBKDF) -> masked AES or HMAC key
//	  -> HMAC (openssl mac ... HMAC)
//
// with the parameter names of the seed's HKDF commands (azihsm.ikm_file,
// output_file, derived_key_type, derived_key_bits) and OpenSSL's KBKDF
// names (digest, salt = label, info = context, mode, mac). The MAC is
// checked from the peer's side: Go's ECDH with the peer's key, then the
// KBKDF below (written out here with crypto/hmac), then HMAC; that KBKDF is
// itself checked against OpenSSL's default provider.

// kbkdfCounter is SP 800-108 counter mode with an HMAC PRF as OpenSSL's
// KBKDF defaults lay it out: K(i) = HMAC(key, [i]_32 || label || 0x00 ||
// context || [L]_32), i from 1, L the output length in bits.
func kbkdfCounter(h func() hash.Hash, key, label, context []byte, n int) []byte {
	var out []byte
	for i := uint32(1); len(out) < n; i++ {
		m := hmac.New(h, key)
		binary.Write(m, binary.BigEndian, i)
		m.Write(label)
		m.Write([]byte{0})
		m.Write(context)
		binary.Write(m, binary.BigEndian, uint32(n*8))
		out = m.Sum(out)
	}
	return out[:n]
}

// kbkdfParams are one KBKDF derivation's inputs besides the secret.
type kbkdfParams struct {
	digest         string // SHA256, SHA384, SHA512
	label, context string // hex: hexsalt, hexinfo
	bits           int
}

func (p kbkdfParams) key(t *testing.T, h *host, z []byte) []byte {
	t.Helper()
	label, _ := hex.DecodeString(p.label)
	context, _ := hex.DecodeString(p.context)
	k := kbkdfCounter(chainHash(p.digest), z, label, context, p.bits/8)
	// The same with OpenSSL's default provider alone.
	line := fmt.Sprintf("openssl kdf -keylen %d -kdfopt mac:HMAC -kdfopt digest:%s -kdfopt hexkey:%s", p.bits/8, p.digest, hex.EncodeToString(z))
	if p.label != "" {
		line += " -kdfopt hexsalt:" + p.label
	}
	if p.context != "" {
		line += " -kdfopt hexinfo:" + p.context
	}
	if got := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(h.shell(line+" KBKDF")), ":", "")); got != hex.EncodeToString(k) {
		t.Fatalf("the test's KBKDF %x differs from OpenSSL's %s", k, got)
	}
	return k
}

// kbkdfCmd is the seed's HKDF command with KBKDF, our parameter names the
// upstream provider's.
func kbkdfCmd(p kbkdfParams, typ, out, extra string) string {
	s := `openssl kdf ${PROV} -keylen 4096 -kdfopt digest:` + p.digest + ` -kdfopt azihsm.ikm_file:./shared_secret.bin -kdfopt output_file:./` + out +
		` -kdfopt derived_key_type:` + typ + fmt.Sprintf(` -kdfopt derived_key_bits:%d`, p.bits)
	if p.label != "" {
		s += ` -kdfopt hexsalt:` + p.label
	}
	if p.context != "" {
		s += ` -kdfopt hexinfo:` + p.context
	}
	return s + extra + ` -binary -out /dev/null KBKDF`
}

func TestAzIHSMChainECDHThenKBKDFThenHMAC(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	z := chainKeys(t, h)
	h.shell(`openssl pkeyutl -derive ` + azihsmFlags + ` -inkey "azihsm://./ec_p384_ecdh.bin;type=ec" -peerkey peer_pub.pem -pkeyopt output_file:shared_secret.bin`)
	checkMasked(t, h, "shared_secret.bin")
	os.WriteFile(h.path("msg.bin"), chainMessage, 0o644)

	for _, p := range []kbkdfParams{
		{"SHA256", "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 256},
		{"SHA384", "6c6162656c", "", 384},
		{"SHA512", "", "636f6e74657874", 512},
	} {
		t.Run("hmac-"+p.digest, func(t *testing.T) {
			file := "kbkdf_hmac_" + p.digest + ".bin"
			h.shell(seedCmd(kbkdfCmd(p, "hmac", file, "")))
			checkBlobFile(t, h, file)
			local := p.key(t, h, z)
			m := hmac.New(chainHash(p.digest), local)
			m.Write(chainMessage)
			want := hex.EncodeToString(m.Sum(nil))
			for _, line := range []string{
				`openssl mac ` + azihsmFlags + ` -macopt digest:` + p.digest + ` -macopt key:./` + file + ` -in msg.bin HMAC`,
				`openssl mac ` + azihsmFlags + ` -macopt digest:` + p.digest + ` -macopt azihsm.key_file:./` + file + ` -in msg.bin HMAC`,
			} {
				if got := macLine(h.shell(line)); got != want {
					t.Fatalf("%s\n= %s, from the peer's side %s", line, got, want)
				}
			}
			// OpenSSL's defaults said out loud give the same key.
			h.shell(seedCmd(kbkdfCmd(p, "hmac", "explicit.bin", " -kdfopt mode:counter -kdfopt mac:HMAC -kdfopt use-l:1 -kdfopt use-separator:1")))
			if got := macLine(h.shell(`openssl mac ` + azihsmFlags + ` -macopt digest:` + p.digest + ` -macopt key:./explicit.bin -in msg.bin HMAC`)); got != want {
				t.Fatalf("with mode, mac, use-l and use-separator given: %s, want %s", got, want)
			}
		})
	}

	t.Run("aes", func(t *testing.T) {
		for _, p := range []kbkdfParams{{"SHA256", "", "", 256}, {"SHA384", "0a0b", "0c0d", 128}, {"SHA512", "01", "02", 192}} {
			file := fmt.Sprintf("kbkdf_aes%d.bin", p.bits)
			h.shell(seedCmd(kbkdfCmd(p, "aes", file, "")))
			checkBlobFile(t, h, file)
			wrapUnwrapCheck(t, h, file, p.key(t, h, z))
		}
		// Into the caller's buffer, the input given as key octets.
		p := kbkdfParams{"SHA256", "", "", 256}
		size := len(readBytes(t, h, "kbkdf_aes256.bin"))
		h.shell(fmt.Sprintf(`openssl kdf `+azihsmFlags+` -keylen %d -kdfopt digest:SHA256 -kdfopt hexkey:%s -binary -out buffer_aes_key.bin KBKDF`, size, hex.EncodeToString(readBytes(t, h, "shared_secret.bin"))))
		checkMasked(t, h, "buffer_aes_key.bin")
		wrapUnwrapCheck(t, h, "buffer_aes_key.bin", p.key(t, h, z))
	})

	t.Run("raw-keys-stay-ordinary", func(t *testing.T) {
		kdf := `openssl kdf %s -keylen 42 -kdfopt mac:HMAC -kdfopt digest:SHA384 -kdfopt hexkey:0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b -kdfopt hexsalt:000102 -kdfopt hexinfo:f0f1 KBKDF`
		if a, b := h.shell(fmt.Sprintf(kdf, azihsmFlags)), h.shell(fmt.Sprintf(kdf, "")); a != b {
			t.Fatalf("raw-key KBKDF differs from the default provider's: %s vs %s", a, b)
		}
		// Feedback mode is OpenSSL's to do with a raw key.
		fb := `openssl kdf %s -keylen 32 -kdfopt mode:FEEDBACK -kdfopt mac:HMAC -kdfopt digest:SHA256 -kdfopt hexkey:0b0b0b0b0b0b0b0b -kdfopt hexseed:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff KBKDF`
		if a, b := h.shell(fmt.Sprintf(fb, azihsmFlags)), h.shell(fmt.Sprintf(fb, "")); a != b {
			t.Fatalf("raw-key feedback KBKDF differs from the default provider's: %s vs %s", a, b)
		}
	})

	// Refusals: the device runs counter mode with an HMAC PRF, nothing else.
	hmac256 := kbkdfParams{"SHA256", "01", "02", 256}
	for _, r := range []struct{ name, cmd, want1, want2 string }{
		{"feedback-mode", kbkdfCmd(hmac256, "hmac", "nope.bin", " -kdfopt mode:feedback"), "KBKDF from a masked key", "mode feedback is not supported"},
		{"cmac", kbkdfCmd(hmac256, "aes", "nope.bin", " -kdfopt mac:CMAC -kdfopt cipher:AES-256-CBC"), "KBKDF from a masked key", "mac CMAC is not supported"},
		{"kmac", kbkdfCmd(hmac256, "aes", "nope.bin", " -kdfopt mac:KMAC128"), "KBKDF from a masked key", "mac KMAC128 is not supported"},
		{"no-l", kbkdfCmd(hmac256, "hmac", "nope.bin", " -kdfopt use-l:0"), "KBKDF from a masked key", "use-l:0 is not supported"},
		{"no-separator", kbkdfCmd(hmac256, "hmac", "nope.bin", " -kdfopt use-separator:0"), "KBKDF from a masked key", "use-separator:0 is not supported"},
		{"seed", kbkdfCmd(hmac256, "hmac", "nope.bin", " -kdfopt hexseed:00"), "KBKDF from a masked key", "seed is feedback mode's IV"},
		{"sha1", kbkdfCmd(kbkdfParams{"SHA1", "", "", 128}, "aes", "nope.bin", ""), "KBKDF digest SHA1 is not supported", "SHA256, SHA384 or SHA512"},
		{"hmac-bits-not-digest-size", kbkdfCmd(kbkdfParams{"SHA384", "", "", 256}, "hmac", "nope.bin", ""), "shared_secret.bin", "an HMAC-sha384 key has 384 bits, not 256"},
		{"aes-bits", kbkdfCmd(kbkdfParams{"SHA256", "", "", 64}, "aes", "nope.bin", ""), "shared_secret.bin", "128, 192 or 256 bits"},
		{"no-input", `openssl kdf ${PROV} -keylen 4096 -kdfopt output_file:./nope.bin KBKDF`, "KBKDF needs its input keying material", "azihsm.ikm_file"},
		{"aes-key-is-no-input", `openssl kdf ${PROV} -keylen 4096 -kdfopt azihsm.ikm_file:./kbkdf_aes256.bin -kdfopt output_file:./nope.bin KBKDF`, "kbkdf_aes256.bin", "does not allow key derivation"},
		{"buffer-too-small", `openssl kdf ${PROV} -keylen 64 -kdfopt azihsm.ikm_file:./shared_secret.bin -binary -out /dev/null KBKDF`, "output buffer too small", "-keylen"},
	} {
		t.Run("refuse-"+r.name, func(t *testing.T) {
			mustFail(t, h, seedCmd(r.cmd), r.want1, r.want2)
		})
	}
	if _, err := os.Stat(h.path("nope.bin")); err == nil {
		t.Fatal("a refused derivation wrote its output file")
	}
}
