package e2e

import (
	"fmt"
	"testing"

	"github.com/hsmbridge/hsmbridge/adapters/mhsm"
	"github.com/hsmbridge/hsmbridge/internal/telemetry/telemetrytest"
)

// The Managed HSM plugin's own counters reach hsmhost's metrics: retries
// and throttled answers as the stand-in counted them, and a token asked
// for again after the service refused the first.
func TestMetricsCountManagedHSMRetriesThrottlingAndTokens(t *testing.T) {
	requireTool(t, "openssl")
	requireMHSMBuild(t)
	port := freePort(t)
	s := startStandin(t)
	h := startHostWithEnv(t, fmt.Sprintf("metrics_listen = \"127.0.0.1:%d\"\n", port)+fillTemplate(t, "mhsm-standin.hcl", s),
		[]string{mhsm.EnvStaticToken + "=" + s.token})
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	const ref = "managedhsm:MyHSM:metered"
	h.hsmhost("key", "create", ref, "--kty", "EC", "--curve", "P-256", "--ops", "sign,verify")
	h.write("data.txt", "count the retries\n")
	sign := func() { h.shell("openssl dgst -sha256 " + withProvider + " -sign " + ref + " -out sig.bin data.txt") }
	sign()

	const events = "hsmbridge_backend_events_total"
	ev := func(f telemetrytest.Families, event string) float64 {
		return f.Value(events, "backend=mhsm", "event="+event)
	}
	ctl := newStandinControl(t, s)
	before, sBefore := telemetrytest.Scrape(t, url), ctl.stats()
	if !before.Has(events, "backend=mhsm", "event=token_requests") || ev(before, "token_requests") < 1 {
		t.Fatalf("no token request counted after a signature:\n%v", before)
	}

	// Two throttled answers, each retried; the signature succeeds.
	ctl.inject(map[string]any{"throttle": map[string]any{"count": 2}, "retry_after_s": 0.001})
	sign()
	ctl.inject(map[string]any{})
	after, sAfter := telemetrytest.Scrape(t, url), ctl.stats()
	throttled := sAfter.ByStatus[429] - sBefore.ByStatus[429]
	retries := sAfter.Retries - sBefore.Retries
	if throttled != 2 || retries != 2 {
		t.Fatalf("the stand-in answered 429 %d times and saw %d retries, want 2 and 2: %s", throttled, retries, standinDelta(sBefore, sAfter))
	}
	if d := ev(after, "throttled") - ev(before, "throttled"); d != float64(throttled) {
		t.Errorf("throttled moved by %v for %d 429 answers", d, throttled)
	}
	if d := ev(after, "retries") - ev(before, "retries"); d != float64(retries) {
		t.Errorf("retries moved by %v for %d retries the stand-in saw", d, retries)
	}
	if d := ev(after, "token_requests") - ev(before, "token_requests"); d != 0 {
		t.Errorf("token_requests moved by %v with the token still good", d)
	}

	// The service refuses the token once: the plugin asks for another.
	ctl.inject(map[string]any{"expire_token": map[string]any{"count": 1}})
	sign()
	ctl.inject(map[string]any{})
	last := telemetrytest.Scrape(t, url)
	if d := ev(last, "token_requests") - ev(after, "token_requests"); d != 1 {
		t.Errorf("token_requests moved by %v after the service refused the token once", d)
	}
}
