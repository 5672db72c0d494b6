package main

import (
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/internal/secp256k1"
)

// P-256K through the CLI on the default config (the simulator): created
// with az's spelling, imported from OpenSSL's files (PKCS#8 PEM, and SEC 1
// with its EC PARAMETERS block as `openssl ecparam -genkey` writes it),
// listed, and checked by doctor, whose test signature is verified with
// internal/secp256k1 (Go's crypto has no secp256k1).
func TestCLIP256K(t *testing.T) {
	dir := shortTempDir(t)
	h := startHost(t, dir)
	out := h.mustCLI("key", "create", "managedhsm:MyHSM:k1", "--kty", "EC-HSM", "--curve", "p-256k", "--ops", "sign,verify")
	if !strings.Contains(out, "EC P-256K") {
		t.Fatalf("create printed %q", out)
	}
	block, _ := pem.Decode([]byte(h.mustCLI("key", "pubkey", "managedhsm:MyHSM:k1")))
	if block == nil {
		t.Fatal("no public key PEM")
	}
	if _, err := secp256k1.ParsePKIXPublicKey(block.Bytes); err != nil {
		t.Fatalf("pubkey: %v", err)
	}

	local, _ := secp256k1.GenerateKey(nil)
	p8, _ := secp256k1.MarshalPKCS8PrivateKey(local)
	files := map[string][]byte{"k1.pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})}
	if openssl, err := exec.LookPath("openssl"); err == nil {
		sec1, err := exec.Command(openssl, "ecparam", "-name", "secp256k1", "-genkey").Output()
		if err != nil {
			t.Fatal(err)
		}
		files["sec1.pem"] = sec1
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		os.WriteFile(path, data, 0o600)
		ref := "managedhsm:MyHSM:imported-" + strings.TrimSuffix(name, ".pem")
		if out := h.mustCLI("key", "import", ref, "--in", path, "--ops", "sign"); !strings.Contains(out, "EC P-256K") {
			t.Fatalf("import %s printed %q", name, out)
		}
		block, _ := pem.Decode([]byte(h.mustCLI("key", "pubkey", ref)))
		got, err := secp256k1.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if name == "k1.pem" && !got.Equal(&local.PublicKey) {
			t.Fatal("the imported key's public key differs")
		}
	}
	if list := h.mustCLI("key", "list", "managedhsm:MyHSM:"); strings.Count(list, "EC P-256K") != len(files)+1 {
		t.Fatalf("list:\n%s", list)
	}
	out = h.mustCLI("doctor", "managedhsm:MyHSM")
	for _, want := range []string{"managedhsm:MyHSM:k1?version=", "EC P-256K", " sign: a test signature verifies", "all checks passed"} {
		if !strings.Contains(out, want) {
			t.Fatalf("doctor output lacks %q:\n%s", want, out)
		}
	}
}
