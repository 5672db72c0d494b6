package e2e

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// The upstream Integrated HSM provider (Azure/azihsm-sdk,
// plugins/ossl_prov/src/azihsm_ossl_mac.c) reads the HMAC key with the
// standard MAC parameter: `-macopt key:<file>` names the masked key file
// (the CLI passes the text's bytes as OSSL_MAC_PARAM_KEY). This is its
// command, verbatim, after the seed's ECDH and HKDF(hmac) commands.
const upstreamHMAC = `openssl mac -propquery "?provider=azihsm" -provider default -provider azihsm_provider -macopt digest:SHA384 -macopt key:./derived_hmac_key.bin HMAC`

// hmacHex is HMAC-SHA384 of msg under key, by Go.
func hmacHex(key, msg []byte) string {
	m := hmac.New(sha512.New384, key)
	m.Write(msg)
	return hex.EncodeToString(m.Sum(nil))
}

func macLine(out string) string { return strings.ToLower(strings.TrimSpace(out)) }

// mustFail runs a command line that must fail, its output saying each of
// want; for subtests (host.fails reports on the host's own test).
func mustFail(t *testing.T, h *host, line string, want ...string) string {
	t.Helper()
	out, err := h.try("", "sh", "-c", line)
	if err == nil {
		t.Fatalf("%s: succeeded, want a failure saying %q:\n%s", line, want, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("%s: the error does not say %q:\n%s", line, w, out)
		}
	}
	return out
}

func TestAzIHSMUpstreamHMACKeyIsTheMaskedKeyFile(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	z := chainKeys(t, h)
	h.shell(`openssl pkeyutl -derive ` + azihsmFlags + ` -inkey "azihsm://./ec_p384_ecdh.bin;type=ec" -peerkey peer_pub.pem -pkeyopt output_file:shared_secret.bin`)
	// The seed's HKDF(hmac) command, verbatim.
	h.shell(seedCmd(`openssl kdf ${PROV} -keylen 4096 -kdfopt digest:SHA384 -kdfopt azihsm.ikm_file:./shared_secret.bin -kdfopt output_file:./derived_hmac_key.bin -kdfopt derived_key_type:hmac -kdfopt derived_key_bits:384 -kdfopt hexsalt:000102030405060708090a0b0c -kdfopt hexinfo:f0f1f2f3f4f5f6f7f8f9 -binary -out /dev/null HKDF`))
	checkMasked(t, h, "derived_hmac_key.bin")
	salt, _ := hex.DecodeString("000102030405060708090a0b0c")
	info, _ := hex.DecodeString("f0f1f2f3f4f5f6f7f8f9")
	local, err := hkdf.Key(sha512.New384, z, salt, string(info), 48)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(h.path("msg.bin"), chainMessage, 0o644)

	// Verbatim (the message is stdin: empty here), then over a file. The
	// MAC is the one the peer's side computes; before, the provider printed
	// the HMAC keyed with the file's name, without an error.
	wrong := hmacHex([]byte("./derived_hmac_key.bin"), nil)
	got := macLine(h.shell(upstreamHMAC))
	if got == wrong {
		t.Fatalf("%s printed the HMAC keyed with the file's name (%s)", upstreamHMAC, got)
	}
	if want := hmacHex(local, nil); got != want {
		t.Fatalf("%s = %s, from the peer's side %s", upstreamHMAC, got, want)
	}
	want := hmacHex(local, chainMessage)
	for _, line := range []string{
		strings.TrimSuffix(upstreamHMAC, " HMAC") + ` -in msg.bin HMAC`,
		// The same file by our parameter, by an absolute path, and the blob's
		// content as hexkey:.
		`openssl mac ` + azihsmFlags + ` -macopt digest:SHA384 -macopt azihsm.key_file:./derived_hmac_key.bin -in msg.bin HMAC`,
		`openssl mac ` + azihsmFlags + ` -macopt digest:SHA384 -macopt key:$PWD/derived_hmac_key.bin -in msg.bin HMAC`,
		`openssl mac ` + azihsmFlags + ` -macopt digest:SHA384 -macopt hexkey:` + hex.EncodeToString(readBytes(t, h, "derived_hmac_key.bin")) + ` -in msg.bin HMAC`,
	} {
		if got := macLine(h.shell(line)); got != want {
			t.Fatalf("%s\n= %s, from the peer's side %s", line, got, want)
		}
	}

	// Raw keys keep OpenSSL's results under every name, also when our HMAC
	// is the one fetched (our provider first, or preferred by property).
	h.write("secret", "not a key file")
	for _, flags := range []string{azihsmFlags, `-propquery "?provider=hsmbridge" -provider default -provider hsmbridge`, `-provider akv_provider -provider default`} {
		for _, key := range []string{"hexkey:0102030405", "key:secret-text", "key:no/such/dir"} {
			if flags == azihsmFlags && strings.Contains(key, "/") {
				continue // a path under azihsm: refused below
			}
			line := `openssl mac %s -macopt digest:SHA384 -macopt ` + key + ` -in msg.bin HMAC`
			if a, b := h.shell(strings.Replace(line, "%s", flags, 1)), h.shell(strings.Replace(line, "%s", "", 1)); a != b {
				t.Fatalf("%s: raw-key HMAC %s differs from the default provider's %s", flags, a, b)
			}
		}
	}

	// A masked key is never used as raw key bytes; the refusals name the
	// file and say what to do.
	os.WriteFile(h.path("raw_key.bin"), []byte("raw key bytes, not a masked key"), 0o600)
	os.Mkdir(h.path("keys.d"), 0o755)
	hexBlob := hex.EncodeToString(readBytes(t, h, "derived_hmac_key.bin"))
	for _, r := range []struct {
		name, cmd string
		want      []string
	}{
		{"azihsm-no-such-file", `openssl mac ` + azihsmFlags + ` -macopt digest:SHA384 -macopt key:./derived_hmac_kye.bin -in msg.bin HMAC`,
			[]string{"masked key file ./derived_hmac_kye.bin does not exist"}},
		{"azihsm-directory", `openssl mac ` + azihsmFlags + ` -macopt digest:SHA384 -macopt key:./keys.d -in msg.bin HMAC`,
			[]string{"./keys.d is not a regular file"}},
		{"azihsm-file-that-is-no-masked-key", `openssl mac ` + azihsmFlags + ` -macopt digest:SHA384 -macopt key:./raw_key.bin -in msg.bin HMAC`,
			[]string{"raw_key.bin", "not an hsmbridge masked key"}},
		{"azihsm-key-file-digest-mismatch", `openssl mac ` + azihsmFlags + ` -macopt digest:SHA256 -macopt key:./derived_hmac_key.bin -in msg.bin HMAC`,
			[]string{"derived_hmac_key.bin", "the MAC digest must be sha384, not sha256"}},
		{"hsmbridge-key-file", `openssl mac -propquery "?provider=hsmbridge" -provider default -provider hsmbridge -macopt digest:SHA384 -macopt key:./derived_hmac_key.bin -in msg.bin HMAC`,
			[]string{"HMAC key ./derived_hmac_key.bin names a file", "loaded as hsmbridge", "azihsm_provider"}},
		{"akv-key-file-first-activated", `openssl mac -provider akv_provider -provider default -macopt digest:SHA384 -macopt key:./derived_hmac_key.bin -in msg.bin HMAC`,
			[]string{"HMAC key ./derived_hmac_key.bin names a file", "loaded as akv_provider", "azihsm_provider"}},
		{"hsmbridge-blob-as-hexkey", `openssl mac -provider hsmbridge -provider default -macopt digest:SHA384 -macopt hexkey:` + hexBlob + ` -in msg.bin HMAC`,
			[]string{"the HMAC key is a masked key blob", "azihsm_provider"}},
		{"hsmbridge-key-file-parameter", `openssl mac -provider hsmbridge -provider default -macopt digest:SHA384 -macopt azihsm.key_file:./derived_hmac_key.bin -in msg.bin HMAC`,
			[]string{"azihsm.key_file is for masked keys", "azihsm_provider"}},
		{"hsmbridge-any-existing-file", `openssl mac -provider hsmbridge -provider default -macopt digest:SHA384 -macopt key:secret -in msg.bin HMAC`,
			[]string{"HMAC key secret names a file"}},
	} {
		t.Run("refuse-"+r.name, func(t *testing.T) {
			out := mustFail(t, h, r.cmd, r.want...)
			if strings.Contains(macLine(out), hmacHex([]byte("./derived_hmac_key.bin"), chainMessage)) {
				t.Fatalf("printed the HMAC keyed with the file's name:\n%s", out)
			}
		})
	}
}
