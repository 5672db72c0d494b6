package mhsmstandin

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// withRequestIDs makes the client send x-ms-client-request-id, as the
// Managed HSM backend does, so that the stand-in can tell its calls apart.
func withRequestIDs(o *azkeys.ClientOptions) {
	o.PerCallPolicies = append(o.PerCallPolicies, runtime.NewRequestIDPolicy())
}

// Rates are fractions of all requests, drawn once: kinds listed later are
// not shadowed by earlier ones.
func TestFaultRatesAreFractionsOfAllRequests(t *testing.T) {
	srv, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetInject(Inject{Throttle: Fault{Rate: 0.1}, ThrottleBare: Fault{Rate: 0.1}, ServerError: Fault{Rate: 0.1},
		InternalError: Fault{Rate: 0.1}, Drop: Fault{Rate: 0.1}, Late: Fault{Rate: 0.1}})
	const n = 60000
	got := map[faultKind]int{}
	for range n {
		k, _ := srv.pickFault()
		got[k]++
	}
	for _, k := range []faultKind{faultThrottle, faultThrottleBare, faultServerError, faultInternalError, faultDrop, faultLate} {
		if f := float64(got[k]) / n; math.Abs(f-0.1) > 0.01 {
			t.Errorf("kind %d fired on %.3f of the requests, want 0.1", k, f)
		}
	}
	if f := float64(got[faultNone]) / n; math.Abs(f-0.4) > 0.015 {
		t.Errorf("no fault on %.3f of the requests, want 0.4", f)
	}
}

func TestDropLateAndCallRecords(t *testing.T) {
	srv, url := startServer(t, Options{})
	cred := &staticCred{token: testToken}
	client := newClient(t, srv, url, cred, func(o *azkeys.ClientOptions) {
		withRequestIDs(o)
		o.Retry.TryTimeout = 300 * time.Millisecond
	})
	ctx := context.Background()
	if _, err := client.CreateKey(ctx, "d", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("drop"))
	sign := func() error {
		_, err := client.Sign(ctx, "d", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: digest[:]}, nil)
		return err
	}

	// A cut answer: azcore does not retry a POST whose body broke off.
	srv.SetInject(Inject{Drop: Fault{Count: 1}})
	if err := sign(); err == nil || !strings.Contains(err.Error(), "INTERNAL_ERROR") {
		t.Fatalf("sign through a cut answer: %v", err)
	}
	// A late answer: the client's try times out and it retries; the
	// stand-in carries out both.
	srv.SetInject(Inject{Late: Fault{Count: 1}, LateBy: 500 * time.Millisecond})
	if err := sign(); err != nil {
		t.Fatalf("sign through a late answer: %v", err)
	}
	// A throttled create is retried (429 says it was not carried out).
	srv.SetInject(Inject{ThrottleBare: Fault{Count: 1}})
	if _, err := client.CreateKey(ctx, "d2", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // the late one is carried out
	calls := srv.Calls()
	if len(calls) != 4 {
		t.Fatalf("%d calls recorded: %+v", len(calls), calls)
	}
	first, cut, late, throttled := calls[0], calls[1], calls[2], calls[3]
	// The first call meets the challenge: the re-send that follows is no try.
	if first.Op != "create" || strings.Join(first.Answers, ",") != "401,200" || first.Tries != 1 || first.Executed != 1 {
		t.Errorf("first create (challenge, then created): %+v", first)
	}
	if cut.Op != "sign" || strings.Join(cut.Answers, ",") != "cut" || cut.Tries != 1 || cut.Executed != 1 {
		t.Errorf("cut sign: %+v", cut)
	}
	if late.Op != "sign" || strings.Join(late.Answers, ",") != "late,200" || late.Tries != 2 || late.Executed != 2 {
		t.Errorf("late sign: %+v", late)
	}
	if throttled.Op != "create" || strings.Join(throttled.Answers, ",") != "429,200" || throttled.Tries != 2 || throttled.Executed != 1 {
		t.Errorf("throttled create: %+v", throttled)
	}
	st := srv.Stats()
	if st.Calls != 4 || st.Retries != 2 || st.MaxTries != 2 || st.Repeated["sign"] != 1 || st.Repeated["create"] != 0 || st.Dropped != 1 || st.Late != 1 {
		t.Errorf("stats %+v", st)
	}
	var wire []Call
	getJSON(t, srv, url+"/_standin/calls", &wire)
	if len(wire) != 4 || wire[2].Executed != 2 {
		t.Errorf("GET /_standin/calls: %+v", wire)
	}
}

func getJSON(t *testing.T, srv *Server, url string, v any) {
	t.Helper()
	resp, err := srv.Client().Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// An outage holds requests and new handshakes without an answer until it
// ends; the control endpoint keeps answering.
func TestOutage(t *testing.T) {
	srv, url := startServer(t, Options{})
	client := newClient(t, srv, url, &staticCred{token: testToken}, func(o *azkeys.ClientOptions) {
		o.Retry = policy.RetryOptions{MaxRetries: -1}
	})
	ctx := context.Background()
	if _, err := client.CreateKey(ctx, "o", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
		t.Fatal(err)
	}
	admin := srv.Client() // connected before the outage
	if _, err := admin.Get(url + "/_standin/stats"); err != nil {
		t.Fatal(err)
	}
	srv.SetInject(Inject{Outage: time.Second})
	start := time.Now()

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := client.GetKey(short, "o", "", nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("during the outage: %v, want no answer", err)
	}
	var inj injectWire
	resp, err := admin.Get(url + "/_standin/inject")
	if err != nil {
		t.Fatalf("the control endpoint during the outage: %v", err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&inj); err != nil || inj.OutageMS <= 0 || inj.OutageMS > 1000 {
		t.Errorf("outage left: %v ms, %v", inj.OutageMS, err)
	}
	resp.Body.Close()
	// A new connection's handshake waits as well.
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hs := make(chan error, 1)
	go func() {
		hs <- tls.Client(conn, &tls.Config{RootCAs: srv.CertPool(), ServerName: "localhost"}).Handshake()
	}()
	select {
	case err := <-hs:
		t.Fatalf("a handshake completed during the outage: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	// A request that waits gets its answer once the outage is over.
	if _, err := client.GetKey(ctx, "o", "", nil); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	if el := time.Since(start); el < time.Second || el > 1500*time.Millisecond {
		t.Errorf("answered %v after the outage began, want just after 1s", el)
	}
	if err := <-hs; err != nil {
		t.Errorf("the held handshake after the outage: %v", err)
	}
}

// Issued tokens are accepted until their expiry and refused from then on;
// the identity endpoint issues them the App Service way.
func TestIssuedTokensExpire(t *testing.T) {
	srv, url := startServer(t, Options{TokenLifetime: 1500 * time.Millisecond})
	id := httptest.NewServer(srv.IdentityHandler("secret"))
	t.Cleanup(id.Close)
	ask := func(header, resource, version string) (int, map[string]string) {
		req, _ := http.NewRequest(http.MethodGet, id.URL+"/msi/token?api-version="+version+"&resource="+resource, nil)
		req.Header.Set("X-IDENTITY-HEADER", header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if st, _ := ask("wrong", DefaultResource, IdentityAPIVersion); st != http.StatusUnauthorized {
		t.Errorf("wrong secret: %d", st)
	}
	if st, _ := ask("secret", "https://vault.azure.net", IdentityAPIVersion); st != http.StatusBadRequest {
		t.Errorf("another resource: %d", st)
	}
	if st, _ := ask("secret", DefaultResource, "2017-09-01"); st != http.StatusBadRequest {
		t.Errorf("another api-version: %d", st)
	}
	st, m := ask("secret", DefaultResource, IdentityAPIVersion)
	if st != http.StatusOK || m["token_type"] != "Bearer" || m["resource"] != DefaultResource || m["access_token"] == "" {
		t.Fatalf("token: %d %v", st, m)
	}
	cred := &staticCred{token: m["access_token"]}
	client := newClient(t, srv, url, cred, nil)
	ctx := context.Background()
	if _, err := client.CreateKey(ctx, "tok", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
		t.Fatalf("with a fresh issued token: %v", err)
	}
	time.Sleep(1600 * time.Millisecond)
	_, err := client.GetKey(ctx, "tok", "", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized {
		t.Fatalf("with the expired token: %v, want 401", err)
	}
	if srv.Stats().TokensIssued != 1 {
		t.Errorf("stats %+v", srv.Stats())
	}
}
