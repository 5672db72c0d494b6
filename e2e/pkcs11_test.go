package e2e

// The PKCS#11 plugin (plugins/pkcs11) on a real SoftHSM2 token: the Managed
// HSM seed's commands and nginx with forked workers, with references routed
// to the token by hsmhost's config alone, and a key made outside hsmbridge
// with pkcs11-tool used by its label and by its RFC 7512 URI.

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	softToken = "hsmbridge" // the token's CKA label
	softPIN   = "1234"
)

func softhsmModule(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("HSMBRIDGE_REQUIRE_E2E") != "" {
		t.Fatal("SoftHSM2's module is not installed (make deps installs softhsm2)")
	}
	t.Skip("SoftHSM2's module is not installed")
	return ""
}

// pkcs11Setup makes a fresh SoftHSM2 token in its own directory and returns
// the hsmhost config that routes managedhsm:MyHSM: and pkcs11: references to
// the PKCS#11 plugin serving it, and the environment hsmhost needs.
func pkcs11Setup(t *testing.T) (config string, env []string) {
	t.Helper()
	requireBuild(t)
	requireTool(t, "softhsm2-util")
	module := softhsmModule(t)
	plugin := filepath.Join(buildDir, "plugins", "hsmbridge-pkcs11")
	if _, err := os.Stat(plugin); err != nil {
		if os.Getenv("HSMBRIDGE_REQUIRE_E2E") != "" {
			t.Fatalf("%s is missing: run make build", plugin)
		}
		t.Skipf("%s is missing: run make build", plugin)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	tokens := filepath.Join(dir, "tokens")
	os.MkdirAll(tokens, 0o700)
	os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600)
	pinFile := filepath.Join(dir, "pin")
	os.WriteFile(pinFile, []byte(softPIN+"\n"), 0o600)
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", softToken, "--pin", softPIN, "--so-pin", "5678")
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	config = fmt.Sprintf(`
backend "p11" {
  plugin   = %q
  pass_env = ["SOFTHSM2_CONF"]
  settings = {
    module      = %q
    token_label = %q
    pin_file    = %q
    namespace   = "MyHSM"
  }
}
route {
  prefix  = "managedhsm:MyHSM:"
  backend = "p11"
}
route {
  prefix  = "pkcs11:"
  backend = "p11"
}
`, plugin, module, softToken, pinFile)
	return config, []string{"SOFTHSM2_CONF=" + conf}
}

func startPKCS11Host(t *testing.T, extra string) (*host, []string) {
	t.Helper()
	config, env := pkcs11Setup(t)
	h := startHostWithEnv(t, extra+config, env)
	h.backend = "p11"
	return h, env
}

// The seed's CSR, self-signed certificate and dgst sign flows, each key
// generated inside the token by `hsmhost key create`.
func TestPKCS11SeedCommands(t *testing.T) {
	requireTool(t, "openssl")
	var keys []seedKey
	for _, k := range seedKeys {
		if k.name != "EC-P256K" { // the plugin makes the NIST curves only
			keys = append(keys, k)
		}
	}
	runSeedCommands(t, func(t *testing.T) *host { h, _ := startPKCS11Host(t, ""); return h }, keys)
}

// nginx with 4 workers serving an RSA 3072 and an EC P-256 key from the
// token over TLS 1.2 and 1.3: 200 fresh connections, every one a success.
func TestPKCS11NginxKeylessTLS(t *testing.T) {
	requireNginx(t)
	hostConfig, workerUser := nginxWorkerAccess(t)
	h, _ := startPKCS11Host(t, hostConfig)
	nginxKeylessTLS(t, h, hostConfig, workerUser)
}

// A key pair made with pkcs11-tool, outside hsmbridge, signs through the
// provider by its label and by its pkcs11: URI; the signature verifies with
// the public key read from the token by pkcs11-tool.
func TestPKCS11KeyMadeOutsideByLabelAndURI(t *testing.T) {
	requireTool(t, "openssl")
	tool := requireTool(t, "pkcs11-tool")
	h, env := startPKCS11Host(t, "")
	module := softhsmModule(t)
	p11 := func(args ...string) {
		t.Helper()
		cmd := exec.Command(tool, append([]string{"--module", module, "--token-label", softToken}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Dir = h.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pkcs11-tool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, k := range []struct{ label, id, keyType string }{{"ext-ec", "01", "EC:prime256v1"}, {"ext-rsa", "02", "rsa:2048"}} {
		t.Run(k.label, func(t *testing.T) {
			p11("--login", "--pin", softPIN, "--keypairgen", "--key-type", k.keyType, "--label", k.label, "--id", k.id, "--usage-sign")
			p11("--read-object", "--type", "pubkey", "--label", k.label, "--output-file", k.label+".der")
			h.run("", "openssl", "pkey", "-pubin", "-inform", "DER", "-in", k.label+".der", "-out", k.label+".pub")
			h.write("data.txt", "signed by a key hsmbridge did not make\n")
			for _, ref := range []string{
				"managedhsm:MyHSM:" + k.label,
				"pkcs11:token=" + softToken + ";object=" + k.label + ";type=private",
				"pkcs11:object=" + k.label + ";id=%" + k.id,
			} {
				os.Remove(h.path("sig.bin"))
				h.run("", "openssl", "dgst", "-sha256", "-provider", "akv_provider", "-provider", "default",
					"-sign", ref, "-out", "sig.bin", "data.txt")
				if out := h.run("", "openssl", "dgst", "-sha256", "-verify", k.label+".pub", "-signature", "sig.bin", "data.txt"); !strings.Contains(out, "Verified OK") {
					t.Fatalf("%s: %s", ref, out)
				}
				// The check can fail: the signature is over data.txt only.
				h.write("other.txt", "something else\n")
				if _, err := h.try("", "openssl", "dgst", "-sha256", "-verify", k.label+".pub", "-signature", "sig.bin", "other.txt"); err == nil {
					t.Fatalf("%s: a signature verified over other data", ref)
				}
			}
		})
	}
	// A label the token does not hold is named in the error.
	out, err := h.try("", "openssl", "dgst", "-sha256", "-provider", "akv_provider", "-provider", "default",
		"-sign", "pkcs11:token="+softToken+";object=no-such-key", "-out", "sig.bin", "data.txt")
	if err == nil || !strings.Contains(out, "no-such-key") {
		t.Fatalf("a missing key: err %v, output:\n%s", err, out)
	}
}

// The seed's OAEP decrypt flow on the token, with the schemes SoftHSM2's
// CKM_RSA_PKCS_OAEP takes (SHA-1 only) and PKCS#1 v1.5; OAEP with SHA-256
// is refused with the key and the token's reason, never garbage.
func TestPKCS11DecryptSeed(t *testing.T) {
	requireTool(t, "openssl")
	h, _ := startPKCS11Host(t, "")
	var supported []struct{ name, opts string }
	for _, s := range encryptionSchemes {
		if strings.Contains(s.opts, "sha2") || strings.Contains(s.opts, "sha384") || strings.Contains(s.opts, "sha512") || strings.Contains(s.opts, "label") {
			continue
		}
		supported = append(supported, s)
	}
	if len(supported) != 4 {
		t.Fatalf("%d schemes kept; the list in decrypt_test.go changed", len(supported))
	}
	h.hsmhost("key", "create", "managedhsm:MyHSM:myrsakey", "--kty", "RSA", "--size", "3072", "--ops", "sign,decrypt")
	h.write("myrsakey.pub", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:myrsakey"))
	plain := randomFile(t, h, "plaintext.bin", 32)
	for _, s := range supported {
		h.shell(fmt.Sprintf("openssl pkeyutl -encrypt -pubin -inkey myrsakey.pub %s -in plaintext.bin -out ciphertext.bin", s.opts))
		os.Remove(h.path("decrypted.bin"))
		h.shell(fmt.Sprintf("openssl pkeyutl -decrypt %s -inkey managedhsm:MyHSM:myrsakey %s -in ciphertext.bin -out decrypted.bin", withProvider, s.opts))
		if got := readBytes(t, h, "decrypted.bin"); !bytes.Equal(got, plain) {
			t.Errorf("%s: decrypted %x, want %x", s.name, got, plain)
		}
	}
	// A ciphertext made by Go's crypto/rsa, not by OpenSSL.
	block, _ := pem.Decode([]byte(h.read("myrsakey.pub")))
	if block == nil {
		t.Fatal("hsmhost key pubkey did not print PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub.(*rsa.PublicKey), plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(h.path("go.bin"), ct, 0o644)
	if got := h.run("", "openssl", "pkeyutl", "-decrypt", "-provider", "akv_provider", "-provider", "default",
		"-inkey", "managedhsm:MyHSM:myrsakey", "-pkeyopt", "rsa_padding_mode:oaep", "-in", "go.bin"); got != string(plain) {
		t.Errorf("Go's OAEP ciphertext decrypted to %x, want %x", got, plain)
	}
	h.shell("openssl pkeyutl -encrypt -pubin -inkey myrsakey.pub -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in plaintext.bin -out ciphertext.bin")
	out, err := h.try("", "sh", "-c", "openssl pkeyutl -decrypt "+withProvider+" -inkey managedhsm:MyHSM:myrsakey -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in ciphertext.bin -out decrypted.bin")
	if err == nil || !strings.Contains(out, "managedhsm:MyHSM:myrsakey") {
		t.Fatalf("OAEP SHA-256 on SoftHSM2: err %v, output:\n%s", err, out)
	}
	t.Logf("refused as: %s", strings.TrimSpace(out))
}
