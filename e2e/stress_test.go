package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// adapters/openssl/tests/stress.c: a fork between DigestSignUpdate and
// Final (both sides must finish their signature), 16 threads signing with
// one loaded key, and a child forked while they run. Every signature is
// verified in a library context with only the default provider.
func TestProviderStressThreadsAndFork(t *testing.T) {
	h := startHost(t, "")
	stress := filepath.Join(buildDir, "bin", "hsmbridge-stress")
	for _, k := range []struct{ name, args string }{{"rsa", "--kty RSA --size 2048"}, {"ec", "--kty EC --curve P-256"}} {
		ref := "managedhsm:MyHSM:stress-" + k.name
		h.hsmhost(append(append([]string{"key", "create", ref}, strings.Fields(k.args)...), "--ops", "sign")...)
		out := h.run("", stress, modulesDir, "akv_provider", ref, "16", "25")
		if !strings.Contains(out, "all verified") {
			t.Fatalf("%s: %s", k.name, out)
		}
	}
}
