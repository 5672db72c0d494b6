package pkcs11backend

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hsmbridge/hsmbridge/contract-tests"
	"github.com/hsmbridge/hsmbridge/core"
)

const module = "/usr/lib/softhsm/libsofthsm2.so"

// newToken makes a fresh SoftHSM2 token and returns its conf file.
func newToken(t *testing.T, label string) string {
	t.Helper()
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		if os.Getenv("HSMBRIDGE_REQUIRE_E2E") != "" {
			t.Fatal("softhsm2-util is missing and HSMBRIDGE_REQUIRE_E2E is set")
		}
		t.Skip("softhsm2-util is missing")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	os.WriteFile(conf, []byte("directories.tokendir = "+dir+"\nobjectstore.backend = file\n"), 0o600)
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", "1234", "--so-pin", "5678").CombinedOutput()
	if err != nil {
		t.Fatalf("init token: %v\n%s", err, out)
	}
	return conf
}

func configured(t *testing.T, extra map[string]string) *Backend {
	newToken(t, "tok")
	s := map[string]string{"module": module, "token_label": "tok", "pin": "1234", "sessions": "2"}
	for k, v := range extra {
		s[k] = v
	}
	b := New()
	if err := b.Configure(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.pool.ctx.Finalize(); b.pool.ctx.Destroy() })
	return b
}

func TestKeysSignDecrypt(t *testing.T) {
	b := configured(t, nil)
	ctx := context.Background()
	rk, err := b.CreateKey(ctx, core.KeyID{Name: "r"}, core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	ek, err := b.CreateKey(ctx, core.KeyID{Namespace: "tok", Name: "e"}, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}})
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("hello"))
	sig, err := b.Sign(ctx, core.KeyID{Name: "r"}, d[:], core.SignatureScheme{Padding: core.PaddingPSS, Hash: core.SHA256, SaltLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	rp, _ := rk.PublicKey()
	if err := rsa.VerifyPSS(rp.(*rsa.PublicKey), crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
		t.Fatal(err)
	}
	sig, err = b.Sign(ctx, ek.ID, d[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	ep, _ := ek.PublicKey()
	if !ecdsa.VerifyASN1(ep.(*ecdsa.PublicKey), d[:], sig) {
		t.Fatal("ecdsa signature does not verify")
	}
	for _, h := range []core.Hash{core.SHA1, core.SHA256} {
		ct, _ := rsa.EncryptOAEP(h.Crypto().New(), rand.Reader, rp.(*rsa.PublicKey), []byte("secret"), nil)
		pt, err := b.Decrypt(ctx, rk.ID, ct, core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: h})
		t.Logf("OAEP %s: %q %v", h, pt, err)
		if h == core.SHA1 && (err != nil || string(pt) != "secret") {
			t.Fatal("OAEP SHA-1 decrypt failed")
		}
	}
	ct, _ := rsa.EncryptPKCS1v15(rand.Reader, rp.(*rsa.PublicKey), []byte("secret"))
	if pt, err := b.Decrypt(ctx, rk.ID, ct, core.EncryptionScheme{Padding: core.EncryptionPKCS1v15}); err != nil || string(pt) != "secret" {
		t.Fatal(pt, err)
	}
	if _, err := b.Decrypt(ctx, ek.ID, ct, core.EncryptionScheme{Padding: core.EncryptionPKCS1v15}); err == nil {
		t.Fatal("decrypt with EC key")
	}
	if _, err := b.Sign(ctx, ek.ID, d[:5], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}); !errors.Is(err, core.ErrInvalidInput) {
		t.Fatal(err)
	}
	if _, err := b.GetKey(ctx, core.KeyID{Namespace: "other", Name: "r"}); !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "tok") {
		t.Fatal(err)
	}
	// Concurrency on a pool of 2 sessions.
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := b.Sign(ctx, ek.ID, d[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
			if err == nil && !ecdsa.VerifyASN1(ep.(*ecdsa.PublicKey), d[:], s) {
				err = errors.New("bad signature")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Recovery: every session closed behind the pool's back.
	b.pool.ctx.CloseAllSessions(b.pool.slot)
	if _, err := b.Sign(ctx, ek.ID, d[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}); err != nil {
		t.Fatalf("after C_CloseAllSessions: %v", err)
	}
	// An external key, by label.
	out, err := exec.Command("pkcs11-tool", "--module", module, "--login", "--pin", "1234", "--token-label", "tok", "--keypairgen", "--key-type", "EC:prime256v1", "--label", "ext", "--id", "01").CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool: %v\n%s", err, out)
	}
	xk, err := b.GetKey(ctx, core.KeyID{Name: "ext"})
	if err != nil || xk.ID.Version != "01" {
		t.Fatal(xk, err)
	}
	if n, err := b.DeleteKey(ctx, core.KeyID{Name: "r"}); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	keys, err := b.ListKeys(ctx, "")
	if err != nil || len(keys) != 2 {
		t.Fatal(keys, err)
	}
}

func TestBadSettings(t *testing.T) {
	newToken(t, "tok")
	err := New().Configure(context.Background(), map[string]string{"module": module, "token_label": "tok", "pin": "9999"})
	if !errors.Is(err, core.ErrUnauthenticated) || !strings.Contains(err.Error(), "CKR_PIN_INCORRECT") || strings.Contains(err.Error(), "9999") {
		t.Fatal(err)
	}
	if err := New().Configure(context.Background(), map[string]string{"modul": module}); err == nil || !strings.Contains(err.Error(), "unknown setting") {
		t.Fatal(err)
	}
	if err := New().Configure(context.Background(), map[string]string{"token_label": "tok"}); err == nil || !strings.Contains(err.Error(), "module") {
		t.Fatal(err)
	}
}

func TestContract(t *testing.T) {
	conf := newToken(t, "ct")
	bin := filepath.Join(t.TempDir(), "hsmbridge-pkcs11")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/hsmbridge-pkcs11").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	contracttests.Run(t, contracttests.Config{PluginPath: bin, Env: []string{"SOFTHSM2_CONF=" + conf},
		Settings: map[string]string{"module": module, "token_label": "ct", "pin": "1234"}, Namespace: "ct"})
}

func TestOnlyPublicImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/hsmbridge/hsmbridge/internal") {
			t.Errorf("imports %s", p)
		}
	}
}
