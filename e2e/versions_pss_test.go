package e2e

import (
	"strings"
	"testing"
)

// ?version= pins the key version for signing: a key with two versions signs
// with the one named, and an unversioned reference means the latest.
func TestVersionPinsTheSigningKey(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	versionOf := func(out string) string {
		first := strings.SplitN(out, "\n", 2)[0]
		_, v, ok := strings.Cut(first, "?version=")
		if !ok {
			t.Fatalf("hsmhost key create printed no versioned reference: %q", out)
		}
		return v
	}
	v1 := versionOf(h.hsmhost("key", "create", "managedhsm:MyHSM:rot", "--kty", "EC", "--curve", "P-256", "--ops", "sign"))
	h.write("v1.pub", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:rot?version="+v1))
	v2 := versionOf(h.hsmhost("key", "create", "managedhsm:MyHSM:rot", "--kty", "EC", "--curve", "P-256", "--ops", "sign"))
	h.write("v2.pub", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:rot"))
	if v1 == v2 || h.read("v1.pub") == h.read("v2.pub") {
		t.Fatalf("second create did not make a new version: %s %s", v1, v2)
	}
	h.write("data.txt", "rotation\n")
	check := func(ref, pub string, want bool) {
		t.Helper()
		h.run("", "openssl", "dgst", "-sha256", "-provider", "akv_provider", "-provider", "default", "-sign", ref, "-out", "sig.bin", "data.txt")
		out, err := h.try("", "openssl", "dgst", "-sha256", "-verify", pub, "-signature", "sig.bin", "data.txt")
		if got := err == nil && strings.Contains(out, "Verified OK"); got != want {
			t.Errorf("signed with %s, verified with %s: %v, want %v (%s)", ref, pub, got, want, out)
		}
	}
	check("managedhsm:MyHSM:rot?version="+v1, "v1.pub", true)
	check("managedhsm:MyHSM:rot?version="+v1, "v2.pub", false)
	check("akv:vault=MyHSM,name=rot,version="+v1, "v1.pub", true)
	check("managedhsm:MyHSM:rot", "v2.pub", true)
	check("managedhsm:MyHSM:rot", "v1.pub", false)
}

// RSA-PSS signatures in certificates and CSRs carry RFC 4055 parameters
// (hash, MGF1 hash, salt length), and OpenSSL's default provider accepts them.
func TestRSAPSSCertificatesCarryRFC4055Parameters(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:pss", "--kty", "RSA", "--size", "3072", "--ops", "sign")
	pss := []string{"-sha384", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"}
	base := []string{"req", "-new", "-provider", "akv_provider", "-provider", "default", "-key", "managedhsm:MyHSM:pss", "-subj", "/CN=pss.example"}
	h.run("", "openssl", append(append(base, pss...), "-out", "pss.csr")...)
	h.run("", "openssl", append(append(append(base, "-x509", "-days", "2"), pss...), "-out", "pss.crt")...)

	if out := h.run("", "openssl", "req", "-verify", "-in", "pss.csr", "-noout"); !strings.Contains(out, "verify OK") {
		t.Fatalf("req -verify: %s", out)
	}
	if out := h.run("", "openssl", "verify", "-CAfile", "pss.crt", "pss.crt"); !strings.Contains(out, "pss.crt: OK") {
		t.Fatalf("verify: %s", out)
	}
	for _, file := range []string{"pss.csr", "pss.crt"} {
		kind := "x509"
		if strings.HasSuffix(file, ".csr") {
			kind = "req"
		}
		text := h.run("", "openssl", kind, "-in", file, "-noout", "-text")
		for _, want := range []string{"Signature Algorithm: rsassaPss", "Hash Algorithm: sha384", "Mask Algorithm: mgf1 with sha384", "Salt Length: 0x30"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q:\n%s", file, want, text)
			}
		}
	}
}
