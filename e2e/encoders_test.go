package e2e

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// The Integrated HSM seed's flags, in the order it prescribes.
const azihsmFlags = `-propquery "?provider=azihsm" -provider default -provider azihsm_provider`

// Digests offered under the provider's property give OpenSSL's own results.
// With only our provider loaded and a mandatory property query, nothing but
// our implementation can answer, and a digest we do not offer is not found.
func TestDigestsUnderProviderProperty(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.write("data.bin", strings.Repeat("hash me locally, not in the backend ", 5000))
	for _, d := range []string{"sha1", "sha256", "sha384", "sha512"} {
		want := h.shell("openssl dgst -" + d + " -r data.bin")
		if got := h.shell("openssl dgst -" + d + " -r " + azihsmFlags + " data.bin"); got != want {
			t.Errorf("seed form of dgst -%s: %q, default provider: %q", d, got, want)
		}
		if got := h.shell("openssl dgst -" + d + " -r -provider azihsm_provider -propquery provider=azihsm data.bin"); got != want {
			t.Errorf("dgst -%s with only our provider: %q, default provider: %q", d, got, want)
		}
	}
	if out, err := h.try("", "sh", "-c", "openssl dgst -md5 -provider azihsm_provider -propquery provider=azihsm data.bin"); err == nil {
		t.Errorf("md5 was found under provider=azihsm, so the query does not select our digests: %s", out)
	}
}

// SubjectPublicKeyInfo (PEM, DER) of backend keys is byte-for-byte what the
// default provider writes for the same public key, and the text output shows
// the public parts as the default provider prints them plus where the
// private half lives.
func TestPublicKeyEncoders(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	keys := map[string][]string{
		"rsa": {"--kty", "RSA", "--size", "2048", "--ops", "sign,decrypt"},
		"ec":  {"--kty", "EC", "--curve", "P-384", "--ops", "sign"},
	}
	for name, create := range keys {
		ref := "managedhsm:MyHSM:" + name
		h.hsmhost(append([]string{"key", "create", ref}, create...)...)
		hsmPub := h.hsmhost("key", "pubkey", ref)
		h.write(name+".pub", hsmPub)
		block, _ := pem.Decode([]byte(hsmPub))
		if block == nil {
			t.Fatalf("hsmhost key pubkey %s printed no PEM:\n%s", ref, hsmPub)
		}
		if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
			t.Fatalf("hsmhost's public key for %s: %v", ref, err)
		}
		// The default provider alone, from the public key file.
		h.shell(fmt.Sprintf("openssl pkey -pubin -in %s.pub -outform DER -out %s.want.der", name, name))
		wantText := h.shell(fmt.Sprintf("openssl pkey -pubin -in %s.pub -text_pub -noout", name))

		for _, flags := range []string{withProvider, azihsmFlags} {
			if got := h.shell("openssl pkey " + flags + " -in " + ref + " -pubout"); got != hsmPub {
				t.Errorf("%s pkey -pubout (%s):\n%s\nwant\n%s", name, flags, got, hsmPub)
			}
			h.shell("openssl pkey " + flags + " -in " + ref + " -pubout -outform DER -out " + name + ".der")
			if got, want := h.read(name+".der"), h.read(name+".want.der"); got != want || !bytes.Equal([]byte(got), block.Bytes) {
				t.Errorf("%s pkey -pubout -outform DER (%s) differs from the default provider's DER", name, flags)
			}
			if got := h.shell("openssl pkey " + flags + " -in " + ref + " -text_pub -noout"); got != wantText {
				t.Errorf("%s -text_pub (%s):\n%s\nwant\n%s", name, flags, got, wantText)
			}
			text := h.shell("openssl pkey " + flags + " -in " + ref + " -text -noout")
			for _, want := range []string{"Private-Key:", `held by backend "simulator"`, "Key reference: " + ref + "?version=", wantText} {
				if !strings.Contains(text, want) {
					t.Errorf("%s -text (%s) does not contain %q:\n%s", name, flags, want, text)
				}
			}
		}
	}
}

// `openssl pkey -in <ref> -out key.pem` writes a key-reference file (the
// backend key's "private key") in the PKCS#8 form, which loads back to the
// same key once the provider is configured, and signs; `-outform DER`
// writes the same DER.
func TestPkeyWritesKeyReferenceFile(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	ref := "managedhsm:MyHSM:k"
	h.hsmhost("key", "create", ref, "--kty", "EC", "--curve", "P-256", "--ops", "sign")
	hsmPub := h.hsmhost("key", "pubkey", ref)
	h.write("pub.pem", hsmPub)
	h.shell("openssl pkey " + withProvider + " -in " + ref + " -out key.pem")
	h.shell("openssl pkey " + withProvider + " -in " + ref + " -outform DER -out key.der")

	block, rest := pem.Decode([]byte(h.read("key.pem")))
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("key.pem is not one PKCS#8 block:\n%s", h.read("key.pem"))
	}
	var p8 struct {
		Version    int
		Algorithm  asn1.RawValue
		PrivateKey []byte
	}
	if trailing, err := asn1.Unmarshal(block.Bytes, &p8); err != nil || len(trailing) != 0 {
		t.Fatalf("key.pem's DER: %v (%d trailing bytes)", err, len(trailing))
	}
	// AlgorithmIdentifier { 2.25.133896219887739542807793727763915612139 }, no parameters.
	oid := "06146981c9bbbcd4f3efdaa09dbdebdbe588b4a8bf6b"
	if p8.Version != 0 || fmt.Sprintf("%x", p8.Algorithm.FullBytes) != "3016"+oid {
		t.Fatalf("key.pem is PKCS#8 version %d of algorithm % x", p8.Version, p8.Algorithm.FullBytes)
	}
	var file struct {
		Version   string `asn1:"utf8"`
		Reference string `asn1:"utf8"`
	}
	if trailing, err := asn1.Unmarshal(p8.PrivateKey, &file); err != nil || len(trailing) != 0 {
		t.Fatalf("key.pem's privateKey: %v (%d trailing bytes)", err, len(trailing))
	}
	if file.Version != "hsmbridge-keyref-v1" || !strings.HasPrefix(file.Reference, ref+"?version=") {
		t.Fatalf("key.pem holds %q %q", file.Version, file.Reference)
	}
	if h.read("key.der") != string(block.Bytes) {
		t.Errorf("-outform DER wrote other bytes than the PEM's body")
	}

	h.write("openssl.cnf", providerConf)
	if out := h.run("", "env", "OPENSSL_CONF="+h.path("openssl.cnf"), "openssl", "pkey", "-in", "key.pem", "-pubout"); out != hsmPub {
		t.Fatalf("key.pem loads to another public key:\n%s\nwant\n%s", out, hsmPub)
	}
	h.write("data.txt", "signed through a key file written by openssl pkey\n")
	h.run("", "env", "OPENSSL_CONF="+h.path("openssl.cnf"), "openssl", "dgst", "-sha256", "-sign", "key.pem", "-out", "sig.bin", "data.txt")
	if out := h.shell("openssl dgst -sha256 -verify pub.pem -signature sig.bin data.txt"); !strings.Contains(out, "Verified OK") {
		t.Fatalf("signature with key.pem: %s", out)
	}
}

// randConf activates azihsm_provider and makes the library's DRBGs draw from
// it: `random` replaces the DRBGs, `seed` only seeds OpenSSL's own CTR-DRBG.
func randConf(directive, autostart string) string {
	return fmt.Sprintf(`openssl_conf = openssl_init

[openssl_init]
providers = provider_sect
random = random_sect

[provider_sect]
default = default_sect
azihsm_provider = azihsm_sect

[default_sect]
activate = 1

[azihsm_sect]
activate = 1
hsmbridge_autostart = %s

[random_sect]
%s = HSMBRIDGE-RAND
%s = provider=azihsm
`, autostart, directive, map[string]string{"random": "properties", "seed": "seed_properties"}[directive])
}

// Random bytes come from the backend when the RAND is asked for, and only
// then: the same commands fail when no host answers, while a plain
// `openssl rand` with the provider loaded never needs the host.
func TestRandomFromBackend(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	nowhere := "HSMBRIDGE_SOCKET=" + h.path("nohost/hsmhost.sock")
	for _, directive := range []string{"random", "seed"} {
		cnf := directive + ".cnf"
		h.write(cnf, randConf(directive, "no"))
		conf := "OPENSSL_CONF=" + h.path(cnf)
		a := h.run("", "env", conf, "openssl", "rand", "48")
		b := h.run("", "env", conf, "openssl", "rand", "48")
		if len(a) != 48 || len(b) != 48 || a == b {
			t.Errorf("%s: two draws of 48 bytes gave %d and %d bytes, equal=%v", directive, len(a), len(b), a == b)
		}
		// More than one host request can carry (64 KiB).
		if big := h.run("", "env", conf, "openssl", "rand", "200000"); len(big) != 200000 {
			t.Errorf("%s: openssl rand 200000 gave %d bytes", directive, len(big))
		}
		out, err := h.try("", "env", conf, nowhere, "openssl", "rand", "16")
		if err == nil || !strings.Contains(out, "cannot reach hsmhost") {
			t.Errorf("%s: with no host, openssl rand did not fail for want of the backend: %v\n%s", directive, err, out)
		}
	}
	// The RAND is never picked implicitly: with the provider loaded first and
	// a property query, openssl rand still works without any host.
	start := time.Now()
	out := h.run("", "env", nowhere, "HSMBRIDGE_HSMHOST="+h.path("no-such-hsmhost"), "openssl", "rand",
		"-propquery", "provider=azihsm", "-provider", "azihsm_provider", "-provider", "default", "32")
	if len(out) != 32 || time.Since(start) > 4*time.Second {
		t.Errorf("openssl rand -propquery provider=azihsm without a host: %d bytes after %v", len(out), time.Since(start))
	}
	if out := h.shell("openssl list -random-generators -provider azihsm_provider"); !strings.Contains(out, "HSMBRIDGE-RAND @ azihsm_provider") {
		t.Errorf("openssl list -random-generators:\n%s", out)
	}
}

// Activating the provider never contacts the host: with none running,
// startup is immediate whether autostart is off or on (an attempt to start
// a missing hsmhost would wait 5 s for its socket).
func TestProviderLoadsPromptlyWithoutHost(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.stop()
	h.cmd.Process = nil // stopped: the cleanup must not signal it again
	for _, autostart := range []string{"no", "yes"} {
		for _, directive := range []string{"", "random"} {
			cnf := "load-" + autostart + directive + ".cnf"
			conf := strings.Replace(providerConf, "[hsmbridge_sect]\nactivate = 1\n",
				"[hsmbridge_sect]\nactivate = 1\nhsmbridge_autostart = "+autostart+"\n", 1)
			if directive != "" {
				conf = randConf(directive, autostart)
			}
			if conf == providerConf {
				t.Fatal("providerConf changed shape: cannot add hsmbridge_autostart")
			}
			h.write(cnf, conf)
			for _, args := range [][]string{{"version"}, {"list", "-providers"}} {
				start := time.Now()
				out := h.run("", "env", append([]string{"OPENSSL_CONF=" + h.path(cnf),
					"HSMBRIDGE_HSMHOST=" + h.path("no-such-hsmhost"), "openssl"}, args...)...)
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("openssl %s with %s took %v", strings.Join(args, " "), cnf, d)
				}
				if args[0] == "list" && !strings.Contains(out, "status: active") {
					t.Errorf("openssl list -providers with %s:\n%s", cnf, out)
				}
			}
		}
	}
	if _, err := os.Stat(h.socket); err == nil {
		t.Errorf("something started a host at %s", h.socket)
	}
}
