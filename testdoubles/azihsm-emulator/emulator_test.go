package azihsmemulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// repoRoot is the repository's top directory (this file is two below it).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// requireOrSkip fails under HSMBRIDGE_REQUIRE_E2E=1 and skips otherwise.
func requireOrSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("HSMBRIDGE_REQUIRE_E2E") == "1" {
		t.Fatalf(format+" (required: HSMBRIDGE_REQUIRE_E2E=1)", args...)
	}
	t.Skipf(format, args...)
}

// emulatorLib is the built library, or the test skips (or fails, see above).
func emulatorLib(t *testing.T) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "build", "emulator", "libazihsm_api_native.so")
	if _, err := os.Stat(p); err != nil {
		requireOrSkip(t, "the emulated device library is missing (%v): make emulator builds it", err)
	}
	return p
}

// xNames lists the X(name, ...) entries of the X-macro named macro in a header.
func xNames(t *testing.T, header, macro string) []string {
	t.Helper()
	src, err := os.ReadFile(header)
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	i := strings.Index(text, "#define "+macro+"(X)")
	if i < 0 {
		t.Fatalf("%s: no %s", header, macro)
	}
	// The macro ends at the first line that is not continued.
	body := text[i:]
	if j := regexp.MustCompile(`[^\\]\n`).FindStringIndex(body); j != nil {
		body = body[:j[1]]
	}
	var names []string
	for _, m := range regexp.MustCompile(`X\((azihsm_\w+),`).FindAllStringSubmatch(body, -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("%s: %s lists no function", header, macro)
	}
	return names
}

// The version script, the headers and the built library name the same calls.
func TestExportsMatchTheHeaders(t *testing.T) {
	root := repoRoot(t)
	want := append(xNames(t, filepath.Join(root, "adapters", "azihsm-device", "include", "azihsm_api.h"), "AZIHSM_API_FUNCTIONS"),
		xNames(t, filepath.Join(root, "testdoubles", "azihsm-emulator", "azihsm_emu.h"), "AZIHSM_EMU_FUNCTIONS")...)
	slices.Sort(want)

	script, err := os.ReadFile(filepath.Join(root, "testdoubles", "azihsm-emulator", "emulator.map"))
	if err != nil {
		t.Fatal(err)
	}
	global := string(script)
	if i := strings.Index(global, "global:"); i >= 0 {
		global = global[i+len("global:"):]
	}
	if i := strings.Index(global, "local:"); i >= 0 {
		global = global[:i]
	}
	var mapped []string
	for _, m := range regexp.MustCompile(`(azihsm_\w+);`).FindAllStringSubmatch(global, -1) {
		mapped = append(mapped, m[1])
	}
	slices.Sort(mapped)
	if !slices.Equal(mapped, want) {
		t.Errorf("emulator.map exports\n  %v\nthe headers declare\n  %v", mapped, want)
	}

	lib := emulatorLib(t)
	f, err := elf.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	var exported []string
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Section != elf.SHN_UNDEF &&
			elf.ST_BIND(s.Info) == elf.STB_GLOBAL {
			exported = append(exported, s.Name)
		}
	}
	slices.Sort(exported)
	if !slices.Equal(exported, want) {
		t.Errorf("%s exports\n  %v\nthe headers declare\n  %v", lib, exported, want)
	}
}

// buildCTest compiles tests/emu_test.c into dir.
func buildCTest(t *testing.T, dir string) string {
	t.Helper()
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		requireOrSkip(t, "no C compiler (%s): %v", cc, err)
	}
	root := repoRoot(t)
	bin := filepath.Join(dir, "emu_test")
	cmd := exec.Command(cc, "-O1", "-g", "-Wall", "-Wextra",
		"-I"+filepath.Join(root, "adapters", "azihsm-device", "include"),
		"-I"+filepath.Join(root, "testdoubles", "azihsm-emulator"),
		"-o", bin, filepath.Join(root, "testdoubles", "azihsm-emulator", "tests", "emu_test.c"),
		"-ldl", "-lcrypto")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	if len(bytes.TrimSpace(out)) > 0 {
		t.Logf("compiler output:\n%s", out)
	}
	return bin
}

// writeRSAKeys makes the RSA keys the C test imports: generating 3072- and
// 4096-bit keys in C under valgrind takes minutes, in Go a second.
func writeRSAKeys(t *testing.T, dir string) {
	t.Helper()
	for _, bits := range []int{2048, 3072, 4096} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("rsa-%d.der", bits)), der, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

var summary = regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed$`)

// runCTest runs argv (the test, maybe under valgrind) on a fresh state
// directory and returns its combined output; it fails the test on a
// non-zero exit or a missing or failing summary line.
func runCTest(t *testing.T, keys string, argv ...string) string {
	t.Helper()
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-10*time.Second))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(),
		"AZIHSM_EMU_STATE_DIR="+filepath.Join(t.TempDir(), "state"),
		"EMU_TEST_RSA_KEYS="+keys)
	out, err := cmd.CombinedOutput()
	m := summary.FindAllStringSubmatch(string(out), -1)
	switch {
	case err != nil:
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	case len(m) != 1 || m[0][2] != "0":
		t.Fatalf("%s: want one \"N passed, 0 failed\" line\n%s", strings.Join(argv, " "), out)
	}
	t.Logf("%s passed, 0 failed", m[0][1])
	return string(out)
}

// The C test program drives the library through dlopen as a client would;
// under valgrind, any memory error or definite leak fails it.
func TestEmulatorC(t *testing.T) {
	lib := emulatorLib(t)
	dir := t.TempDir()
	bin := buildCTest(t, dir)
	keys := filepath.Join(dir, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	writeRSAKeys(t, keys)

	t.Run("native", func(t *testing.T) {
		runCTest(t, keys, bin, lib)
	})
	t.Run("valgrind", func(t *testing.T) {
		vg, err := exec.LookPath("valgrind")
		if err != nil {
			t.Skip("valgrind is not installed (scripts/install-deps.sh installs it)")
		}
		out := runCTest(t, keys, vg, "--error-exitcode=99", "--leak-check=full",
			"--errors-for-leak-kinds=definite", "--track-origins=yes",
			// The test dlcloses the library before exit: keep its symbols.
			"--keep-debuginfo=yes", bin, lib)
		if m := regexp.MustCompile(`definitely lost: ([\d,]+) bytes`).FindStringSubmatch(out); m != nil && m[1] != "0" {
			t.Fatalf("valgrind reports a definite leak:\n%s", out)
		}
		if !strings.Contains(out, "ERROR SUMMARY: 0 errors") {
			t.Fatalf("valgrind reports errors:\n%s", out)
		}
	})
}
