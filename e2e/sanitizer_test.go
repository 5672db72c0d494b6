package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The provider module built with AddressSanitizer and UBSan (make
// provider-asan) under the seed's commands and nginx: any report of either
// sanitizer ends the process with an error (halt_on_error, no recovery), so
// the command, or nginx's handshakes, fail. Leaks are valgrind's business
// (TestHardeningNoLeakUnderValgrind): libcrypto leaves memory at exit that
// LeakSanitizer would report and that is not ours.

// sanitizedHost is startHost whose processes load the sanitized module,
// with the sanitizer runtime preloaded (it must come first).
func sanitizedHost(t *testing.T, config string) *host {
	t.Helper()
	asan := filepath.Join(buildDir, "asan", "ossl-modules")
	if _, err := os.Stat(filepath.Join(asan, "hsmbridge.so")); err != nil {
		if os.Getenv("HSMBRIDGE_REQUIRE_E2E") != "" {
			t.Fatalf("the sanitized provider is not built (%v): run make build", err)
		}
		t.Skipf("the sanitized provider is not built (%v)", err)
	}
	out, err := exec.Command("cc", "-print-file-name=libasan.so").Output()
	runtime := strings.TrimSpace(string(out))
	if err != nil || !filepath.IsAbs(runtime) {
		t.Skipf("no libasan runtime to preload (%v %q)", err, runtime)
	}
	h := startHost(t, config)
	h.modules = asan
	h.extraEnv = []string{"LD_PRELOAD=" + runtime,
		"ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86",
		"UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=87"}
	return h
}

// TestSanitizedProviderSeedCommands runs every command the two seed
// documents give (the "seed" rows of the conformance table, with their
// checks) on the sanitized module.
func TestSanitizedProviderSeedCommands(t *testing.T) {
	requireTool(t, "openssl")
	requireBuild(t)
	var rows []seedRow
	for _, r := range conformanceRows() {
		if r.seed || strings.HasPrefix(r.name, "azihsm/chain-") || strings.Contains(r.name, "kbkdf") || strings.Contains(r.name, "hmac") {
			rows = append(rows, r)
		}
	}
	// Prerequisites of the chosen rows come along.
	byName := map[string]seedRow{}
	for _, r := range conformanceRows() {
		byName[r.name] = r
	}
	chosen := map[string]bool{}
	for _, r := range rows {
		chosen[r.name] = true
	}
	for i := 0; i < len(rows); i++ {
		for _, p := range rows[i].requires {
			if !chosen[p] {
				chosen[p] = true
				rows = append(rows, byName[p])
			}
		}
	}
	runSeedRows(t, rows, func(t *testing.T) *host { return sanitizedHost(t, "") })
}

func TestSanitizedProviderUnderNginx(t *testing.T) {
	requireNginx(t)
	hostConfig, workerUser := nginxWorkerAccess(t)
	nginxKeylessTLS(t, sanitizedHost(t, hostConfig), hostConfig, workerUser)
}
