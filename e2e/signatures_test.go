package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

const withProvider = "-provider akv_provider -provider default"

// Streaming (dgst) and one-shot (pkeyutl on a precomputed hash) signatures
// with every padding and digest the foundation offers; each is verified by
// the default provider alone against hsmhost's public key.
func TestSignatureVariantsVerifyWithDefaultProvider(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:rsa", "--kty", "RSA", "--size", "2048", "--ops", "sign")
	h.hsmhost("key", "create", "managedhsm:MyHSM:ec", "--kty", "EC", "--curve", "P-384", "--ops", "sign")
	h.write("rsa.pub", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:rsa"))
	h.write("ec.pub", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:ec"))
	h.write("data.txt", strings.Repeat("streamed through the digest ", 1000))

	streaming := []struct{ key, opts string }{
		{"rsa", "-sha256"},
		{"rsa", "-sha512"},
		{"rsa", "-sha1"},
		{"rsa", "-sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest"},
		{"rsa", "-sha384 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:max"},
		{"rsa", "-sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:20"},
		{"ec", "-sha256"},
		{"ec", "-sha384"},
		{"ec", "-sha512"},
		{"ec", "-sha1"},
	}
	for _, c := range streaming {
		verifyOpts := strings.ReplaceAll(c.opts, "rsa_pss_saltlen:max", "rsa_pss_saltlen:auto")
		h.shell(fmt.Sprintf("openssl dgst %s %s -sign managedhsm:MyHSM:%s -out sig.bin data.txt", c.opts, withProvider, c.key))
		out := h.shell(fmt.Sprintf("openssl dgst %s -verify %s.pub -signature sig.bin data.txt", verifyOpts, c.key))
		if !strings.Contains(out, "Verified OK") {
			t.Errorf("dgst %s with %s: %s", c.opts, c.key, out)
		}
	}

	oneShot := []struct{ key, digest, opts string }{
		{"rsa", "sha256", "-pkeyopt digest:sha256"},
		{"rsa", "sha384", "-pkeyopt digest:sha384 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest"},
		{"ec", "sha384", ""},
		{"ec", "sha256", ""},
	}
	for _, c := range oneShot {
		h.shell(fmt.Sprintf("openssl dgst -%s -binary data.txt > hash.bin", c.digest))
		h.shell(fmt.Sprintf("openssl pkeyutl -sign %s -inkey managedhsm:MyHSM:%s %s -in hash.bin -out sig.bin", withProvider, c.key, c.opts))
		out := h.shell(fmt.Sprintf("openssl pkeyutl -verify -pubin -inkey %s.pub %s -in hash.bin -sigfile sig.bin", c.key, c.opts))
		if !strings.Contains(out, "Signature Verified Successfully") {
			t.Errorf("pkeyutl -sign %s %s: %s", c.key, c.opts, out)
		}
		// And the check can fail: another hash must not verify.
		h.shell("openssl rand 48 | head -c " + strconv.Itoa(map[string]int{"sha256": 32, "sha384": 48}[c.digest]) + " > other.bin")
		if out, err := h.try("", "sh", "-c", fmt.Sprintf("openssl pkeyutl -verify -pubin -inkey %s.pub %s -in other.bin -sigfile sig.bin", c.key, c.opts)); err == nil {
			t.Errorf("a signature verified over another hash: %s", out)
		}
	}

	// A precomputed hash whose length does not match the digest is refused.
	h.write("short.bin", "0123456789")
	if out, err := h.try("", "sh", "-c", "openssl pkeyutl -sign "+withProvider+" -inkey managedhsm:MyHSM:rsa -pkeyopt digest:sha256 -in short.bin -out sig.bin"); err == nil {
		t.Errorf("a 10-byte 'sha256' hash was signed: %s", out)
	}
}

// With no host running, the provider starts one (hsmhost next to the module,
// build/bin) and the operation succeeds.
func TestProviderStartsHsmhostWhenNoneAnswers(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:auto", "--kty", "EC", "--curve", "P-256", "--ops", "sign")
	h.write("pub.pem", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:auto"))
	h.stop()
	h.cmd.Process = nil // stopped: the cleanup must not signal it again
	if _, err := os.Stat(h.socket); err == nil {
		t.Fatalf("socket %s still exists after hsmhost stopped", h.socket)
	}
	h.write("data.txt", "autostart\n")
	h.shell("openssl dgst -sha256 " + withProvider + " -sign managedhsm:MyHSM:auto -out sig.bin data.txt")
	t.Cleanup(func() { stopHostsServing(h.socket) })
	if out := h.shell("openssl dgst -sha256 -verify pub.pem -signature sig.bin data.txt"); !strings.Contains(out, "Verified OK") {
		t.Fatalf("after autostart: %s", out)
	}
	if n := len(hostsServing(h.socket)); n != 1 {
		t.Fatalf("%d hsmhost processes serve %s after autostart, want 1", n, h.socket)
	}
}

// hostsServing finds hsmhost processes whose environment names socket.
func hostsServing(socket string) []int {
	out, _ := exec.Command("pgrep", "-f", "hsmhost serve").Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, _ := strconv.Atoi(f)
		env, err := os.ReadFile("/proc/" + f + "/environ")
		if err == nil && strings.Contains(string(env), "HSMBRIDGE_SOCKET="+socket+"\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func stopHostsServing(socket string) {
	for _, pid := range hostsServing(socket) {
		if p, err := os.FindProcess(pid); err == nil {
			p.Signal(os.Interrupt)
		}
	}
	time.Sleep(200 * time.Millisecond)
}

// The module sets provider=<name> in its algorithms' properties from the
// name it was loaded under; a property query for another name finds nothing.
func TestProviderPropertyFollowsLoadName(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:k", "--kty", "EC", "--curve", "P-256", "--ops", "sign")
	property := map[string]string{"hsmbridge": "hsmbridge", "akv_provider": "akv", "azihsm_provider": "azihsm"}
	for module, own := range property {
		for _, asked := range property {
			out, err := h.try("", "openssl", "storeutl", "-noout", "-provider", module, "-provider", "default",
				"-propquery", "provider="+asked, "managedhsm:MyHSM:k")
			found := err == nil && strings.Contains(out, "Total found: 1")
			if found != (asked == own) {
				t.Errorf("loaded as %s, -propquery provider=%s: found=%v\n%s", module, asked, found, out)
			}
		}
	}
}
