package mhsm

// Tests against testdoubles/mhsm-standin, a local HTTPS server that answers like
// Managed HSM: the contract suite (in process and through the plugin
// binary), the mapping of every kind of service failure to a core error,
// token caching and connection reuse.

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	contracttests "github.com/hsmbridge/hsmbridge/contract-tests"
	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/testdoubles/mhsm-standin"
)

const testToken = "test-token"

type standin struct {
	srv    *mhsmstandin.Server
	caFile string
}

func startStandin(t *testing.T) *standin {
	t.Helper()
	srv, err := mhsmstandin.New(mhsmstandin.Options{
		Tenant:      "00000000-0000-0000-0000-000000000000",
		ValidTokens: []string{testToken},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ca := filepath.Join(t.TempDir(), "standin-ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &standin{srv: srv, caFile: ca}
}

// settings reach the stand-in under the real host names (so azkeys' challenge
// check runs as against Azure) through connect_to, trusting its CA.
func (s *standin) settings(extra ...string) map[string]string {
	m := map[string]string{
		SettingConnectTo:  s.srv.Addr(),
		SettingCAFile:     s.caFile,
		SettingHSMs:       "contract-tests",
		SettingRetryDelay: "10ms",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// backend is a configured backend with a counting credential.
func (s *standin) backend(t *testing.T, token string, extra ...string) (*Backend, *staticCred) {
	t.Helper()
	cred := &staticCred{token: token}
	b := New(WithCredential(cred, "the test credential"))
	if err := b.Configure(context.Background(), s.settings(extra...)); err != nil {
		t.Fatal(err)
	}
	return b, cred
}

// TestContractInProcess runs the contract suite on the backend against the
// stand-in, with the token taken from AZURE_CLI_ACCESS_TOKEN as in
// production.
func TestContractInProcess(t *testing.T) {
	s := startStandin(t)
	t.Setenv(EnvStaticToken, testToken)
	b := New()
	if err := b.Configure(context.Background(), s.settings()); err != nil {
		t.Fatal(err)
	}
	contracttests.RunBackend(t, b, contracttests.Config{Namespace: "contract-tests", CallTimeout: 30 * time.Second})
	if n := b.TokenRequests(); n != 1 {
		t.Errorf("the whole suite asked for %d tokens, want 1", n)
	}
}

// TestContractPlugin builds the plugin and runs the suite through it, the
// way hsmhost runs it: the token reaches the plugin in its environment.
func TestContractPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a plugin")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build the plugin")
	}
	bin := filepath.Join(t.TempDir(), "hsmbridge-mhsm")
	if out, err := exec.Command("go", "build", "-o", bin, "../../plugins/mhsm/cmd/hsmbridge-mhsm").CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}
	s := startStandin(t)
	contracttests.Run(t, contracttests.Config{
		PluginPath:  bin,
		Env:         []string{EnvStaticToken + "=" + testToken},
		Settings:    s.settings(),
		Namespace:   "contract-tests",
		CallTimeout: 30 * time.Second,
	})
}

func expectKind(t *testing.T, err error, kind *core.Error, words ...string) {
	t.Helper()
	t.Logf("%s", err)
	if !errors.Is(err, kind) {
		t.Fatalf("error %v (kind %s), want kind %s", err, core.KindOf(err), kind.Kind)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("message %q does not say %q", err, w)
		}
	}
}

func signingKey(t *testing.T, b *Backend, name string) core.KeyInfo {
	t.Helper()
	info, err := b.CreateKey(context.Background(), core.KeyID{Namespace: "errhsm", Name: name},
		core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign, core.UsageVerify}})
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func signP256(ctx context.Context, b *Backend, id core.KeyID) ([]byte, []byte, error) {
	d := sha256.Sum256([]byte("hsmbridge " + id.String()))
	sig, err := b.Sign(ctx, id, d[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	return d[:], sig, err
}

func TestErrorMapping(t *testing.T) {
	s := startStandin(t)
	ctx := context.Background()
	b, _ := s.backend(t, testToken, SettingMaxRetries, "2")
	key := signingKey(t, b, "errkey")

	t.Run("404", func(t *testing.T) {
		_, err := b.GetKey(ctx, core.KeyID{Namespace: "errhsm", Name: "nokey"})
		expectKind(t, err, core.ErrNotFound, `key "nokey"`, `Managed HSM "errhsm"`)
		_, _, err = signP256(ctx, b, core.KeyID{Namespace: "errhsm", Name: "nokey"})
		expectKind(t, err, core.ErrNotFound, `key "nokey"`)
	})
	t.Run("403_role", func(t *testing.T) {
		s.srv.SetInject(mhsmstandin.Inject{Deny: mhsmstandin.Fault{Count: 1}})
		defer s.srv.SetInject(mhsmstandin.Inject{})
		_, _, err := signP256(ctx, b, key.ID)
		expectKind(t, err, core.ErrPermissionDenied, "Managed HSM Crypto User", "the test credential", "az keyvault role assignment create")
	})
	t.Run("key_ops", func(t *testing.T) {
		dec, err := b.CreateKey(ctx, core.KeyID{Namespace: "errhsm", Name: "deconly"},
			core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048, Usages: []core.KeyUsage{core.UsageDecrypt}})
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte("x"))
		_, err = b.Sign(ctx, dec.ID, d[:], core.SignatureScheme{Padding: core.PaddingPKCS1v15, Hash: core.SHA256})
		expectKind(t, err, core.ErrOperationNotAllowed, "does not allow sign")
	})
	t.Run("401_bad_token", func(t *testing.T) {
		bad, _ := s.backend(t, "not-the-token")
		_, err := bad.GetKey(ctx, key.ID)
		expectKind(t, err, core.ErrUnauthenticated, "the test credential", "401")
	})
	t.Run("401_static_token_named", func(t *testing.T) {
		t.Setenv(EnvStaticToken, "stale-token")
		bad := New()
		if err := bad.Configure(ctx, s.settings()); err != nil {
			t.Fatal(err)
		}
		_, err := bad.GetKey(ctx, key.ID)
		expectKind(t, err, core.ErrUnauthenticated, EnvStaticToken, "az account get-access-token")
	})
	t.Run("no_credential", func(t *testing.T) {
		t.Setenv(EnvStaticToken, "")
		t.Setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
		for _, v := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME"} {
			t.Setenv(v, "")
		}
		none := New()
		if err := none.Configure(ctx, s.settings()); err != nil {
			t.Fatal(err)
		}
		_, err := none.GetKey(ctx, key.ID)
		expectKind(t, err, core.ErrUnauthenticated, "DefaultAzureCredential", "az login")
	})
	t.Run("401_expired_then_refreshed", func(t *testing.T) {
		fresh, cred := s.backend(t, testToken)
		if _, err := fresh.GetKey(ctx, key.ID); err != nil {
			t.Fatal(err)
		}
		before := cred.count()
		s.srv.SetInject(mhsmstandin.Inject{ExpireToken: mhsmstandin.Fault{Count: 1}})
		defer s.srv.SetInject(mhsmstandin.Inject{})
		if _, _, err := signP256(ctx, fresh, key.ID); err != nil {
			t.Fatalf("sign after the service expired the token: %v", err)
		}
		if got := cred.count() - before; got != 1 {
			t.Errorf("an expired token led to %d token requests, want 1", got)
		}
	})
	t.Run("429_retry_after", func(t *testing.T) {
		s.srv.SetInject(mhsmstandin.Inject{Throttle: mhsmstandin.Fault{Count: 2}, RetryAfter: time.Second})
		defer s.srv.SetInject(mhsmstandin.Inject{})
		before := s.srv.Stats().ByStatus[429]
		start := time.Now()
		digest, sig, err := signP256(ctx, b, key.ID)
		if err != nil {
			t.Fatalf("sign through two 429s with max_retries 2: %v", err)
		}
		if el := time.Since(start); el < 2*time.Second {
			t.Errorf("two Retry-After: 1 answers were retried after %s, want at least 2s", el)
		}
		if n := s.srv.Stats().ByStatus[429] - before; n != 2 {
			t.Errorf("the stand-in answered 429 %d times, want 2", n)
		}
		pub, _ := x509.ParsePKIXPublicKey(key.PublicKeyDER)
		if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest, sig) {
			t.Error("the signature made after retries does not verify")
		}
	})
	t.Run("429_exhausted", func(t *testing.T) {
		s.srv.SetInject(mhsmstandin.Inject{Throttle: mhsmstandin.Fault{Count: 10}})
		defer s.srv.SetInject(mhsmstandin.Inject{})
		_, _, err := signP256(ctx, b, key.ID)
		expectKind(t, err, core.ErrUnavailable, "throttling", "after 2 retries", "max_retries")
	})
	t.Run("429_retry_after_beyond_cap", func(t *testing.T) {
		capped, _ := s.backend(t, testToken, SettingMaxRetryDelay, "1s")
		s.srv.SetInject(mhsmstandin.Inject{Throttle: mhsmstandin.Fault{Count: 1}, RetryAfter: 30 * time.Second})
		defer s.srv.SetInject(mhsmstandin.Inject{})
		start := time.Now()
		_, err := capped.GetKey(ctx, key.ID)
		expectKind(t, err, core.ErrUnavailable, "throttling", "wait 30")
		if time.Since(start) > 5*time.Second {
			t.Error("a Retry-After beyond max_retry_delay was waited for")
		}
	})
	t.Run("503", func(t *testing.T) {
		s.srv.SetInject(mhsmstandin.Inject{ServerError: mhsmstandin.Fault{Count: 10}})
		defer s.srv.SetInject(mhsmstandin.Inject{})
		_, err := b.GetKey(ctx, key.ID)
		expectKind(t, err, core.ErrUnavailable, "503", "after 2 retries")
	})
	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens there now
		down, _ := s.backend(t, testToken, SettingConnectTo, addr, SettingMaxRetries, "1")
		_, err = down.GetKey(ctx, key.ID)
		expectKind(t, err, core.ErrUnavailable, "cannot reach", "https://errhsm.managedhsm.azure.net")
	})
	t.Run("untrusted_certificate", func(t *testing.T) {
		cred := &staticCred{token: testToken}
		untrusted := New(WithCredential(cred, "the test credential"))
		settings := s.settings(SettingMaxRetries, "0")
		delete(settings, SettingCAFile)
		if err := untrusted.Configure(ctx, settings); err != nil {
			t.Fatal(err)
		}
		_, err := untrusted.GetKey(ctx, key.ID)
		expectKind(t, err, core.ErrUnavailable, "not trusted", SettingCAFile)
	})
	t.Run("challenge_host_check", func(t *testing.T) {
		loop, _ := s.backend(t, testToken, SettingEndpoint, s.srv.URL())
		_, err := loop.GetKey(ctx, key.ID)
		expectKind(t, err, core.ErrUnauthenticated, SettingDisableChallengeResourceVerification)
		ok, _ := s.backend(t, testToken, SettingEndpoint, s.srv.URL(), SettingDisableChallengeResourceVerification, "true")
		if _, err := ok.GetKey(ctx, key.ID); err != nil {
			t.Fatalf("with the check disabled: %v", err)
		}
	})
}

// TestTokenCachingAndConnectionReuse: a burst of concurrent operations on a
// new backend costs one token request, and later bursts open no new
// connection.
func TestTokenCachingAndConnectionReuse(t *testing.T) {
	s := startStandin(t)
	ctx := context.Background()
	setup, _ := s.backend(t, testToken)
	key := signingKey(t, setup, "cachekey")
	rsaKey, err := setup.CreateKey(ctx, core.KeyID{Namespace: "errhsm", Name: "cachersa"},
		core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048, Usages: []core.KeyUsage{core.UsageDecrypt}})
	if err != nil {
		t.Fatal(err)
	}

	b, cred := s.backend(t, testToken)
	pub, _ := x509.ParsePKIXPublicKey(key.PublicKeyDER)
	burst := func(n int) {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, sig, err := signP256(ctx, b, key.ID)
				if err == nil && !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d, sig) {
					err = errors.New("signature does not verify")
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
	}
	conns0 := s.srv.Stats().Connections
	burst(64)
	if n := cred.count(); n != 1 {
		t.Errorf("64 concurrent first operations asked for %d tokens, want 1", n)
	}
	conns1 := s.srv.Stats().Connections
	for i := 0; i < 3; i++ {
		burst(64)
	}
	// Decrypt goes through the same client and token.
	msg := []byte("connection reuse")
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, mustRSA(t, rsaKey), msg, nil)
	pt, err := b.Decrypt(ctx, rsaKey.ID, ct, core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256})
	if err != nil || string(pt) != string(msg) {
		t.Fatalf("Decrypt = %q, %v", pt, err)
	}
	if n := cred.count(); n != 1 {
		t.Errorf("%d operations asked for %d tokens, want 1", 4*64+1, n)
	}
	conns2 := s.srv.Stats().Connections
	t.Logf("connections: %d for the first burst of 64, %d more for 193 further operations", conns1-conns0, conns2-conns1)
	if conns2 != conns1 {
		t.Errorf("later operations opened %d new connections, want 0", conns2-conns1)
	}
	// The stand-in, like Azure's front ends, speaks HTTP/2: one connection
	// carries all 64 concurrent calls (over HTTP/1.1 the pool would keep up
	// to 64, each made once).
	if conns1-conns0 != 1 {
		t.Errorf("the first burst opened %d connections, want 1", conns1-conns0)
	}
}

func mustRSA(t *testing.T, info core.KeyInfo) *rsa.PublicKey {
	t.Helper()
	pub, err := x509.ParsePKIXPublicKey(info.PublicKeyDER)
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*rsa.PublicKey)
}

// A create with no operations sends no key_ops, and the key gets what the
// service gives (the stand-in answers as the recordings show).
func TestCreateWithoutOperationsLetsTheServiceChoose(t *testing.T) {
	s := startStandin(t)
	ctx := context.Background()
	b, _ := s.backend(t, testToken)
	for _, spec := range []core.KeySpec{{Type: core.KeyTypeRSA, Bits: 2048}, {Type: core.KeyTypeEC, Curve: core.CurveP256}, {Type: core.KeyTypeOct, Bits: 256}} {
		info, err := b.CreateKey(ctx, core.KeyID{Namespace: "errhsm", Name: "defaults-" + string(spec.Type)}, spec)
		if err != nil {
			t.Fatalf("%s: %v", spec.Type, err)
		}
		want := core.DefaultUsages(spec.Type)
		if len(info.Usages) != len(want) {
			t.Fatalf("%s key got %v, the service gives %v", spec.Type, info.Usages, want)
		}
		for _, u := range want {
			if !info.Allows(u) {
				t.Fatalf("%s key got %v, the service gives %v", spec.Type, info.Usages, want)
			}
		}
	}
}
