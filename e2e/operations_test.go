package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/adapters/mhsm"
	"github.com/hsmbridge/hsmbridge/internal/telemetry"
	"github.com/hsmbridge/hsmbridge/internal/telemetry/telemetrytest"
)

// Operations, end to end: what hsmhost tells its operators about the
// signatures openssl makes through the provider (the metrics and the audit
// trail), and what its log never holds, in a full flow on the Managed HSM
// stand-in and the simulator at the most verbose level.

// auditLines are the audit lines of a text-format log.
func auditLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "hsmhost.audit: "+telemetry.AuditMessage+":") {
			out = append(out, l)
		}
	}
	return out
}

func TestMetricsCountOpenSSLSignatures(t *testing.T) {
	requireTool(t, "openssl")
	port := freePort(t)
	h := startHost(t, fmt.Sprintf("metrics_listen = \"127.0.0.1:%d\"\n", port))
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	const ec, rsa = "managedhsm:MyHSM:metered-ec", "managedhsm:MyHSM:metered-rsa"
	h.hsmhost("key", "create", ec, "--kty", "EC", "--curve", "P-256", "--ops", "sign,verify")
	h.hsmhost("key", "create", rsa, "--kty", "RSA", "--size", "2048", "--ops", "sign,verify")
	h.write("ec.pub", h.hsmhost("key", "pubkey", ec))
	h.write("rsa.pub", h.hsmhost("key", "pubkey", rsa))
	h.write("data.txt", "count these signatures\n")

	const ops, latency = "hsmbridge_key_operations_total", "hsmbridge_key_operation_duration_seconds"
	ecOK := []string{"backend=simulator", "op=sign", "algorithm=ecdsa-sha256", "result=ok"}
	pssOK := []string{"backend=simulator", "op=sign", "algorithm=rsa-pss-sha384", "result=ok"}
	before := telemetrytest.Scrape(t, url)
	const nEC, nPSS = 3, 2
	for range nEC {
		h.shell("openssl dgst -sha256 " + withProvider + " -sign " + ec + " -out sig.bin data.txt")
		if out := h.shell("openssl dgst -sha256 -verify ec.pub -signature sig.bin data.txt"); !strings.Contains(out, "Verified OK") {
			t.Fatalf("verify: %s", out)
		}
	}
	for range nPSS {
		h.shell("openssl dgst -sha384 " + withProvider + " -sign " + rsa + " -sigopt rsa_padding_mode:pss -out sig.bin data.txt")
		if out := h.shell("openssl dgst -sha384 -verify rsa.pub -sigopt rsa_padding_mode:pss -signature sig.bin data.txt"); !strings.Contains(out, "Verified OK") {
			t.Fatalf("verify: %s", out)
		}
	}
	after := telemetrytest.Scrape(t, url)
	if d := after.Value(ops, ecOK...) - before.Value(ops, ecOK...); d != nEC {
		t.Errorf("%s%v moved by %v for %d openssl signatures", ops, ecOK, d, nEC)
	}
	if d := after.Value(ops, pssOK...) - before.Value(ops, pssOK...); d != nPSS {
		t.Errorf("%s%v moved by %v for %d openssl signatures", ops, pssOK, d, nPSS)
	}
	if d := after.Value(ops, "op=sign") - before.Value(ops, "op=sign"); d != nEC+nPSS {
		t.Errorf("%v signatures counted in all, want %d", d, nEC+nPSS)
	}
	sign := []string{"backend=simulator", "op=sign"}
	if d := after.Count(latency, sign...) - before.Count(latency, sign...); d != nEC+nPSS {
		t.Errorf("%s%v has %d more observations, want %d", latency, sign, d, nEC+nPSS)
	}
	if after.Value("hsmbridge_client_sessions") != 0 || after.Value("hsmbridge_client_connections") != 0 {
		t.Errorf("openssl has exited, yet sessions %v, connections %v",
			after.Value("hsmbridge_client_sessions"), after.Value("hsmbridge_client_connections"))
	}

	// The audit trail has a line per signature, naming openssl.
	h.stop()
	openssl, _ := exec.LookPath("openssl")
	openssl, _ = filepath.EvalSymlinks(openssl)
	got := map[string]int{}
	for _, l := range auditLines(h.log.String()) {
		if strings.Contains(l, "op=sign") && strings.Contains(l, "result=ok") && strings.Contains(l, "exe="+openssl) {
			for _, ref := range []string{ec, rsa} {
				if strings.Contains(l, "reference="+ref+"?version=") {
					got[ref]++
				}
			}
		}
	}
	if got[ec] != nEC || got[rsa] != nPSS {
		t.Errorf("audit lines of openssl's signatures: %v, want %d and %d:\n%s", got, nEC, nPSS, strings.Join(auditLines(h.log.String()), "\n"))
	}
}

// forms are the ways a secret could show up in a log line.
func forms(b []byte) []string {
	out := []string{
		hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
		fmt.Sprint(b),                     // [1 2 3]
		strings.Trim(fmt.Sprint(b), "[]"), // 1 2 3
	}
	if len(b) >= 8 {
		out = append(out, string(b))
	}
	// A prefix of 12 bytes is already telling: a log that cut a value short
	// would still leak it.
	if len(b) > 12 {
		out = append(out, hex.EncodeToString(b[:12]), base64.RawStdEncoding.EncodeToString(b[:12]), base64.RawURLEncoding.EncodeToString(b[:12]))
	}
	return out
}

// The log of a full flow, through the provider and the CLI, on the
// Managed HSM stand-in (with its bearer token) and the simulator, at trace
// level in both formats, holds no token, no key, no digest, no plaintext
// and no key being wrapped; and the metrics hold none of them either.
func TestLogsHoldNoSecrets(t *testing.T) {
	requireTool(t, "openssl")
	port := freePort(t)
	extra := fmt.Sprintf(`metrics_listen = "127.0.0.1:%d"
backend "sim" {
  plugin = "builtin:simulator"
}
route {
  prefix  = "hsmbridge:"
  backend = "sim"
}
`, port)
	h, s := startMHSMHost(t, extra)
	secrets := map[string][]byte{"the bearer token": []byte(s.token)}
	// Keys in both backends, logged in text at debug level.
	for _, ns := range []string{"managedhsm:MyHSM:", "hsmbridge:lab:"} {
		h.hsmhost("key", "create", ns+"ec", "--kty", "EC", "--curve", "P-256", "--ops", "sign,verify")
		h.hsmhost("key", "create", ns+"rsa", "--kty", "RSA", "--size", "2048", "--ops", "sign,decrypt")
		h.hsmhost("key", "create", ns+"aes", "--kty", "oct", "--size", "256", "--ops", "wrapKey,unwrapKey")
	}
	secrets["the Managed HSM AES key"] = standinSecret(t, s, "aes")
	// The rest as verbose as hsmhost gets, plugins included, in JSON.
	h.restartHost(t, []string{"--config", filepath.Join(h.dir, "hsmhost.hcl"), "--log-level", "trace", "--log-format", "json"},
		mhsm.EnvStaticToken+"="+s.token)

	// An imported private key travels through hsmhost.
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	h.write("imported.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	secrets["the imported key's scalar"] = priv.D.FillBytes(make([]byte, 32))
	secrets["the imported key's PKCS#8"] = der
	for _, ns := range []string{"managedhsm:MyHSM:", "hsmbridge:lab:"} {
		h.hsmhost("key", "import", ns+"imported", "--in", h.path("imported.pem"), "--ops", "sign,verify")
	}

	data := []byte("the data signed in this test, whose digest must not be logged\n")
	h.write("data.txt", string(data))
	digest := sha256.Sum256(data)
	secrets["the digest signed"] = digest[:]
	secrets["the plaintext decrypted"] = randomFile(t, h, "plain.bin", 32)
	secrets["the key wrapped"] = randomFile(t, h, "key.bin", 32)
	for _, ns := range []string{"managedhsm:MyHSM:", "hsmbridge:lab:"} {
		for _, k := range []string{"ec", "rsa", "imported"} {
			h.shell("openssl dgst -sha256 " + withProvider + " -sign " + ns + k + " -out sig.bin data.txt")
		}
		h.shell("openssl pkeyutl -sign " + withProvider + " -inkey " + ns + "ec -in data.txt -rawin -digest sha256 -out sig2.bin")
		h.write("rsa.pub", h.hsmhost("key", "pubkey", ns+"rsa"))
		h.shell("openssl pkeyutl -encrypt -pubin -inkey rsa.pub -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in plain.bin -out ct.bin")
		h.shell("openssl pkeyutl -decrypt " + withProvider + " -inkey " + ns + "rsa -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in ct.bin -out out.bin")
		if string(readBytes(t, h, "out.bin")) != string(secrets["the plaintext decrypted"]) {
			t.Fatalf("%s: decryption gave something else", ns)
		}
		h.shell("openssl pkeyutl -encrypt " + withProvider + " -inkey " + ns + "aes -in key.bin -out wrapped.bin")
		h.shell("openssl pkeyutl -decrypt " + withProvider + " -inkey " + ns + "aes -in wrapped.bin -out unwrapped.bin")
		if string(readBytes(t, h, "unwrapped.bin")) != string(secrets["the key wrapped"]) {
			t.Fatalf("%s: unwrap gave something else", ns)
		}
		// Failures log their error messages: some of each kind.
		h.try("", "sh", "-c", "openssl dgst -sha256 "+withProvider+" -sign "+ns+"absent -out x.bin data.txt")
		h.try("", "sh", "-c", "openssl pkeyutl -decrypt "+withProvider+" -inkey "+ns+"aes -in plain.bin -out x.bin")
		h.try("", hsmhostBin, "doctor", strings.TrimSuffix(ns, ":")) // its test operations, whatever it finds
	}

	// Failures inside the plugin: throttling and a server error (retried),
	// an expired token's challenge, a denial. Their errors are logged.
	ctl := newStandinControl(t, s)
	for _, fault := range []string{"throttle", "server_error", "expire_token", "deny"} {
		ctl.inject(map[string]any{fault: map[string]any{"count": 1}})
		h.try("", "sh", "-c", "openssl dgst -sha256 "+withProvider+" -sign managedhsm:MyHSM:ec -out x.bin data.txt")
		h.try("", "sh", "-c", "openssl pkeyutl -encrypt "+withProvider+" -inkey managedhsm:MyHSM:aes -in key.bin -out x.bin")
	}
	ctl.inject(map[string]any{})

	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	f, err := telemetrytest.Parse(strings.NewReader(string(scrape)))
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range []string{"mhsm", "sim"} {
		for _, op := range []string{"sign", "decrypt", "wrap_key", "unwrap_key", "import_key"} {
			if f.Value("hsmbridge_key_operations_total", "backend="+backend, "op="+op, "result=ok") == 0 {
				t.Errorf("no successful %s counted for backend %s", op, backend)
			}
		}
	}
	if strings.Contains(string(scrape), "MyHSM") || strings.Contains(string(scrape), "hsmbridge:lab") {
		t.Error("the metrics name key references")
	}

	h.stop()
	log := h.log.String()
	// The checks below mean something only if the log has the flow in it.
	for _, want := range []string{`"@message":"key operation"`, `"op":"unwrap_key"`, `"backend":"mhsm"`, `"op":"import_key"`, `"@level":"trace"`} {
		if !strings.Contains(log, want) {
			t.Fatalf("the log has no %s: is this the flow's log?\n%s", want, log)
		}
	}
	if !strings.Contains(log, "hsmhost.audit: key operation:") {
		t.Fatalf("the text-format part of the log has no audit line")
	}
	for what, b := range secrets {
		for _, form := range forms(b) {
			if strings.Contains(log, form) {
				i := strings.Index(log, form)
				t.Errorf("hsmhost's log holds %s (as %q) at:\n%s", what, form, log[max(0, i-300):min(len(log), i+len(form)+100)])
				break
			}
			if strings.Contains(string(scrape), form) {
				t.Errorf("the metrics hold %s", what)
			}
		}
	}
	// Every line from the first JSON one (the restart) on is JSON.
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		if lines == 0 && !strings.HasPrefix(sc.Text(), "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("a line of the JSON run is not JSON: %v\n%s", err, sc.Text())
		}
		lines++
	}
	if lines == 0 {
		t.Fatal("no JSON line after the restart with --log-format json")
	}
	t.Logf("%d bytes of log checked (%d JSON lines); %d secrets in %d forms each", len(log), lines, len(secrets), len(forms(make([]byte, 32))))
	if os.Getenv("HSMBRIDGE_KEEP_LOG") != "" {
		os.WriteFile(os.Getenv("HSMBRIDGE_KEEP_LOG"), []byte(log), 0o600)
	}
}
