package pkcs11backend

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/ports"
	"github.com/miekg/pkcs11"
)

// configure opens a backend and closes it again before returning: PKCS#11
// keeps one login state per application, so a backend still open in this
// process would make the next one's C_Login CKR_USER_ALREADY_LOGGED_IN
// whatever its PIN (the plugin has one backend per process).
func configure(t *testing.T, s map[string]string) (*Backend, error) {
	t.Helper()
	b := New()
	err := b.Configure(context.Background(), s)
	if err == nil {
		b.pool.ctx.Finalize()
		b.pool.ctx.Destroy()
	}
	return b, err
}

func TestPINFromFileAndEnvironment(t *testing.T) {
	newToken(t, "tok")
	pinFile := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(pinFile, []byte("1234\n"), 0o600)
	if _, err := configure(t, map[string]string{"module": module, "token_label": "tok", "pin_file": pinFile}); err != nil {
		t.Fatalf("pin_file (with a trailing newline): %v", err)
	}
	t.Setenv("TOKEN_PIN", "1234")
	if _, err := configure(t, map[string]string{"module": module, "token_label": "tok", "pin_env": "TOKEN_PIN"}); err != nil {
		t.Fatalf("pin_env: %v", err)
	}
	t.Setenv("TOKEN_PIN", "4321")
	_, err := configure(t, map[string]string{"module": module, "token_label": "tok", "pin_env": "TOKEN_PIN"})
	if !errors.Is(err, core.ErrUnauthenticated) || strings.Contains(err.Error(), "4321") {
		t.Fatalf("a wrong PIN from the environment: %v", err)
	}
	_, err = configure(t, map[string]string{"module": module, "token_label": "tok", "pin_env": "NO_SUCH_PIN_VARIABLE"})
	if err == nil || !strings.Contains(err.Error(), "NO_SUCH_PIN_VARIABLE") || !strings.Contains(err.Error(), "pass_env") {
		t.Fatalf("an unset pin_env: %v", err)
	}
	_, err = configure(t, map[string]string{"module": module, "token_label": "tok", "pin_file": pinFile + ".missing"})
	if !errors.Is(err, core.ErrInvalidInput) || !strings.Contains(err.Error(), "pin_file") {
		t.Fatalf("a missing pin_file: %v", err)
	}
	_, err = configure(t, map[string]string{"module": module, "token_label": "tok", "pin_file": pinFile, "pin": "1234"})
	if err == nil || !strings.Contains(err.Error(), "at most one") {
		t.Fatalf("two PIN sources: %v", err)
	}
}

// The token is found by its slot ID as well as by its label; SoftHSM2
// gives an initialised token a slot ID of its own, read here from
// softhsm2-util, not from the plugin.
func TestSlot(t *testing.T) {
	newToken(t, "bySlot")
	out, err := exec.Command("softhsm2-util", "--show-slots").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)Slot (\d+)\n.*?Label:\s+bySlot`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no slot labelled bySlot in:\n%s", out)
	}
	b, err := configure(t, map[string]string{"module": module, "slot": m[1], "pin": "1234"})
	if err != nil {
		t.Fatal(err)
	}
	if b.pool.label != "bySlot" || b.namespace != "bySlot" {
		t.Fatalf("slot %s opened token %q (namespace %q)", m[1], b.pool.label, b.namespace)
	}
	if _, err := configure(t, map[string]string{"module": module, "slot": "4242424242", "pin": "1234"}); err == nil || !strings.Contains(err.Error(), "4242424242") {
		t.Fatalf("a slot that does not exist: %v", err)
	}
	for _, s := range []map[string]string{
		{"module": module, "slot": "x1", "pin": "1234"},
		{"module": module, "slot": m[1], "token_label": "bySlot", "pin": "1234"},
		{"module": module, "pin": "1234"},
	} {
		if _, err := configure(t, s); !errors.Is(err, core.ErrInvalidInput) {
			t.Errorf("%v: %v", s, err)
		}
	}
}

// What the plugin declares comes from the token's mechanism list once
// Configure has opened it, and OAEP's hashes from oaep_hashes.
func TestDeclaredSchemes(t *testing.T) {
	if d := ports.Describe("pkcs11", "test", New()); len(d.SignatureSchemes)+len(d.EncryptionSchemes) != 0 {
		t.Fatalf("an unconfigured backend declares %v %v", d.SignatureSchemes, d.EncryptionSchemes)
	}
	b := configured(t, map[string]string{"oaep_hashes": "sha1, SHA-256"})
	d := ports.Describe("pkcs11", "test", b)
	for _, want := range []string{"rsa-pkcs1v15-sha256", "rsa-pss-sha512", "ecdsa-sha384"} {
		if !slices.Contains(d.SignatureSchemes, want) {
			t.Errorf("SoftHSM2 signs with %s; declared %v", want, d.SignatureSchemes)
		}
	}
	if want := []string{"rsa-pkcs1v15", "rsa-oaep-sha1", "rsa-oaep-sha256"}; !slices.Equal(d.EncryptionSchemes, want) {
		t.Errorf("encryption schemes %v, want %v", d.EncryptionSchemes, want)
	}
	// A token without PSS (as if its list lacked it) declares none.
	b.mu.Lock()
	delete(b.mechs, pkcs11.CKM_RSA_PKCS_PSS)
	b.mu.Unlock()
	for _, n := range ports.Describe("pkcs11", "test", b).SignatureSchemes {
		if strings.HasPrefix(n, "rsa-pss") {
			t.Errorf("declares %s without CKM_RSA_PKCS_PSS", n)
		}
	}
	if _, err := configure(t, map[string]string{"module": module, "token_label": "tok", "pin": "1234", "oaep_hashes": "md5"}); !errors.Is(err, core.ErrInvalidInput) || !strings.Contains(err.Error(), "oaep_hashes") {
		t.Fatalf("oaep_hashes md5: %v", err)
	}
}

func TestDiagnose(t *testing.T) {
	if c, _ := New().Diagnose(context.Background(), ""); len(c) != 1 || c[0].OK {
		t.Fatalf("unconfigured: %+v", c)
	}
	b := configured(t, nil)
	checks, err := b.Diagnose(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]core.Check{}
	for _, c := range checks {
		byName[c.Name] = c
	}
	for _, n := range []string{"pkcs11 module loaded", "token found", "login", "mechanisms"} {
		if c, ok := byName[n]; !ok || !c.OK {
			t.Errorf("check %q: %+v", n, c)
		}
	}
	if d := byName["token found"].Detail; !strings.Contains(d, `"tok"`) {
		t.Errorf("token check names no label: %s", d)
	}
	if d := byName["mechanisms"].Detail; !strings.Contains(d, "CKM_ECDSA") || !strings.Contains(d, "CKM_RSA_PKCS_OAEP") {
		t.Errorf("mechanisms: %s", d)
	}
	checks, _ = b.Diagnose(context.Background(), "someoneelse")
	if last := checks[len(checks)-1]; last.OK || !strings.Contains(last.Detail, "someoneelse") {
		t.Errorf("another namespace: %+v", last)
	}
}
