package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildSimulatorPlugin builds the simulator as a stand-alone plugin binary
// and returns its path and its SHA-256, computed here.
func buildSimulatorPlugin(t *testing.T) (string, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hsmbridge-simulator")
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "../../plugins/simulator/cmd/hsmbridge-simulator").CombinedOutput()
	if err != nil {
		t.Fatalf("building the simulator plugin: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return bin, hex.EncodeToString(sum[:])
}

func runHsmhost(t *testing.T, timeout time.Duration, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(hsmhostBin, args...)
	cmd.Env = append(os.Environ(), "HSMBRIDGE_CONFIG=")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("hsmhost %s did not end within %s\n%s%s", strings.Join(args, " "), timeout, o.String(), e.String())
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

func TestPluginVerify(t *testing.T) {
	bin, sum := buildSimulatorPlugin(t)
	out, errOut, code := runHsmhost(t, 30*time.Second, "plugin", "verify", bin)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"sha256:     " + sum, "protocol:   1", "declares:   simulator", "operations: get_key", "sign", fmt.Sprintf("sha256 = %q", sum)} {
		if !strings.Contains(out, want) {
			t.Errorf("verify's output lacks %q:\n%s", want, out)
		}
	}

	// Not a plugin: a program that exits at once, then one that is not
	// executable at all, then a FIFO (which must not be waited on).
	for _, c := range []struct{ file, want string }{
		{"/bin/true", "not a usable hsmbridge backend plugin"},
		{"/etc/hostname", "not a usable hsmbridge backend plugin"},
		{mkfifo(t), "not a regular file"},
		{filepath.Join(t.TempDir(), "missing"), "no such file"},
	} {
		out, errOut, code := runHsmhost(t, 30*time.Second, "plugin", "verify", c.file)
		if code != 1 || !strings.Contains(errOut, c.want) || strings.Contains(out, "pin it") {
			t.Errorf("verify %s: exit %d, want 1 and %q\n%s%s", c.file, code, c.want, out, errOut)
		}
	}
	if _, _, code := runHsmhost(t, 10*time.Second, "plugin", "verify"); code != 2 {
		t.Errorf("verify without a file: exit %d, want 2", code)
	}
}

func mkfifo(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const pluginListConfig = `
backend "sim" {
  plugin   = "builtin:simulator"
  settings = { state_dir = %q }
}
backend "pinned" {
  plugin = %q
  sha256 = %q
}
backend "unpinned" {
  plugin = %q
}
route {
  prefix  = "hsmbridge:"
  backend = "sim"
}
`

func TestPluginList(t *testing.T) {
	bin, sum := buildSimulatorPlugin(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hsmhost.hcl")
	write := func(pin string) {
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(pluginListConfig, filepath.Join(dir, "state"), bin, pin, bin)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(sum)
	out, errOut, code := runHsmhost(t, 60*time.Second, "plugin", "list", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	sections := strings.Split(out, "\nbackend ")
	if len(sections) != 4 {
		t.Fatalf("want three backends listed:\n%s", out)
	}
	for i, want := range [][]string{
		{`"sim"`, "built into hsmhost", "protocol:   1", "operations: get_key"},
		{`"pinned"`, "pinned " + sum + ", the binary matches", "protocol:   1", "declares:   simulator"},
		{`"unpinned"`, "not pinned; the binary's is " + sum, "protocol:   1"},
	} {
		for _, w := range want {
			if !strings.Contains(sections[i+1], w) {
				t.Errorf("backend %d lacks %q:\n%s", i+1, w, sections[i+1])
			}
		}
	}

	// A pin the binary does not match: reported, the binary not run, exit 1.
	wrong := strings.Repeat("0", 64)
	write(wrong)
	out, errOut, code = runHsmhost(t, 60*time.Second, "plugin", "list", "--config", cfg)
	pinned := out[strings.Index(out, `backend "pinned"`):]
	pinned = pinned[:strings.Index(pinned, `backend "unpinned"`)]
	if code != 1 || !strings.Contains(pinned, "DOES NOT MATCH (it is "+sum+")") || strings.Contains(pinned, "protocol:") || !strings.Contains(errOut, "1 plugin(s)") {
		t.Fatalf("a mismatched pin: exit %d\n%s%s", code, out, errOut)
	}
}
