package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The Integrated HSM seed's key commands, verbatim with ${PROV} spelled out:
// genpkey in the backend and import (the provider writes the masked blob),
// the azihsm:// store, ECDSA and RSA signatures, RSA encryption, sessions,
// and every refusal. Signatures are verified by OpenSSL's default provider
// alone against the public key (for imports: the external key's own public
// key), decryptions are compared with the plaintext.

func seedCmd(cmd string) string { return strings.ReplaceAll(cmd, "${PROV}", azihsmFlags) }

// fails runs a command line that must fail and returns its output, which
// must contain every one of want.
func (h *host) fails(line string, want ...string) string {
	h.t.Helper()
	out, err := h.try("", "sh", "-c", line)
	if err == nil {
		h.t.Fatalf("%s: succeeded, want a failure mentioning %q:\n%s", line, want, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			h.t.Fatalf("%s: output lacks %q:\n%s", line, w, out)
		}
	}
	return out
}

// verifiedByDefault checks sig over data.bin with the default provider
// alone, and that it fails for other data (so the check can fail).
func verifiedByDefault(t *testing.T, h *host, md, pub, sig, sigopts string) {
	t.Helper()
	if out := h.shell(fmt.Sprintf("openssl dgst -%s %s -verify %s -signature %s data.bin", md, sigopts, pub, sig)); !strings.Contains(out, "Verified OK") {
		t.Fatalf("default provider: %s", out)
	}
	if out, err := h.try("", "sh", "-c", fmt.Sprintf("openssl dgst -%s %s -verify %s -signature %s other.bin", md, sigopts, pub, sig)); err == nil {
		t.Fatalf("signature verified over other data: %s", out)
	}
}

func azihsmHost(t *testing.T) *host {
	t.Helper()
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.write("data.bin", strings.Repeat("data signed by a masked key ", 3000))
	h.write("other.bin", "other data")
	return h
}

func checkBlobFile(t *testing.T, h *host, name string) {
	t.Helper()
	checkMasked(t, h, name)
	st, err := os.Stat(h.path(name))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", name, st.Mode().Perm())
	}
}

func TestAzIHSMGenerateECAndSign(t *testing.T) {
	h := azihsmHost(t)
	for _, c := range []struct{ curve, md string }{{"P-256", "sha256"}, {"P-384", "sha384"}, {"P-521", "sha512"}, {"P-256", "sha1"}} {
		file := "ec_" + strings.ToLower(strings.ReplaceAll(c.curve, "-", "")) + ".bin"
		uri := `"azihsm://./` + file + `;type=ec"`
		if _, err := os.Stat(h.path(file)); err != nil {
			h.shell(seedCmd(`openssl genpkey ${PROV} \
    -algorithm EC \
    -pkeyopt group:` + c.curve + ` \
    -pkeyopt azihsm.masked_key:./` + file + ` \
    -outform DER -out /dev/null`))
			checkBlobFile(t, h, file)
		}
		if out := h.shell(seedCmd("openssl storeutl -noout ${PROV} " + uri)); !strings.Contains(out, "Total found: 1") {
			t.Fatalf("storeutl: %s", out)
		}
		h.shell(seedCmd("openssl pkey ${PROV} -in " + uri + " -pubout -out pub.pem"))
		if out := h.shell("openssl pkey -pubin -in pub.pem -noout -text"); !strings.Contains(out, "NIST CURVE: "+c.curve) {
			t.Fatalf("%s public key: %s", file, out)
		}

		// Streaming.
		h.shell(seedCmd(`openssl dgst -` + c.md + ` ${PROV} \
    -sign ` + uri + ` \
    -out signature.sig \
    data.bin`))
		if out := h.shell(seedCmd(`openssl dgst -` + c.md + ` ${PROV} \
    -verify ` + uri + ` \
    -signature signature.sig \
    data.bin`)); !strings.Contains(out, "Verified OK") {
			t.Fatalf("seed verify: %s", out)
		}
		verifiedByDefault(t, h, c.md, "pub.pem", "signature.sig", "")

		// One-shot on a precomputed hash.
		h.shell("openssl dgst -" + c.md + " -binary -out data.hash data.bin")
		h.shell(seedCmd(`openssl pkeyutl -sign ${PROV} \
    -inkey ` + uri + ` \
    -in data.hash \
    -out data.sig`))
		if out := h.shell(seedCmd(`openssl pkeyutl -verify ${PROV} \
    -inkey ` + uri + ` \
    -in data.hash \
    -sigfile data.sig`)); !strings.Contains(out, "Signature Verified Successfully") {
			t.Fatalf("seed pkeyutl -verify: %s", out)
		}
		if out := h.shell("openssl pkeyutl -verify -pubin -inkey pub.pem -in data.hash -sigfile data.sig"); !strings.Contains(out, "Signature Verified Successfully") {
			t.Fatalf("default provider pkeyutl -verify: %s", out)
		}
		h.shell("openssl dgst -" + c.md + " -binary -out other.hash other.bin")
		h.fails("openssl pkeyutl -verify -pubin -inkey pub.pem -in other.hash -sigfile data.sig", "Signature Verification Failure")
	}

	// A keyAgreement key does not sign; the backend says so and names it.
	h.shell(seedCmd(`openssl genpkey ${PROV} \
    -algorithm EC -pkeyopt group:P-384 \
    -pkeyopt azihsm.key_usage:keyAgreement \
    -pkeyopt azihsm.masked_key:./ec_p384_ecdh.bin \
    -outform DER -out /dev/null`))
	h.fails(seedCmd(`openssl dgst -sha384 ${PROV} -sign "azihsm://./ec_p384_ecdh.bin;type=ec" -out x.sig data.bin`),
		"azihsm://./ec_p384_ecdh.bin;type=ec", "does not allow sign")
	// The type is case-insensitive; the path may be absolute.
	h.shell(seedCmd(`openssl dgst -sha256 ${PROV} -sign "azihsm://` + h.path("ec_p256.bin") + `;type=EC" -out abs.sig data.bin`))
	h.shell(seedCmd(`openssl pkey ${PROV} -in "azihsm://./ec_p256.bin;type=ec" -pubout -out pub256.pem`))
	verifiedByDefault(t, h, "sha256", "pub256.pem", "abs.sig", "")
}

// A session is the application process (docs/MASKED_KEYS.md): its session
// keys work while it runs and stop when it exits.
func TestAzIHSMSessionKey(t *testing.T) {
	h := azihsmHost(t)
	h.shell(seedCmd(`openssl genpkey ${PROV} \
    -algorithm EC -pkeyopt group:P-256 \
    -pkeyopt azihsm.session:true \
    -pkeyopt azihsm.masked_key:./ec_p256_session.bin \
    -outform DER -out /dev/null`))
	checkBlobFile(t, h, "ec_p256_session.bin")
	h.fails(seedCmd(`openssl dgst -sha256 ${PROV} -sign "azihsm://./ec_p256_session.bin;type=ec" -out s.sig data.bin`),
		"./ec_p256_session.bin", "session has ended")

	// Within one process the session key signs: a self-signed certificate
	// made with a key generated in the same openssl req.
	for _, v := range []string{"yes", "1", "TRUE"} {
		os.Remove(h.path("session.crt"))
		h.shell(seedCmd(`openssl req ${PROV} -new -x509 -newkey ec -pkeyopt group:P-256 -pkeyopt azihsm.session:` + v +
			` -pkeyopt azihsm.masked_key:./session_req.bin -subj /CN=session -days 1 -nodes -keyout /dev/null -out session.crt`))
		if out := h.shell("openssl verify -CAfile session.crt session.crt"); !strings.Contains(out, "session.crt: OK") {
			t.Fatalf("self-signed certificate of a session key: %s", out)
		}
		h.fails(seedCmd(`openssl storeutl -noout ${PROV} "azihsm://./session_req.bin;type=ec"`), "session has ended")
	}
	// Not a session key: outlives its process.
	h.shell(seedCmd(`openssl genpkey ${PROV} -algorithm EC -pkeyopt group:P-256 -pkeyopt azihsm.session:no -pkeyopt azihsm.masked_key:./persistent.bin -outform DER -out /dev/null`))
	h.shell(seedCmd(`openssl dgst -sha256 ${PROV} -sign "azihsm://./persistent.bin;type=ec" -out p.sig data.bin`))
	h.fails(seedCmd(`openssl genpkey ${PROV} -algorithm EC -pkeyopt group:P-256 -pkeyopt azihsm.session:maybe -pkeyopt azihsm.masked_key:./x.bin -outform DER -out /dev/null`),
		"azihsm.session is true, false, yes, no, 1 or 0")
}

func TestAzIHSMImportEC(t *testing.T) {
	h := azihsmHost(t)
	h.shell(`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 \
    -outform DER -out external_ec.der`)
	h.shell("openssl pkcs8 -topk8 -nocrypt -inform DER -in external_ec.der -outform DER -out external_ec_p8.der")
	h.shell("openssl pkey -inform DER -in external_ec.der -pubout -out external_pub.pem")
	if a, b := readBytes(t, h, "external_ec.der"), readBytes(t, h, "external_ec_p8.der"); bytes.Equal(a, b) {
		t.Fatal("SEC1 and PKCS#8 files are the same: the test would not cover both")
	}
	for _, in := range []string{"external_ec.der", "external_ec_p8.der"} {
		out := "imported_" + strings.TrimSuffix(in, ".der") + ".bin"
		h.shell(seedCmd(`openssl genpkey ${PROV} \
    -algorithm EC -pkeyopt group:P-384 \
    -pkeyopt azihsm.input_key:./` + in + ` \
    -pkeyopt azihsm.masked_key:./` + out + ` \
    -outform DER -out /dev/null`))
		checkBlobFile(t, h, out)
		uri := `"azihsm://./` + out + `;type=ec"`
		if pub := h.shell(seedCmd("openssl pkey ${PROV} -in " + uri + " -pubout")); !samePEM(pub, h.read("external_pub.pem")) {
			t.Fatalf("%s: the imported key's public key differs from the external key's:\n%s", in, pub)
		}
		h.shell(seedCmd("openssl dgst -sha384 ${PROV} -sign " + uri + " -out imp.sig data.bin"))
		verifiedByDefault(t, h, "sha384", "external_pub.pem", "imp.sig", "")
	}
	h.fails(seedCmd(`openssl genpkey ${PROV} -algorithm EC -pkeyopt group:P-256 -pkeyopt azihsm.input_key:./external_ec.der -pkeyopt azihsm.masked_key:./wrong.bin -outform DER -out /dev/null`),
		"external_ec.der holds a P-384 key, but group is P-256")
	h.fails(seedCmd(`openssl genpkey ${PROV} -algorithm EC -pkeyopt group:P-384 -pkeyopt azihsm.input_key:./missing.der -pkeyopt azihsm.masked_key:./wrong.bin -outform DER -out /dev/null`),
		"input key file ./missing.der does not exist")
	h.fails(seedCmd(`openssl genpkey ${PROV} -algorithm EC -pkeyopt group:P-384 -pkeyopt azihsm.input_key:./other.bin -pkeyopt azihsm.masked_key:./wrong.bin -outform DER -out /dev/null`),
		"./other.bin is not a DER private key")
	if _, err := os.Stat(h.path("wrong.bin")); err == nil {
		t.Fatal("a refused import left a masked key file")
	}
}

func TestAzIHSMImportRSA(t *testing.T) {
	h := azihsmHost(t)
	for _, c := range []struct {
		bits   int
		pkcs8  bool
		usage  string
		masked string
	}{
		{2048, false, "digitalSignature", "rsa_2048_sign.bin"},
		{2048, true, "digitalSignature", "rsa_2048_p8.bin"},
		{3072, true, "digitalSignature", "rsa_3072_sign.bin"},
		{4096, false, "keyEncipherment", "rsa_4096_enc.bin"},
	} {
		ext := fmt.Sprintf("external_rsa_%d.der", c.bits)
		if _, err := os.Stat(h.path(ext)); err != nil {
			h.shell(fmt.Sprintf("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:%d -outform DER -out %s", c.bits, ext))
			h.shell(fmt.Sprintf("openssl pkey -inform DER -in %s -pubout -out %s.pub", ext, ext))
		}
		in := ext
		if c.pkcs8 {
			in = strings.TrimSuffix(ext, ".der") + "_p8.der"
			h.shell("openssl pkcs8 -topk8 -nocrypt -inform DER -in " + ext + " -outform DER -out " + in)
		}
		h.shell(seedCmd(fmt.Sprintf(`openssl genpkey ${PROV} \
    -algorithm RSA -pkeyopt rsa_keygen_bits:%d \
    -pkeyopt azihsm.input_key:./%s \
    -pkeyopt azihsm.key_usage:%s \
    -pkeyopt azihsm.masked_key:./%s \
    -outform DER -out /dev/null`, c.bits, in, c.usage, c.masked)))
		checkBlobFile(t, h, c.masked)
		uri := `"azihsm://./` + c.masked + `;type=rsa"`
		if pub := h.shell(seedCmd("openssl pkey ${PROV} -in " + uri + " -pubout")); !samePEM(pub, h.read(ext+".pub")) {
			t.Fatalf("%s: the imported key's public key differs from the external key's", c.masked)
		}
		if c.usage != "digitalSignature" {
			continue
		}
		// PKCS#1 v1.5.
		h.shell(seedCmd(`openssl dgst -sha256 ${PROV} \
    -sign ` + uri + ` \
    -out rsa_sig.bin data.bin`))
		if out := h.shell(seedCmd(`openssl dgst -sha256 ${PROV} \
    -verify ` + uri + ` \
    -signature rsa_sig.bin data.bin`)); !strings.Contains(out, "Verified OK") {
			t.Fatalf("seed verify: %s", out)
		}
		verifiedByDefault(t, h, "sha256", ext+".pub", "rsa_sig.bin", "")
		// PSS.
		h.shell(seedCmd(`openssl dgst -sha256 ${PROV} \
    -sigopt rsa_padding_mode:pss \
    -sigopt rsa_pss_saltlen:max \
    -sign ` + uri + ` \
    -out rsa_pss_sig.bin data.bin`))
		if out := h.shell(seedCmd(`openssl dgst -sha256 ${PROV} \
    -sigopt rsa_padding_mode:pss \
    -sigopt rsa_pss_saltlen:auto \
    -verify ` + uri + ` \
    -signature rsa_pss_sig.bin data.bin`)); !strings.Contains(out, "Verified OK") {
			t.Fatalf("seed PSS verify: %s", out)
		}
		verifiedByDefault(t, h, "sha256", ext+".pub", "rsa_pss_sig.bin", "-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:max")
	}

	// Encryption: the seed's commands with the keyEncipherment key.
	plain := randomFile(t, h, "plaintext.bin", 190)
	enc := `"azihsm://./rsa_4096_enc.bin;type=rsa"`
	h.shell(seedCmd(`openssl pkeyutl -encrypt ${PROV} \
    -inkey ` + enc + ` \
    -pkeyopt rsa_padding_mode:oaep \
    -pkeyopt rsa_oaep_md:sha256 \
    -pkeyopt rsa_mgf1_md:sha256 \
    -in plaintext.bin -out ciphertext.bin`))
	h.shell(seedCmd(`openssl pkeyutl -decrypt ${PROV} \
    -inkey ` + enc + ` \
    -pkeyopt rsa_padding_mode:oaep \
    -pkeyopt rsa_oaep_md:sha256 \
    -pkeyopt rsa_mgf1_md:sha256 \
    -in ciphertext.bin -out decrypted.bin`))
	if !bytes.Equal(readBytes(t, h, "decrypted.bin"), plain) {
		t.Fatal("OAEP: decrypted.bin differs from plaintext.bin")
	}
	// Encrypted by the default provider with the external public key.
	h.shell("openssl pkeyutl -encrypt -pubin -inkey external_rsa_4096.der.pub -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha384 -in plaintext.bin -out local.bin")
	h.shell(seedCmd("openssl pkeyutl -decrypt ${PROV} -inkey " + enc + " -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha384 -in local.bin -out decrypted2.bin"))
	if !bytes.Equal(readBytes(t, h, "decrypted2.bin"), plain) {
		t.Fatal("OAEP SHA-384 from the default provider: decrypted differently")
	}
	h.shell(seedCmd(`openssl pkeyutl -encrypt ${PROV} \
    -inkey ` + enc + ` \
    -pkeyopt rsa_padding_mode:pkcs1 \
    -in plaintext.bin -out ciphertext.bin`))
	h.shell(seedCmd("openssl pkeyutl -decrypt ${PROV} -inkey " + enc + " -pkeyopt rsa_padding_mode:pkcs1 -in ciphertext.bin -out decrypted3.bin"))
	if !bytes.Equal(readBytes(t, h, "decrypted3.bin"), plain) {
		t.Fatal("PKCS#1 v1.5: decrypted differently")
	}

	// Refusals.
	h.shell("openssl pkeyutl -encrypt -pubin -inkey external_rsa_2048.der.pub -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in plaintext.bin -out c2048.bin")
	h.fails(seedCmd("openssl pkeyutl -decrypt ${PROV} -inkey \"azihsm://./rsa_2048_sign.bin;type=rsa\" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in c2048.bin -out x.bin"),
		"azihsm://./rsa_2048_sign.bin;type=rsa", "does not allow decrypt")
	h.fails(seedCmd("openssl dgst -sha256 ${PROV} -sign "+enc+" -out x.sig data.bin"),
		"azihsm://./rsa_4096_enc.bin;type=rsa", "does not allow sign")
	h.fails(seedCmd(`openssl genpkey ${PROV} -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -pkeyopt azihsm.input_key:./external_rsa_2048.der -pkeyopt azihsm.masked_key:./wrong.bin -outform DER -out /dev/null`),
		"external_rsa_2048.der holds a 2048-bit RSA key, but rsa_keygen_bits is 3072")
	h.fails(seedCmd(`openssl genpkey ${PROV} -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt azihsm.masked_key:./wrong.bin -outform DER -out /dev/null`),
		"the HSM cannot generate RSA keys", "azihsm.input_key")
	h.fails(seedCmd(`openssl genpkey ${PROV} -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt azihsm.input_key:./external_rsa_2048.der -pkeyopt azihsm.key_usage:keyAgreement -pkeyopt azihsm.masked_key:./wrong.bin -outform DER -out /dev/null`),
		"keyAgreement is for EC keys only")
	h.fails(seedCmd(`openssl genpkey ${PROV} -algorithm EC -pkeyopt group:P-256 -pkeyopt azihsm.key_usage:keyEncipherment -pkeyopt azihsm.masked_key:./wrong.bin -outform DER -out /dev/null`),
		"keyEncipherment is for RSA keys only")
	h.fails(seedCmd(`openssl genpkey ${PROV} -algorithm EC -pkeyopt group:P-256 -pkeyopt azihsm.key_usage:digitalSignature -outform DER -out /dev/null`),
		"azihsm.masked_key is required")
}

// RSA-PSS keys (-algorithm RSA-PSS) load as RSA-PSS keys: OpenSSL signs
// them with PSS without being told.
func TestAzIHSMImportRSAPSS(t *testing.T) {
	h := azihsmHost(t)
	h.shell("openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048 -outform DER -out external_pss.der")
	h.shell("openssl pkey -inform DER -in external_pss.der -pubout -out external_pss.pub")
	h.shell(seedCmd(`openssl genpkey ${PROV} \
    -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048 \
    -pkeyopt azihsm.input_key:./external_pss.der \
    -pkeyopt azihsm.masked_key:./rsa_pss.bin \
    -outform DER -out /dev/null`))
	checkBlobFile(t, h, "rsa_pss.bin")
	uri := `"azihsm://./rsa_pss.bin;type=rsa-pss"`
	h.shell(seedCmd("openssl dgst -sha256 ${PROV} -sign " + uri + " -out pss.sig data.bin"))
	// The external key is an RSA-PSS key: the default provider verifies PSS.
	verifiedByDefault(t, h, "sha256", "external_pss.pub", "pss.sig", "")
	if out := h.shell(seedCmd("openssl dgst -sha256 ${PROV} -verify " + uri + " -signature pss.sig data.bin")); !strings.Contains(out, "Verified OK") {
		t.Fatalf("seed-style verify: %s", out)
	}
	if out := h.shell(seedCmd("openssl pkey ${PROV} -in " + uri + " -pubout")); !samePEM(out, h.read("external_pss.pub")) {
		t.Fatalf("RSA-PSS public key differs from the external key's:\n%s", out)
	}
	// An RSA-PSS key file is refused for -algorithm RSA.
	h.fails(seedCmd(`openssl genpkey ${PROV} -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt azihsm.input_key:./external_pss.der -pkeyopt azihsm.masked_key:./wrong.bin -outform DER -out /dev/null`),
		"-algorithm RSA-PSS")
}

func TestAzIHSMStoreRefusals(t *testing.T) {
	h := azihsmHost(t)
	h.shell(seedCmd(`openssl genpkey ${PROV} -algorithm EC -pkeyopt group:P-256 -pkeyopt azihsm.masked_key:./good.bin -outform DER -out /dev/null`))
	good := readBytes(t, h, "good.bin")
	if err := os.WriteFile(h.path("truncated.bin"), good[:40], 0o600); err != nil {
		t.Fatal(err)
	}
	flipByte(t, h, "good.bin", "altered.bin", len(good)-5)
	if err := os.WriteFile(h.path("empty.bin"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.write("notmasked.bin", strings.Repeat("not a masked key ", 10))

	// A blob from another backend instance (another state directory).
	other := startHost(t, "")
	other.shell(seedCmd(`openssl genpkey ${PROV} -algorithm EC -pkeyopt group:P-256 -pkeyopt azihsm.masked_key:./foreign.bin -outform DER -out /dev/null`))
	if err := os.WriteFile(h.path("foreign.bin"), readBytes(t, other, "foreign.bin"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		uri  string
		want []string
	}{
		{"azihsm://./good.bin", []string{"the key type is missing"}},
		{"azihsm://./good.bin;type=dsa", []string{"unknown key type"}},
		{"azihsm://./good.bin;type=rsa", []string{"./good.bin", "an EC key, but the URI says type=rsa"}},
		{"azihsm://./missing.bin;type=ec", []string{"masked key file ./missing.bin does not exist"}},
		{"azihsm://./empty.bin;type=ec", []string{"masked key file ./empty.bin is empty"}},
		{"azihsm://./truncated.bin;type=ec", []string{"./truncated.bin: ", "truncated"}},
		{"azihsm://./altered.bin;type=ec", []string{"./altered.bin: ", "altered"}},
		{"azihsm://./notmasked.bin;type=ec", []string{"./notmasked.bin: ", "not an hsmbridge masked key"}},
		{"azihsm://./foreign.bin;type=ec", []string{"./foreign.bin: ", "another backend instance"}},
	} {
		h.fails(seedCmd(`openssl storeutl -noout ${PROV} "`+c.uri+`"`), c.want...)
		h.fails(seedCmd(`openssl dgst -sha256 ${PROV} -sign "`+c.uri+`" -out x.sig data.bin`), c.want...)
	}
	if err := os.Chmod(h.path("good.bin"), 0); err == nil && os.Geteuid() != 0 {
		h.fails(seedCmd(`openssl storeutl -noout ${PROV} "azihsm://./good.bin;type=ec"`), "cannot read masked key file ./good.bin")
	}
}

// A host restart forgets the handles of opened blobs; a running application
// keeps working: the provider opens the blob again and retries. Here a TLS
// server signs handshakes with a masked key across a restart of hsmhost; the
// client (default provider only) checks every handshake signature.
func TestAzIHSMHandleSurvivesHostRestart(t *testing.T) {
	h := azihsmHost(t)
	h.shell(seedCmd(`openssl genpkey ${PROV} -algorithm EC -pkeyopt group:P-384 -pkeyopt azihsm.masked_key:./server.bin -outform DER -out /dev/null`))
	uri := `azihsm://./server.bin;type=ec`
	h.shell(seedCmd(`openssl req ${PROV} -new -x509 -key "` + uri + `" -subj /CN=localhost -days 1 -out server.crt`))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := exec.Command("openssl", "s_server", "-propquery", "?provider=azihsm", "-provider", "default", "-provider", "azihsm_provider",
		"-key", uri, "-cert", "server.crt", "-accept", addr, "-naccept", "2", "-www")
	srv.Dir, srv.Env = h.dir, append(h.env(), "HSMBRIDGE_DEBUG=1")
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	handshake := func(when string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := h.try("", "openssl", "s_client", "-connect", addr, "-CAfile", "server.crt", "-verify_return_error", "-brief")
			if err == nil && strings.Contains(out, "Verification: OK") {
				return
			}
			if time.Now().After(deadline) || strings.Contains(out, "alert") {
				t.Fatalf("handshake %s: %v\n%s\ns_server:\n%s", when, err, out, srvOut.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	handshake("before the restart")
	h.restartHost(t, nil)
	handshake("after the restart")
	if !strings.Contains(srvOut.String(), "opening ./server.bin again") {
		t.Fatalf("the server did not re-open the blob:\n%s", srvOut.String())
	}
}

// restartHost stops hsmhost and starts it again with the same socket and
// state directory; args are added to `serve`, env to its environment.
func (h *host) restartHost(t *testing.T, args []string, env ...string) {
	t.Helper()
	h.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
	h.cmd = exec.Command(hsmhostBin, append([]string{"serve", "--log-level", "debug"}, args...)...)
	h.cmd.Env = append(h.env(), env...)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", h.socket); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hsmhost did not come back on %s:\n%s", h.socket, h.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
