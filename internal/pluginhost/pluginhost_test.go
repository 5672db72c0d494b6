package pluginhost

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
)

var testPlugin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pluginhost-test")
	if err != nil {
		panic(err)
	}
	testPlugin = filepath.Join(dir, "testplugin")
	out, err := exec.Command("go", "build", "-o", testPlugin, "./testdata/testplugin").CombinedOutput()
	if err != nil {
		panic("building test plugin: " + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func fileSHA256(t *testing.T, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func start(t *testing.T, spec Spec) *Backend {
	t.Helper()
	b, err := Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func signAndVerify(t *testing.T, b *Backend) {
	t.Helper()
	ctx := context.Background()
	info, err := b.GetKey(ctx, core.KeyID{Namespace: "n", Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("hello"))
	sig, err := b.Sign(ctx, info.ID, digest[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(info.PublicKeyDER)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatal("signature from the plugin does not verify")
	}
}

func TestPinnedChecksumIsEnforced(t *testing.T) {
	good := start(t, Spec{Name: "pinned", Command: testPlugin, SHA256: fileSHA256(t, testPlugin)})
	signAndVerify(t, good)

	wrong := strings.Repeat("00", 32)
	_, err := Start(context.Background(), Spec{Name: "tampered", Command: testPlugin, SHA256: wrong})
	if err == nil {
		t.Fatal("a plugin whose checksum does not match was started")
	}
	if !errors.Is(err, core.ErrPermissionDenied) || !strings.Contains(err.Error(), "does not match its pinned sha256") {
		t.Fatalf("unexpected error: %v", err)
	}
}

func TestUndeclaredOperationIsRefusedWithoutACall(t *testing.T) {
	b := start(t, Spec{Name: "t", Command: testPlugin})
	d := b.Description()
	if !d.Supports(core.OpSign) || d.Supports(core.OpDecrypt) {
		t.Fatalf("declared %v", d.Operations)
	}
	_, err := b.Decrypt(context.Background(), core.KeyID{Name: "k"}, []byte("x"), core.EncryptionScheme{Padding: core.EncryptionPKCS1v15})
	if !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("decrypt on a backend without it: %v", err)
	}
	_, err = b.Sign(context.Background(), core.KeyID{Name: "k"}, make([]byte, 48), core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA384})
	if !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("undeclared scheme: %v", err)
	}
}

func TestErrorKindsCrossTheBoundary(t *testing.T) {
	b := start(t, Spec{Name: "t", Command: testPlugin})
	_, err := b.GetKey(context.Background(), core.KeyID{Name: "nope"})
	if !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), `"nope" not found`) {
		t.Fatalf("got %v", err)
	}
}

func TestKeyOperationsTakeTheDataPathUnlessGRPCIsAsked(t *testing.T) {
	for _, want := range []string{"socket", "grpc"} {
		t.Run(want, func(t *testing.T) {
			if want == "grpc" {
				t.Setenv("HSMBRIDGE_DATA_PATH", "grpc")
			}
			b := start(t, Spec{Name: "t", Command: testPlugin})
			if got := b.DataPath(); got != want {
				t.Fatalf("data path %q", got)
			}
			signAndVerify(t, b)
			_, err := b.GetKey(context.Background(), core.KeyID{Name: "nope"})
			if !errors.Is(err, core.ErrNotFound) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// TestUnavailableAnswerIsPassedOnAtOnce: only a broken connection makes the
// host wait to see whether the plugin exited.
func TestUnavailableAnswerIsPassedOnAtOnce(t *testing.T) {
	b := start(t, Spec{Name: "t", Command: testPlugin})
	start := time.Now()
	_, err := b.Sign(context.Background(), core.KeyID{Name: "busy"}, make([]byte, 32),
		core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "busy (503)") {
		t.Fatalf("got %v", err)
	}
	if el := time.Since(start); el > exitNoticeTime/2 {
		t.Fatalf("the answer took %s: the host waited for an exit that was not coming", el)
	}
}

func TestPluginThatDiesFailsInFlightAndIsRestarted(t *testing.T) {
	for _, path := range []string{"socket", "grpc"} {
		t.Run(path, func(t *testing.T) {
			if path == "grpc" {
				t.Setenv("HSMBRIDGE_DATA_PATH", "grpc")
			}
			pluginDiesInFlight(t)
		})
	}
}

func pluginDiesInFlight(t *testing.T) {
	b := start(t, Spec{Name: "crashy", Command: testPlugin})
	firstPID := b.PID()
	done := make(chan error, 1)
	go func() {
		_, err := b.Sign(context.Background(), core.KeyID{Name: "crash"}, make([]byte, 32),
			core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "plugin exited during the request") {
			t.Fatalf("in-flight request: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight request hung after the plugin died")
	}
	signAndVerify(t, b) // relaunched on this call
	if pid := b.PID(); pid == 0 || pid == firstPID {
		t.Fatalf("plugin pid %d after restart, was %d", pid, firstPID)
	}
}

// TestRestartBackoffResetsAfterAHealthyRun: a crash right after a restart
// waits out the backoff (the call fails at once, saying when); once the
// plugin has run healthyAfter, a crash is restarted at once again.
func TestRestartBackoffResetsAfterAHealthyRun(t *testing.T) {
	defer func(min, healthy time.Duration) { backoffMin, healthyAfter = min, healthy }(backoffMin, healthyAfter)
	backoffMin, healthyAfter = time.Second, 1500*time.Millisecond // wide margins for slow (-race) runs
	b := start(t, Spec{Name: "storm", Command: testPlugin})
	crash := func() {
		_, err := b.Sign(context.Background(), core.KeyID{Name: "crash"}, make([]byte, 32),
			core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
		if !errors.Is(err, core.ErrUnavailable) {
			t.Fatalf("crash: %v", err)
		}
	}
	crash()
	signAndVerify(t, b) // the first restart is immediate
	crash()
	start := time.Now()
	_, err := b.GetKey(context.Background(), core.KeyID{Name: "k"})
	if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "restarting it in") {
		t.Fatalf("second crash in a row: %v", err)
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Fatalf("a call during the backoff took %s; it must fail at once", el)
	}
	time.Sleep(backoffMin)
	signAndVerify(t, b)
	time.Sleep(healthyAfter)
	crash()
	signAndVerify(t, b) // healthy for healthyAfter: immediate again
}

func TestPluginDoesNotInheritHostEnvironment(t *testing.T) {
	t.Setenv("AZURE_CLIENT_SECRET", "should-not-leak")
	b := start(t, Spec{Name: "env", Command: testPlugin, Env: []string{"EXTRA=1"}})
	pid := b.PID()
	env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil {
		t.Skipf("cannot read the plugin's environment: %v", err)
	}
	if strings.Contains(string(env), "AZURE_CLIENT_SECRET") {
		t.Fatal("the plugin inherited hsmhost's AZURE_CLIENT_SECRET")
	}
	if !strings.Contains(string(env), "EXTRA=1") {
		t.Fatal("the configured variable was not passed")
	}
}
