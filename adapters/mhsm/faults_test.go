package mhsm

// What the backend retries, and what it must not: operations that change
// nothing in the HSM (signing, decryption, reads) survive a cut-off answer
// and a late one; a key creation is retried only where the service says it
// did not carry it out (429), because a second try after any other failure
// may make a second version. Each failure names the key, the HSM and why.

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/testdoubles/mhsm-standin"
)

// callsOf returns the stand-in's records of the calls whose operation is op
// made since the first n calls.
func callsOf(s *standin, op string, n int) []mhsmstandin.Call {
	var out []mhsmstandin.Call
	for _, c := range s.srv.Calls()[n:] {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

// versionsOf counts a key's versions as the stand-in holds them, read with
// a fault-free backend of its own.
func versionsOf(t *testing.T, s *standin, name string) int {
	t.Helper()
	s.srv.SetInject(mhsmstandin.Inject{})
	b, _ := s.backend(t, testToken)
	c, err := b.client("errhsm")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	pager := c.kc.NewListKeyPropertiesVersionsPager(name, nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return 0
		}
		if err != nil {
			t.Fatalf("listing the versions of %s: %v", name, err)
		}
		n += len(page.Value)
	}
	return n
}

func TestReadOnlyOperationsSurviveCutAndLateAnswers(t *testing.T) {
	s := startStandin(t)
	ctx := context.Background()
	b, _ := s.backend(t, testToken, SettingTryTimeout, "500ms", SettingMaxRetries, "2")
	key := signingKey(t, b, "cutsign")
	rsaKey, err := b.CreateKey(ctx, core.KeyID{Namespace: "errhsm", Name: "cutrsa"},
		core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048, Usages: []core.KeyUsage{core.UsageDecrypt}})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.ParsePKIXPublicKey(key.PublicKeyDER)
	msg := []byte("cut answers")
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, mustRSA(t, rsaKey), msg, nil)
	oaep := core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256}

	for _, f := range []struct {
		name string
		inj  mhsmstandin.Inject
	}{
		{"cut", mhsmstandin.Inject{Drop: mhsmstandin.Fault{Count: 1}}},
		{"late", mhsmstandin.Inject{Late: mhsmstandin.Fault{Count: 1}, LateBy: 800 * time.Millisecond}},
	} {
		t.Run(f.name, func(t *testing.T) {
			n := len(s.srv.Calls())
			s.srv.SetInject(f.inj)
			d, sig, err := signP256(ctx, b, key.ID)
			if err != nil {
				t.Fatalf("sign after one %s answer: %v", f.name, err)
			}
			if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d, sig) {
				t.Fatal("the signature does not verify")
			}
			s.srv.SetInject(f.inj)
			pt, err := b.Decrypt(ctx, rsaKey.ID, ct, oaep)
			if err != nil || string(pt) != string(msg) {
				t.Fatalf("decrypt after one %s answer: %q, %v", f.name, pt, err)
			}
			// The stand-in saw each call twice, and carried it out twice:
			// harmless for these operations.
			for _, op := range []string{"sign", "decrypt"} {
				calls := callsOf(s, op, n)
				if len(calls) != 1 || calls[0].Tries != 2 || calls[0].Executed != 2 {
					t.Errorf("%s: the stand-in saw %+v, want one call of 2 tries, both carried out", op, calls)
				}
			}
		})
	}
}

func TestKeyCreationIsRetriedOnlyWhenNotCarriedOut(t *testing.T) {
	s := startStandin(t)
	ctx := context.Background()
	const tryTimeout = 500 * time.Millisecond
	spec := core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}}
	for i, f := range []struct {
		name    string
		inj     mhsmstandin.Inject
		ok      bool   // the create succeeds
		tries   int    // as the stand-in counts them
		because string // in the error
	}{
		{"429-retry-after", mhsmstandin.Inject{Throttle: mhsmstandin.Fault{Count: 1}, RetryAfter: time.Second}, true, 2, ""},
		{"429", mhsmstandin.Inject{ThrottleBare: mhsmstandin.Fault{Count: 1}}, true, 2, ""},
		{"503", mhsmstandin.Inject{ServerError: mhsmstandin.Fault{Count: 1}}, false, 1, "answered 503"},
		{"500", mhsmstandin.Inject{InternalError: mhsmstandin.Fault{Count: 1}}, false, 1, "answered 500"},
		{"cut", mhsmstandin.Inject{Drop: mhsmstandin.Fault{Count: 1}}, false, 1, "cut off"},
		{"late", mhsmstandin.Inject{Late: mhsmstandin.Fault{Count: 1}, LateBy: 3 * tryTimeout}, false, 1, "no answer"},
	} {
		t.Run(f.name, func(t *testing.T) {
			b, _ := s.backend(t, testToken, SettingTryTimeout, tryTimeout.String(), SettingMaxRetries, "3")
			signingKey(t, b, fmt.Sprintf("warm%d", i)) // token and connection first
			name := "created-" + f.name
			n := len(s.srv.Calls())
			s.srv.SetInject(f.inj)
			_, err := b.CreateKey(ctx, core.KeyID{Namespace: "errhsm", Name: name}, spec)
			if f.ok && err != nil {
				t.Fatalf("create through one %s: %v", f.name, err)
			}
			switch {
			case !f.ok && err == nil:
				t.Errorf("create through one %s succeeded: it was retried", f.name)
			case !f.ok:
				expectKind(t, err, core.ErrUnavailable, `key "`+name+`"`, `Managed HSM "errhsm"`, f.because, "not retried")
			}
			calls := callsOf(s, "create", n)
			if len(calls) != 1 || calls[0].Tries != f.tries {
				t.Errorf("the stand-in saw %+v, want one create call of %d tries", calls, f.tries)
			}
			if f.name == "late" {
				time.Sleep(3 * tryTimeout) // the late create lands
			}
			if v := versionsOf(t, s, name); v > 1 {
				t.Errorf("the HSM holds %d versions of %s, want at most 1", v, name)
			}
		})
	}
}

// An HSM that stops answering: every call fails within the tries'
// timeouts and the delays between them, naming the key, the HSM and the
// limit; once it answers again, so does the backend.
func TestUnresponsiveServiceFailsWithinTheTryTimeouts(t *testing.T) {
	s := startStandin(t)
	ctx := context.Background()
	const tryTimeout = 300 * time.Millisecond
	b, _ := s.backend(t, testToken, SettingTryTimeout, tryTimeout.String(), SettingMaxRetries, "2", SettingRetryDelay, "50ms")
	key := signingKey(t, b, "outage")
	// 3 tries, and at most 50ms and 150ms (+30% jitter) between them.
	bound := 3*tryTimeout + 260*time.Millisecond
	s.srv.SetInject(mhsmstandin.Inject{Outage: 4 * time.Second})
	back := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	var slowest atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, _, err := signP256(ctx, b, key.ID)
			slowest.Store(max(slowest.Load(), int64(time.Since(start))))
			if err == nil {
				t.Error("a signature during the outage")
				return
			}
			for _, w := range []string{`key "outage"`, `Managed HSM "errhsm"`, "no answer", "try_timeout " + tryTimeout.String(), "3 tries"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		}()
	}
	wg.Wait()
	if d := time.Duration(slowest.Load()); d > bound+200*time.Millisecond {
		t.Errorf("the slowest call failed after %v, want within %v", d, bound)
	}
	time.Sleep(time.Until(back))
	start := time.Now()
	if _, _, err := signP256(ctx, b, key.ID); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the first signature after the outage took %v", d)
	}
}

// Tokens that expire while signing goes on, from an App Service-style
// managed identity endpoint through DefaultAzureCredential: the stand-in
// refuses each token from its expiry on, and every signature still comes
// back.
func TestExpiringTokensAreRenewedUnderLoad(t *testing.T) {
	srv, err := mhsmstandin.New(mhsmstandin.Options{TokenLifetime: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	s := &standin{srv: srv, caFile: writeCA(t, srv)}
	id := httptest.NewServer(srv.IdentityHandler("id-secret"))
	t.Cleanup(id.Close)
	t.Setenv(EnvStaticToken, "")
	t.Setenv("IDENTITY_ENDPOINT", id.URL)
	t.Setenv("IDENTITY_HEADER", "id-secret")
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
	b := New()
	if err := b.Configure(context.Background(), s.settings()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := signingKey(t, b, "expiring")
	pub := mustEC(t, key)
	deadline := time.Now().Add(5 * time.Second)
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				d, sig, err := signP256(ctx, b, key.ID)
				if err != nil {
					failed.Add(1)
					t.Errorf("sign: %v", err)
					return
				}
				if !ecdsa.VerifyASN1(pub, d, sig) {
					t.Error("a signature does not verify")
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	st := srv.Stats()
	t.Logf("%d signatures, %d failures; %d tokens issued, %d 401 answers", ok.Load(), failed.Load(), st.TokensIssued, st.Challenges)
	if st.TokensIssued < 3 {
		t.Errorf("%d tokens issued in 5 s of 2 s tokens: the tokens did not expire", st.TokensIssued)
	}
}

func writeCA(t *testing.T, srv *mhsmstandin.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, srv.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustEC(t *testing.T, info core.KeyInfo) *ecdsa.PublicKey {
	t.Helper()
	pub, err := x509.ParsePKIXPublicKey(info.PublicKeyDER)
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*ecdsa.PublicKey)
}

// A fresh backend whose HSM does not answer: the calls that wait behind the
// first one (which goes alone, to fetch one token for all) fail with its
// cause when it fails, instead of each waiting its own tries in turn.
func TestFirstCallsToAnUnresponsiveHSMFailTogether(t *testing.T) {
	s := startStandin(t)
	setup, _ := s.backend(t, testToken)
	key := signingKey(t, setup, "first")
	const tryTimeout = 300 * time.Millisecond
	b, cred := s.backend(t, testToken, SettingTryTimeout, tryTimeout.String(), SettingMaxRetries, "2", SettingRetryDelay, "50ms")
	bound := 3*tryTimeout + 260*time.Millisecond // 3 tries, 50 and 150 ms (+30%) between them
	s.srv.SetInject(mhsmstandin.Inject{Outage: 30 * time.Second})
	var wg sync.WaitGroup
	var slowest atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			_, _, err := signP256(ctx, b, key.ID)
			slowest.Store(max(slowest.Load(), int64(time.Since(start))))
			if err == nil {
				t.Error("a signature from an HSM that does not answer")
				return
			}
			t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
			for _, w := range []string{`key "first"`, `Managed HSM "errhsm"`, "no answer", "3 tries"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		}()
	}
	wg.Wait()
	if d := time.Duration(slowest.Load()); d > bound+300*time.Millisecond {
		t.Errorf("the last of 8 first calls failed after %v, want within one call's %v", d, bound)
	}
	// Once the HSM answers, the first calls again share one token.
	s.srv.SetInject(mhsmstandin.Inject{})
	before := cred.count()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := signP256(context.Background(), b, key.ID); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := cred.count() - before; n != 1 {
		t.Errorf("8 first calls after the outage asked for %d tokens, want 1", n)
	}
}

// The gate under churn: calls arriving while first calls fail and then
// succeed neither deadlock nor end a round twice, and once one call is
// answered the rest run without the gate.
func TestFirstCallGateUnderChurn(t *testing.T) {
	c := &hsmClient{gate: make(chan struct{}, 1)}
	c.round.Store(newGateRound())
	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	var calls atomic.Int32
	var failed, queued atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.call(context.Background(), func(context.Context) error {
					n := calls.Add(1)
					time.Sleep(time.Millisecond)
					if n <= 5 {
						return refused
					}
					return nil
				})
				var qb *queuedBehind
				switch {
				case errors.As(err, &qb):
					queued.Add(1)
				case err != nil:
					failed.Add(1)
				}
			}()
		}
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("%d calls ran, %d failed themselves, %d failed behind another", calls.Load(), failed.Load(), queued.Load())
	if !c.warm.Load() || failed.Load() != 5 || int(calls.Load())+int(queued.Load()) != 200 {
		t.Errorf("warm %v, %d failed themselves (want 5), %d ran + %d queued (want 200)", c.warm.Load(), failed.Load(), calls.Load(), queued.Load())
	}
}
