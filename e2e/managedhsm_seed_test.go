package e2e

import (
	"strings"
	"testing"
)

// The Managed HSM seed's commands, verbatim; OPENSSL_MODULES points OpenSSL
// at the build so `-provider akv_provider` finds our module.
const (
	seedCSR = `openssl req -new \
    -provider akv_provider -provider default \
    -key "managedhsm:MyHSM:mykey" \
    -subj "/CN=myserver.example.com" \
    -out server.csr`
	seedSelfSigned = `openssl req -new -x509 \
    -provider akv_provider -provider default \
    -key "managedhsm:MyHSM:mykey" \
    -days 365 \
    -out server.crt`
	seedSign = `openssl dgst -sha256 \
    -provider akv_provider -provider default \
    -sign "managedhsm:MyHSM:mykey" \
    -out signature.bin data.txt`
	seedVerify = `openssl dgst -sha256 -verify pubkey.pem -signature signature.bin data.txt`
)

var seedKeys = []seedKey{
	{"RSA-2048", []string{"--kty", "RSA", "--size", "2048", "--ops", "sign,decrypt"}},
	{"RSA-3072", []string{"--kty", "RSA-HSM", "--size", "3072", "--ops", "sign,decrypt"}},
	{"EC-P256", []string{"--kty", "EC", "--curve", "P-256", "--ops", "sign"}},
	{"EC-P384", []string{"--kty", "EC-HSM", "--curve", "P-384", "--ops", "sign"}},
	{"EC-P256K", []string{"--kty", "EC-HSM", "--curve", "P-256K", "--ops", "sign"}}, // secp256k1, ES256K
}

func samePEM(a, b string) bool { return strings.TrimSpace(a) == strings.TrimSpace(b) }

func TestManagedHSMSeedCommands(t *testing.T) {
	requireTool(t, "openssl")
	runSeedCommands(t, func(t *testing.T) *host { return startHost(t, "") }, seedKeys)
}

type seedKey struct {
	name   string
	create []string
}

// runSeedCommands creates each of keys as managedhsm:MyHSM:mykey in a fresh
// host made by start (whatever backend its config routes to) and runs the
// seed's commands on it.
func runSeedCommands(t *testing.T, start func(t *testing.T) *host, keys []seedKey) {
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			h := start(t)
			h.hsmhost(append([]string{"key", "create", "managedhsm:MyHSM:mykey"}, k.create...)...)
			seedFlows(t, h)
		})
	}
}

// seedFlows runs the seed's CSR, self-signed certificate and sign/verify
// commands with managedhsm:MyHSM:mykey, which must exist, and checks every
// result with the default provider against the public key hsmhost reports.
func seedFlows(t *testing.T, h *host) {
	t.Helper()
	hsmPub := h.hsmhost("key", "pubkey", "managedhsm:MyHSM:mykey")
	if !strings.Contains(hsmPub, "BEGIN PUBLIC KEY") {
		t.Fatalf("hsmhost key pubkey printed:\n%s", hsmPub)
	}

	// CSR: self-signature checked by the default provider, key is the HSM's.
	h.shell(seedCSR)
	if out := h.run("", "openssl", "req", "-verify", "-in", "server.csr", "-noout"); !strings.Contains(out, "verify OK") {
		t.Fatalf("openssl req -verify: %s", out)
	}
	if csrPub := h.run("", "openssl", "req", "-in", "server.csr", "-noout", "-pubkey"); !samePEM(csrPub, hsmPub) {
		t.Fatalf("CSR public key differs from the HSM key:\n%s\nvs\n%s", csrPub, hsmPub)
	}

	// Self-signed certificate: the seed command prompts for a DN;
	// answering with empty lines takes openssl.cnf's defaults.
	h.run(strings.Repeat("\n", 12), "sh", "-c", seedSelfSigned)
	if out := h.run("", "openssl", "verify", "-CAfile", "server.crt", "server.crt"); !strings.Contains(out, "server.crt: OK") {
		t.Fatalf("openssl verify: %s", out)
	}
	if certPub := h.run("", "openssl", "x509", "-in", "server.crt", "-noout", "-pubkey"); !samePEM(certPub, hsmPub) {
		t.Fatal("certificate public key differs from the HSM key")
	}

	// Sign a file; verify with the public key from hsmhost and from
	// `openssl pkey -pubout` on the reference.
	h.write("data.txt", "hello from hsmbridge\n")
	h.shell(seedSign)
	h.write("pubkey.pem", hsmPub)
	if out := h.shell(seedVerify); !strings.Contains(out, "Verified OK") {
		t.Fatalf("verify with hsmhost's public key: %s", out)
	}
	pkeyPub := h.run("", "openssl", "pkey", "-provider", "akv_provider", "-provider", "default",
		"-in", "managedhsm:MyHSM:mykey", "-pubout")
	if !samePEM(pkeyPub, hsmPub) {
		t.Fatalf("openssl pkey -pubout on the reference:\n%s\nvs hsmhost:\n%s", pkeyPub, hsmPub)
	}

	// The check can fail: altered data must not verify.
	h.write("data.txt", "hello from hsmbridge!\n")
	if out, err := h.try("", "sh", "-c", seedVerify); err == nil || !strings.Contains(out, "Verification failure") {
		t.Fatalf("altered data verified: %v %s", err, out)
	}
}

func TestProviderPathAndReferenceForms(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:mykey", "--kty", "EC", "--curve", "P-256", "--ops", "sign")
	h.write("pubkey.pem", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:mykey"))
	h.write("data.txt", "reference forms\n")
	version := ""
	for _, line := range strings.Split(h.hsmhost("key", "show", "managedhsm:MyHSM:mykey"), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "version:"); ok {
			version = strings.TrimSpace(v)
		}
	}
	if len(version) != 32 {
		t.Fatalf("version %q is not 32 hex characters", version)
	}
	refs := []string{
		"managedhsm:MyHSM:mykey",
		"managedhsm:MyHSM:mykey?version=" + version,
		"akv:vault=MyHSM,name=mykey",
		"akv:vault=MyHSM,name=mykey,version=" + version,
	}
	for _, provider := range []string{"akv_provider", "hsmbridge"} {
		for _, ref := range refs {
			h.run("", "openssl", "dgst", "-sha256", "-provider-path", modulesDir, "-provider", provider, "-provider", "default",
				"-sign", ref, "-out", "sig.bin", "data.txt")
			if out := h.shell(seedVerify[:len(seedVerify)-len("signature.bin data.txt")] + "sig.bin data.txt"); !strings.Contains(out, "Verified OK") {
				t.Fatalf("%s via %s: %s", ref, provider, out)
			}
		}
	}
}

func TestErrorsNameTheReferenceAndTheCause(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:deconly", "--kty", "RSA", "--size", "2048", "--ops", "decrypt")
	h.write("data.txt", "x\n")
	cases := []struct{ ref, want string }{
		{"managedhsm:MyHSM:nokey", "not found"},
		{"managedhsm:MyHSM:nokey?version=00000000000000000000000000000000", "not found"},
		{"akv:vault=MyHSM", "missing name"},
		{"managedhsm:MyHSM:deconly", "sign"},
	}
	for _, c := range cases {
		out, err := h.try("", "openssl", "dgst", "-sha256", "-provider", "akv_provider", "-provider", "default",
			"-sign", c.ref, "-out", "sig.bin", "data.txt")
		if err == nil {
			t.Errorf("signing with %s succeeded", c.ref)
			continue
		}
		if !strings.Contains(out, c.ref) || !strings.Contains(out, c.want) {
			t.Errorf("signing with %s: error does not name the reference and %q:\n%s", c.ref, c.want, out)
		}
	}
}

// Programs that only take a key file path load the key from a key-reference
// PEM once openssl.cnf activates the provider.
func TestKeyReferenceFile(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:tls", "--kty", "RSA", "--size", "2048", "--ops", "sign")
	hsmPub := h.hsmhost("key", "pubkey", "managedhsm:MyHSM:tls")
	ref := h.hsmhost("key", "ref", "managedhsm:MyHSM:tls")
	if !strings.Contains(ref, "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("hsmhost key ref printed:\n%s", ref)
	}
	// A certificate first, as HAProxy bundles do: the reference is still found.
	h.write("bundle.pem", "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"+ref)
	h.write("key.pem", ref)
	h.write("openssl.cnf", providerConf)
	for _, file := range []string{"key.pem", "bundle.pem"} {
		out := h.run("", "env", "OPENSSL_CONF="+h.path("openssl.cnf"), "openssl", "pkey", "-in", file, "-pubout")
		if !samePEM(out, hsmPub) {
			t.Fatalf("openssl pkey -in %s -pubout:\n%s\nwant\n%s", file, out, hsmPub)
		}
	}
	h.write("data.txt", "key file\n")
	h.write("pubkey.pem", hsmPub)
	h.run("", "env", "OPENSSL_CONF="+h.path("openssl.cnf"), "openssl", "dgst", "-sha256", "-sign", "key.pem", "-out", "signature.bin", "data.txt")
	if out := h.shell(seedVerify); !strings.Contains(out, "Verified OK") {
		t.Fatalf("signature with key.pem: %s", out)
	}
}

// providerConf activates default and hsmbridge and sets no default property
// query, as the seed's nginx example does.
const providerConf = `openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
default = default_sect
hsmbridge = hsmbridge_sect

[default_sect]
activate = 1

[hsmbridge_sect]
activate = 1
`
