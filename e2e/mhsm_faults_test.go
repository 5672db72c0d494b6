package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostclient"
	"github.com/hsmbridge/hsmbridge/testdoubles/mhsm-standin"
)

// Issue 10, faults under load with nothing lost, on the Managed HSM
// backend end to end: 64 signers (and 2 decrypters, and one goroutine
// creating keys) through hsmhost's socket, the hsmbridge-mhsm plugin and its
// azkeys client, against the stand-in with 20 ms of latency and, on 10% of
// the requests each: 429 with Retry-After, 429 without, 500, 503, an answer
// cut off half way (the operation done), and an answer later than
// try_timeout (the operation done too). The plugin gets its tokens the way a
// server on Azure does, from DefaultAzureCredential's managed identity: the
// stand-in's App Service-style identity endpoint hands out tokens that last
// 4 s, and the stand-in refuses each from its expiry on, so tokens expire
// mid-run, again and again. Then the faults stop. Then the stand-in stops
// answering for 10 s, and comes back.
//
// What must hold: every signature verifies with the key's public key (Go's
// crypto/ecdsa) and every decryption gives the plaintext back; every failure
// names the key, the HSM and the cause; no call is tried more often than
// max_retries+1 (counted by the stand-in, per x-ms-client-request-id); a key
// creation is never tried again after an answer that may have carried it
// out, and no created key has a second version; calls started after the
// faults stop all succeed; during the outage every call fails within its
// tries' timeouts and the delays between them, never hangs; within 1 s of
// the stand-in's return the backend serves again.

const (
	faultSigners    = 64
	faultDecrypters = 2
	faultConns      = 8 // host connections the workers share
	faultLatency    = 20 * time.Millisecond
	faultMaxRetries = 3
	faultTryTimeout = time.Second
	faultRetryDelay = 200 * time.Millisecond
	faultRetryAfter = time.Second
	faultLateBy     = 1500 * time.Millisecond // later than try_timeout
	faultTokenLife  = 4 * time.Second
	faultRate       = 0.1
	faultHSM        = "MyHSM"
)

// faultCallBound is the longest one call may take: every try up to
// try_timeout and, between tries, the longest wait azcore's retry policy
// chooses: Retry-After when the answer had one, else retry_delay ×
// (2^n − 1) × at most 1.3 (its jitter).
func faultCallBound(retryAfter time.Duration) time.Duration {
	d := (faultMaxRetries + 1) * faultTryTimeout
	for n := 1; n <= faultMaxRetries; n++ {
		d += max(retryAfter, time.Duration(float64(faultRetryDelay)*float64(int(1)<<n-1)*1.3))
	}
	return d
}

// The causes a failure may name, as the backend words them.
var faultCauses = []string{"throttling", "answered 500", "answered 503", "cut off", "broke before it answered", "no answer"}

func TestMHSMFaultsUnderLoadLoseNothing(t *testing.T) {
	requireMHSMBuild(t)
	// The outage lasts longer than a call may (faultCallBound), so that
	// calls started in it can only fail.
	faultsFor, calmFor, outage, afterFor := 15*time.Second, 8*time.Second, 10*time.Second, 3*time.Second
	if testing.Short() {
		faultsFor, calmFor, afterFor = 5*time.Second, 3*time.Second, 2*time.Second
	}
	idFile := filepath.Join(t.TempDir(), "identity.env")
	s := startStandin(t, "-identity-addr", "127.0.0.1:0", "-identity-url-out", idFile,
		"-token-lifetime", faultTokenLife.String(), "-latency", faultLatency.String())
	identity := identityEnv(t, idFile)
	ctl := newStandinControl(t, s)
	config := fmt.Sprintf(`
backend "mhsm" {
  plugin   = %q
  pass_env = ["IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_TOKEN_CREDENTIALS"]
  settings = {
    connect_to      = %q
    ca_file         = %q
    hsms            = %q
    max_retries     = "%d"
    retry_delay     = %q
    max_retry_delay = "10s"
    try_timeout     = %q
  }
}
route {
  prefix  = "managedhsm:"
  backend = "mhsm"
}
`, filepath.Join(buildDir, "plugins", "hsmbridge-mhsm"), s.addr, s.ca, faultHSM, faultMaxRetries, faultRetryDelay.String(), faultTryTimeout.String())
	h := startHostWithEnv(t, config, append(identity, "AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential"))
	ctx := context.Background()
	admin := hostClient(t, h)
	signRef, rsaRef := "managedhsm:"+faultHSM+":fault-p256", "managedhsm:"+faultHSM+":fault-rsa"
	ec, err := admin.CreateKey(ctx, signRef, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}})
	if err != nil {
		t.Fatal(err)
	}
	rk, err := admin.CreateKey(ctx, rsaRef, core.KeySpec{Type: core.KeyTypeRSA, Bits: 2048, Usages: []core.KeyUsage{core.UsageDecrypt}})
	if err != nil {
		t.Fatal(err)
	}
	ecPub := parsePub(t, ec.PublicKeyDER).(*ecdsa.PublicKey)
	rsaPub := parsePub(t, rk.PublicKeyDER).(*rsa.PublicKey)

	conns := make([]*hostclient.Client, faultConns)
	for i := range conns {
		conns[i] = hostClient(t, h)
	}
	load := &faultLoad{stop: make(chan struct{})}
	sign := func(ctx context.Context, c *hostclient.Client) (string, error, bool) {
		digest := make([]byte, 32)
		rand.Read(digest)
		sig, _, err := c.Sign(ctx, signRef, ec.ID.Version, digest, core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
		return "fault-p256", err, err == nil && !ecdsa.VerifyASN1(ecPub, digest, sig)
	}
	oaep := core.EncryptionScheme{Padding: core.EncryptionOAEP, OAEPHash: core.SHA256}
	decrypt := func(ctx context.Context, c *hostclient.Client) (string, error, bool) {
		msg := make([]byte, 32)
		rand.Read(msg)
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, rsaPub, msg, nil)
		if err != nil {
			t.Error(err)
			return "fault-rsa", nil, true
		}
		pt, err := c.Decrypt(ctx, rsaRef, rk.ID.Version, ct, oaep)
		return "fault-rsa", err, err == nil && string(pt) != string(msg)
	}
	for i := range faultSigners {
		load.run(i, "sign", conns[i%faultConns], sign)
	}
	for i := range faultDecrypters {
		load.run(faultSigners+i, "decrypt", conns[i%faultConns], decrypt)
	}
	time.Sleep(time.Second) // every worker under way

	// 1. Faults, while one goroutine keeps creating keys.
	st0 := ctl.stats()
	faultsAt := ctl.inject(map[string]any{
		"latency_ms": ms(faultLatency),
		"throttle":   map[string]any{"rate": faultRate}, "retry_after_s": faultRetryAfter.Seconds(),
		"throttle_bare":  map[string]any{"rate": faultRate},
		"internal_error": map[string]any{"rate": faultRate},
		"server_error":   map[string]any{"rate": faultRate}, "server_error_status": 503,
		"drop": map[string]any{"rate": faultRate},
		"late": map[string]any{"rate": faultRate}, "late_by_ms": ms(faultLateBy),
	})
	created := map[string]error{} // the creator's, until creatorDone
	creatorDone := make(chan struct{})
	go func() {
		defer close(creatorDone)
		for i := 0; time.Since(faultsAt) < faultsFor; i++ {
			name := fmt.Sprintf("fault-new-%03d", i)
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := admin.CreateKey(cctx, "managedhsm:"+faultHSM+":"+name, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256, Usages: []core.KeyUsage{core.UsageSign}})
			cancel()
			created[name] = err
		}
	}()
	time.Sleep(time.Until(faultsAt.Add(faultsFor)))
	st1 := ctl.stats()

	// 2. The faults stop.
	calmAt := ctl.inject(map[string]any{"latency_ms": ms(faultLatency)})
	time.Sleep(calmFor)
	st2 := ctl.stats()

	// 3. The stand-in stops answering, and comes back.
	outageSent := time.Now()
	outageAt := ctl.inject(map[string]any{"latency_ms": ms(faultLatency), "outage_ms": ms(outage)})
	backAt := outageAt.Add(outage)
	time.Sleep(time.Until(backAt.Add(afterFor)))
	all := load.finish()
	<-creatorDone
	st3 := ctl.stats()

	// ---- the figures ----
	boundFaults, boundOutage := faultCallBound(faultRetryAfter), faultCallBound(0)
	// hsmhost waits up to 500 ms after a plugin's "unavailable" answer to
	// see whether the plugin exited (internal/pluginhost, exitNoticeTime),
	// so every failure reaches its caller that much later than the backend
	// gave it up; 500 ms more for the host, the plugin, a token fetch and a
	// loaded machine.
	const slack = time.Second
	t.Logf("settings: max_retries %d, retry_delay %s, try_timeout %s; %d signers + %d decrypters on %d host connections; tokens last %s",
		faultMaxRetries, faultRetryDelay, faultTryTimeout, faultSigners, faultDecrypters, faultConns, faultTokenLife)

	faulty := between(all, faultsAt, calmAt)
	f := summarize(t, "faults", faulty)
	t.Logf("faults (%s; 10%% of the requests each: 429 with Retry-After, 429 without, 500, 503, cut answer, late answer, so 60%% of the tries fail; 20 ms latency): %s; %.0f calls/s; stand-in: %s",
		faultsFor, f, float64(len(faulty))/faultsFor.Seconds(), standinDelta(st0, st1))
	for _, a := range faulty {
		if d := a.end.Sub(a.start); d > boundFaults+slack {
			t.Errorf("a %s call took %v under faults, longer than the %v its tries and waits allow", a.op, d, boundFaults)
		}
	}

	// Calls started after the faults stopped and done before the outage
	// began must all succeed; those in flight when they stopped end within
	// their bound (checked above).
	var calm []faultAttempt
	for _, a := range between(all, calmAt, outageSent) {
		if a.end.Before(outageSent) {
			calm = append(calm, a)
		}
	}
	c := summarize(t, "after faults", calm)
	inFlight, everyone := recovery(all, calmAt, outageSent, faultSigners+faultDecrypters)
	t.Logf("after the faults stop (%s): calls started then: %s; the calls in flight when they stopped had all ended %v later; every worker had served a call started after they stopped within %v; stand-in: %s",
		calmFor, c, inFlight.Round(time.Millisecond), everyone.Round(time.Millisecond), standinDelta(st1, st2))
	for _, a := range calm {
		if a.err != nil {
			t.Errorf("a %s call started %v after the faults stopped failed: %v", a.op, a.start.Sub(calmAt).Round(time.Millisecond), a.err)
		}
	}
	if calmFor > boundFaults+slack && (everyone < 0 || everyone > boundFaults+slack) {
		t.Errorf("every worker served again only %v after the faults stopped, want within %v (the longest a call may take)", everyone, boundFaults+slack)
	}

	during := between(all, outageAt, backAt)
	o := summarize(t, "outage", during)
	var slowestFail time.Duration
	var slowest faultAttempt
	mustFail := 0
	for _, a := range between(all, outageAt, backAt.Add(afterFor)) {
		d := a.end.Sub(a.start)
		if a.err != nil && d > slowestFail {
			slowestFail, slowest = d, a
		}
		if d > boundOutage+slack {
			t.Errorf("a %s call took %v during the outage, longer than the %v of %d tries × try_timeout %s and the delays between them",
				a.op, d, boundOutage, faultMaxRetries+1, faultTryTimeout)
		}
		// Answered while the stand-in answers nothing?
		if a.err == nil && a.end.After(outageAt.Add(100*time.Millisecond)) && a.end.Before(backAt.Add(-50*time.Millisecond)) {
			t.Errorf("a %s call succeeded %v into the outage", a.op, a.end.Sub(outageAt).Round(time.Millisecond))
		}
		// Started in the outage, too early to see its end.
		if !a.start.Before(outageAt) && a.start.Add(boundOutage+slack).Before(backAt) {
			mustFail++
			if a.err == nil {
				t.Errorf("a %s call started %v into the outage succeeded", a.op, a.start.Sub(outageAt).Round(time.Millisecond))
			}
		}
	}
	after := between(all, backAt, backAt.Add(afterFor))
	firstOK := time.Duration(-1)
	for _, a := range all {
		if a.err == nil && a.end.After(backAt) && (firstOK < 0 || a.end.Sub(backAt) < firstOK) {
			firstOK = a.end.Sub(backAt)
		}
	}
	_, everyoneBack := recovery(all, backAt, backAt.Add(afterFor), faultSigners+faultDecrypters)
	if slowest.err != nil {
		t.Logf("the slowest failure in the outage started %v into it and took %v: %v",
			slowest.start.Sub(outageAt).Round(time.Millisecond), slowest.end.Sub(slowest.start).Round(time.Millisecond), slowest.err)
	}
	t.Logf("outage (%s without an answer): %s (%d started too early to outlive it); the slowest failure took %v (bound %v: %d tries × try_timeout %s + the delays between them); after it: %s; serving again %v after the stand-in came back, every worker within %v; stand-in: %s",
		outage, o, mustFail, slowestFail.Round(time.Millisecond), boundOutage, faultMaxRetries+1, faultTryTimeout, summarize(t, "after the outage", after),
		firstOK.Round(time.Millisecond), everyoneBack.Round(time.Millisecond), standinDelta(st2, st3))
	if mustFail == 0 {
		t.Error("no call started in the outage early enough to have to fail")
	}
	if firstOK < 0 || firstOK > time.Second {
		t.Errorf("the backend served again %v after the stand-in came back, want within 1s", firstOK)
	}
	for _, a := range after {
		if a.err != nil && a.start.After(backAt) {
			t.Errorf("a %s call started %v after the stand-in came back failed: %v", a.op, a.start.Sub(backAt).Round(time.Millisecond), a.err)
		}
	}

	// ---- what the stand-in saw: tries within the limit, no create repeated ----
	t.Logf("the stand-in saw %d calls, %d retries, at most %d tries of one call (limit max_retries+1 = %d); %d tokens issued, %d 401 answers",
		st3.Calls, st3.Retries, st3.MaxTries, faultMaxRetries+1, st3.TokensIssued, st3.Challenges)
	if st3.MaxTries > faultMaxRetries+1 {
		t.Errorf("a call was tried %d times, more than max_retries+1 = %d", st3.MaxTries, faultMaxRetries+1)
	}
	for op, n := range st3.Repeated {
		if op != "sign" && op != "decrypt" {
			t.Errorf("the stand-in carried out %d %s calls more than once", n, op)
		}
	}
	creates, createRetries := 0, 0
	for _, call := range ctl.calls() {
		if call.Tries > faultMaxRetries+1 {
			t.Errorf("call %s (%s) was tried %d times: %v", call.ID, call.Op, call.Tries, call.Answers)
		}
		if call.Op != "create" {
			continue
		}
		creates++
		createRetries += call.Tries - 1
		for _, a := range call.Answers[:len(call.Answers)-1] {
			if a != "401" && a != "429" {
				t.Errorf("create call %s was tried again after an answer (%s) that may have carried it out: %v", call.ID, a, call.Answers)
			}
		}
		if call.Executed > 1 {
			t.Errorf("create call %s was carried out %d times: %v", call.ID, call.Executed, call.Answers)
		}
	}
	az := s.azkeysClient(t)
	failedCreates := map[string]int{}
	for name, err := range created {
		versions := 0
		pager := az.NewListKeyPropertiesVersionsPager(name, nil)
		for pager.More() {
			page, perr := pager.NextPage(ctx)
			var re *azcore.ResponseError
			if errors.As(perr, &re) && re.StatusCode == http.StatusNotFound {
				break
			}
			if perr != nil {
				t.Fatalf("listing the versions of %s: %v", name, perr)
			}
			versions += len(page.Value)
		}
		switch {
		case versions > 1:
			t.Errorf("key %s has %d versions: its creation was carried out more than once", name, versions)
		case err == nil && versions != 1:
			t.Errorf("key %s: created, but the HSM holds %d versions", name, versions)
		case err != nil:
			cause, ok := clearFailure(err, name)
			if !ok || (cause != "throttling" && !strings.Contains(err.Error(), "not retried")) {
				t.Errorf("creating %s failed without naming the key, the HSM and the cause (or saying it was not retried): %v", name, err)
			}
			failedCreates[cause+fmt.Sprintf(" (%d made)", versions)]++
		}
	}
	t.Logf("key creation under faults: %d creates, %d failed %v, %d tries beyond the first at the stand-in (after 429 only), none carried out twice",
		len(created), len(created)-countNil(created), failedCreates, createRetries)
	if creates < len(created) {
		t.Errorf("the stand-in saw %d create calls, the test made %d", creates, len(created))
	}
}

// ---- the load ----

// faultAttempt is one call a worker made.
type faultAttempt struct {
	worker     int
	op         string
	key        string
	start, end time.Time
	err        error
	wrong      bool // succeeded with a wrong result
}

type faultLoad struct {
	mu       sync.Mutex
	attempts []faultAttempt
	stop     chan struct{}
	wg       sync.WaitGroup
}

// run starts a worker calling do until finish; a call has 30 s before it
// counts as a hang.
func (l *faultLoad) run(worker int, op string, c *hostclient.Client, do func(context.Context, *hostclient.Client) (string, error, bool)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		var mine []faultAttempt
		for {
			select {
			case <-l.stop:
				l.mu.Lock()
				l.attempts = append(l.attempts, mine...)
				l.mu.Unlock()
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			a := faultAttempt{worker: worker, op: op, start: time.Now()}
			a.key, a.err, a.wrong = do(ctx, c)
			a.end = time.Now()
			cancel()
			mine = append(mine, a)
		}
	}()
}

func (l *faultLoad) finish() []faultAttempt {
	close(l.stop)
	l.wg.Wait()
	sort.Slice(l.attempts, func(i, j int) bool { return l.attempts[i].start.Before(l.attempts[j].start) })
	return l.attempts
}

// between is the attempts started in [from, to).
func between(all []faultAttempt, from, to time.Time) []faultAttempt {
	var out []faultAttempt
	for _, a := range all {
		if !a.start.Before(from) && a.start.Before(to) {
			out = append(out, a)
		}
	}
	return out
}

// clearFailure tells whether an error names the key, the HSM and one of the
// causes, and which.
func clearFailure(err error, key string) (string, bool) {
	msg := err.Error()
	if !strings.Contains(msg, `key "`+key+`"`) || !strings.Contains(msg, `Managed HSM "`+faultHSM+`"`) {
		return "", false
	}
	for _, c := range faultCauses {
		if strings.Contains(msg, c) {
			return c, true
		}
	}
	return "", false
}

// summarize counts a phase's calls and checks the two rules that hold in
// every phase: no wrong result, no failure without key, HSM and cause.
func summarize(t *testing.T, phase string, as []faultAttempt) string {
	t.Helper()
	var ok, wrong int
	causes := map[string]int{}
	var lat []time.Duration
	for _, a := range as {
		switch {
		case a.wrong:
			wrong++
			t.Errorf("%s: a %s call returned a wrong result", phase, a.op)
		case a.err == nil:
			ok++
			lat = append(lat, a.end.Sub(a.start))
		default:
			cause, clear := clearFailure(a.err, a.key)
			if !clear {
				cause = "UNCLEAR"
				t.Errorf("%s: a %s failure does not name the key, the HSM and the cause: %v", phase, a.op, a.err)
			}
			causes[cause]++
		}
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(q*float64(len(lat)-1))].Round(100 * time.Microsecond)
	}
	var cs []string
	for _, k := range sortedCauses(causes) {
		cs = append(cs, fmt.Sprintf("%s %d", k, causes[k]))
	}
	failures := len(as) - ok - wrong
	return fmt.Sprintf("%d calls, %d ok (p50 %v, p99 %v), %d clear failures [%s], %d wrong results",
		len(as), ok, pct(0.5), pct(0.99), failures, strings.Join(cs, ", "), wrong)
}

func sortedCauses(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// recovery says, for a change at at: when the calls in flight then had
// all ended, and when every worker had a successful call that started at
// or after at and ended before until (-1: not every worker did).
func recovery(all []faultAttempt, at, until time.Time, workers int) (inFlight, everyone time.Duration) {
	first := map[int]time.Duration{}
	for _, a := range all {
		if a.start.Before(at) && a.end.After(at) {
			inFlight = max(inFlight, a.end.Sub(at))
		}
		if a.err == nil && !a.start.Before(at) && a.end.Before(until) {
			if d, seen := first[a.worker]; !seen || a.end.Sub(at) < d {
				first[a.worker] = a.end.Sub(at)
			}
		}
	}
	if len(first) < workers {
		return inFlight, -1
	}
	for _, d := range first {
		everyone = max(everyone, d)
	}
	return inFlight, everyone
}

func countNil(m map[string]error) int {
	n := 0
	for _, err := range m {
		if err == nil {
			n++
		}
	}
	return n
}

func parsePub(t *testing.T, der []byte) any {
	t.Helper()
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ---- the stand-in's control endpoint ----

// identityEnv reads the IDENTITY_ENDPOINT and IDENTITY_HEADER lines the
// stand-in wrote (before its URL, which startStandin waited for).
func identityEnv(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the stand-in wrote no identity endpoint: %v", err)
	}
	env := strings.Fields(string(b))
	if len(env) != 2 || !strings.HasPrefix(env[0], "IDENTITY_ENDPOINT=") || !strings.HasPrefix(env[1], "IDENTITY_HEADER=") {
		t.Fatalf("identity endpoint file: %q", b)
	}
	return env
}

type standinControl struct {
	t  *testing.T
	s  *standin
	hc *http.Client
}

// newStandinControl talks to the stand-in's /_standin/ endpoint over one
// kept-alive connection, which an outage does not hold.
func newStandinControl(t *testing.T, s *standin) *standinControl {
	pemCA, err := os.ReadFile(s.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	d := &net.Dialer{Timeout: 5 * time.Second}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "localhost"},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, s.addr)
		},
	}}
	c := &standinControl{t: t, s: s, hc: hc}
	c.get("stats", &mhsmstandin.Stats{})
	return c
}

func (c *standinControl) get(what string, v any) {
	c.t.Helper()
	resp, err := c.hc.Get(c.s.url + "/_standin/" + what)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		c.t.Fatalf("/_standin/%s: %v", what, err)
	}
}

// inject replaces the switches and returns when the stand-in answered.
func (c *standinControl) inject(sw map[string]any) time.Time {
	c.t.Helper()
	body, _ := json.Marshal(sw)
	req, _ := http.NewRequest(http.MethodPut, c.s.url+"/_standin/inject", strings.NewReader(string(body)))
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("PUT /_standin/inject: %s", resp.Status)
	}
	return time.Now()
}

func (c *standinControl) stats() mhsmstandin.Stats {
	var st mhsmstandin.Stats
	c.get("stats", &st)
	return st
}

func (c *standinControl) calls() []mhsmstandin.Call {
	var cs []mhsmstandin.Call
	c.get("calls", &cs)
	return cs
}

// standinDelta words what the stand-in counted between two snapshots.
func standinDelta(a, b mhsmstandin.Stats) string {
	var codes []int
	for k := range b.ByStatus {
		if b.ByStatus[k] != a.ByStatus[k] {
			codes = append(codes, k)
		}
	}
	sort.Ints(codes)
	var by []string
	for _, k := range codes {
		name := fmt.Sprint(k)
		if k == 0 {
			name = "none"
		}
		by = append(by, fmt.Sprintf("%s:%d", name, b.ByStatus[k]-a.ByStatus[k]))
	}
	var rep []string
	for op, n := range b.Repeated {
		if d := n - a.Repeated[op]; d > 0 {
			rep = append(rep, fmt.Sprintf("%s:%d", op, d))
		}
	}
	sort.Strings(rep)
	return fmt.Sprintf("%d requests [%s], %d cut, %d late, %d retries, carried out twice [%s], %d tokens issued",
		b.Requests-a.Requests, strings.Join(by, " "), b.Dropped-a.Dropped, b.Late-a.Late, b.Retries-a.Retries,
		strings.Join(rep, " "), b.TokensIssued-a.TokensIssued)
}
