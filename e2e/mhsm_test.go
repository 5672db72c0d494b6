package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/hsmbridge/hsmbridge/adapters/mhsm"
	"github.com/hsmbridge/hsmbridge/internal/config"
)

// The Managed HSM backend end to end: the same flows the simulator tests
// run, with managedhsm: routed by config alone (examples/config/
// mhsm-standin.hcl) to the hsmbridge-mhsm plugin, whose azkeys client talks
// HTTPS to the local stand-in (build/bin/mhsm-standin) as it would to
// Azure. Only hsmhost holds the bearer token; openssl, nginx and its workers
// run without it. Results are checked with OpenSSL's default provider, Go's
// crypto and, for what lives in the "HSM", an azkeys client of the test's own
// that reads the stand-in directly.

// standin is one mhsm-standin process.
type standin struct {
	url   string // https://127.0.0.1:<port>
	addr  string // 127.0.0.1:<port>
	ca    string // its CA certificate (PEM file)
	state string // its key store (JSON, private keys in clear)
	token string // the one bearer token it accepts
}

func requireMHSMBuild(t *testing.T) {
	t.Helper()
	requireBuild(t)
	for _, p := range []string{filepath.Join(buildDir, "bin", "mhsm-standin"), filepath.Join(buildDir, "plugins", "hsmbridge-mhsm")} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("HSMBRIDGE_REQUIRE_E2E") != "" {
				t.Fatalf("%s is missing: run make build", p)
			}
			t.Skipf("%s is missing: run make build", p)
		}
	}
}

// startStandin runs the stand-in on a free loopback port with a fresh
// random token (and extra flags) and waits until it has written its URL.
func startStandin(t *testing.T, extra ...string) *standin {
	t.Helper()
	dir, err := os.MkdirTemp("", "hsmbridge-standin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // the CA file is read by the plugin
	tok := make([]byte, 16)
	rand.Read(tok)
	s := &standin{ca: filepath.Join(dir, "ca.pem"), state: filepath.Join(dir, "state.json"), token: "e2e-" + hex.EncodeToString(tok)}
	urlFile := filepath.Join(dir, "url")
	cmd := exec.Command(filepath.Join(buildDir, "bin", "mhsm-standin"), append([]string{"-addr", "127.0.0.1:0",
		"-token", s.token, "-ca-out", s.ca, "-url-out", urlFile, "-state", s.state}, extra...)...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("mhsm-standin output:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(urlFile)
		if u := strings.TrimSpace(string(b)); strings.HasSuffix(string(b), "\n") && u != "" {
			s.url = u
			s.addr = strings.TrimPrefix(u, "https://")
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("mhsm-standin wrote no URL within 10s:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fillTemplate turns examples/config/<name> into a usable config for s.
func fillTemplate(t *testing.T, name string, s *standin) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "config", name))
	if err != nil {
		t.Fatal(err)
	}
	out := strings.NewReplacer("@PLUGIN_DIR@", filepath.Join(buildDir, "plugins"),
		"@STANDIN_ADDR@", s.addr, "@STANDIN_CA@", s.ca).Replace(string(b))
	if i := strings.Index(out, "= \"@"); i >= 0 {
		t.Fatalf("%s: placeholder left: %s", name, out[i:i+30])
	}
	return out
}

// startMHSMHost starts a stand-in and an hsmhost whose config routes
// managedhsm: to the Managed HSM backend pointed at it. extra is prepended to
// the config (socket options for nginx workers).
func startMHSMHost(t *testing.T, extra string) (*host, *standin) {
	t.Helper()
	requireMHSMBuild(t)
	s := startStandin(t)
	h := startHostWithEnv(t, extra+fillTemplate(t, "mhsm-standin.hcl", s), []string{mhsm.EnvStaticToken + "=" + s.token})
	// The applications' environment carries no token: what they do, they
	// do through hsmhost.
	if out := h.run("", "env"); strings.Contains(out, s.token) || strings.Contains(out, mhsm.EnvStaticToken) {
		t.Fatalf("the applications' environment holds the token:\n%s", out)
	}
	return h, s
}

// azkeysClient reads the stand-in directly, as Azure's own SDK would, by the
// HSM's real name; it shares no code with the plugin.
func (s *standin) azkeysClient(t *testing.T) *azkeys.Client {
	t.Helper()
	pemCA, err := os.ReadFile(s.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		t.Fatal("no certificate in the stand-in's CA file")
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	hc := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, s.addr)
		},
	}}
	c, err := azkeys.NewClient("https://myhsm.managedhsm.azure.net", staticCred(s.token),
		&azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type staticCred string

func (c staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(c), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// publicPEM is the PEM SubjectPublicKeyInfo of an RSA or EC JWK.
func publicPEM(t *testing.T, k *azkeys.JSONWebKey) string {
	t.Helper()
	var pub any
	switch {
	case k.N != nil:
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(new(big.Int).SetBytes(k.E).Int64())}
	case k.Crv != nil && *k.Crv == azkeys.CurveNameP256:
		pub = &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(k.X), Y: new(big.Int).SetBytes(k.Y)}
	case k.Crv != nil && *k.Crv == azkeys.CurveNameP384:
		pub = &ecdsa.PublicKey{Curve: elliptic.P384(), X: new(big.Int).SetBytes(k.X), Y: new(big.Int).SetBytes(k.Y)}
	default:
		t.Fatalf("unexpected JWK %+v", k)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// The example configs are valid hsmhost configs whose settings the backend
// accepts, and they send both reference forms to the Managed HSM backend.
func TestMHSMExampleConfigs(t *testing.T) {
	requireMHSMBuild(t)
	s := startStandin(t)
	for _, name := range []string{"mhsm-standin.hcl", "managed-hsm.hcl"} {
		src := fillTemplate(t, name, s)
		c, err := config.Parse([]byte(src), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(c.Backends) != 1 || c.Backends[0].Name != "mhsm" || !strings.HasSuffix(c.Backends[0].Plugin, "/hsmbridge-mhsm") ||
			!slices.Contains(c.Backends[0].PassEnv, mhsm.EnvStaticToken) {
			t.Errorf("%s: backends %+v", name, c.Backends)
		}
		if len(c.Routes) != 1 || c.Routes[0].Prefix != "managedhsm:" || c.Routes[0].Backend != "mhsm" {
			t.Errorf("%s: routes %+v", name, c.Routes)
		}
		if err := mhsm.New().Configure(context.Background(), c.Backends[0].Settings); err != nil {
			t.Errorf("%s: the backend refuses the settings: %v", name, err)
		}
	}
	// An unfilled template is refused, not half-used.
	raw, _ := os.ReadFile(filepath.Join(repoRoot, "examples", "config", "mhsm-standin.hcl"))
	if _, err := config.Parse(raw, "mhsm-standin.hcl"); err == nil || !strings.Contains(err.Error(), "must be absolute") {
		t.Errorf("the raw template parsed: %v", err)
	}
}

// Keys made with `hsmhost key create` are Managed HSM keys in the stand-in,
// as Azure's SDK sees them, with the public keys hsmhost reports.
func TestMHSMKeysLiveInTheHSM(t *testing.T) {
	h, s := startMHSMHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:myrsakey", "--kty", "RSA-HSM", "--size", "3072", "--ops", "sign,decrypt")
	h.hsmhost("key", "create", "managedhsm:MyHSM:myeckey", "--kty", "EC-HSM", "--curve", "P-256", "--ops", "sign")
	h.hsmhost("key", "create", "managedhsm:MyHSM:myaeskey", "--kty", "oct-HSM", "--size", "256", "--ops", "wrapKey,unwrapKey")
	list := h.hsmhost("key", "list", "managedhsm:MyHSM:")
	for _, k := range []string{"myrsakey", "myeckey", "myaeskey"} {
		if !strings.Contains(list, "managedhsm:MyHSM:"+k) {
			t.Errorf("hsmhost key list lacks %s:\n%s", k, list)
		}
	}

	c := s.azkeysClient(t)
	ctx := context.Background()
	want := map[string]struct {
		kty azkeys.KeyType
		ops []string
	}{
		"myrsakey": {azkeys.KeyTypeRSAHSM, []string{"decrypt", "sign"}},
		"myeckey":  {azkeys.KeyTypeECHSM, []string{"sign"}},
		"myaeskey": {azkeys.KeyTypeOctHSM, []string{"unwrapKey", "wrapKey"}},
	}
	for name, w := range want {
		kb, err := c.GetKey(ctx, name, "", nil)
		if err != nil {
			t.Fatalf("azkeys GetKey %s: %v", name, err)
		}
		k := kb.Key
		var ops []string
		for _, o := range k.KeyOps {
			ops = append(ops, string(*o))
		}
		slices.Sort(ops)
		if *k.Kty != w.kty || !slices.Equal(ops, w.ops) {
			t.Errorf("%s in the HSM: kty %s ops %v, want %s %v", name, *k.Kty, ops, w.kty, w.ops)
		}
		if w.kty == azkeys.KeyTypeOctHSM {
			continue
		}
		if k.N != nil && len(k.N) != 384 {
			t.Errorf("%s: %d-byte modulus, want 3072 bits", name, len(k.N))
		}
		if got := h.hsmhost("key", "pubkey", "managedhsm:MyHSM:"+name); !samePEM(got, publicPEM(t, k)) {
			t.Errorf("%s: hsmhost key pubkey\n%s\ndiffers from the HSM's\n%s", name, got, publicPEM(t, k))
		}
	}
}

// The Managed HSM seed's CSR, self-signed certificate and sign/verify flows,
// as on the simulator (TestManagedHSMSeedCommands), with the seed's key
// types. P-384 is the exception: Managed HSM signs with a P-384 key only
// over a SHA-384 digest (ES384), and the seed's commands ask for SHA-256, so
// they must fail with a message that says so; with -sha384 they work.
func TestMHSMSeedCommands(t *testing.T) {
	requireTool(t, "openssl")
	start := func(t *testing.T) *host {
		h, _ := startMHSMHost(t, "")
		return h
	}
	var keys []seedKey
	for _, k := range seedKeys {
		if k.name != "EC-P384" {
			keys = append(keys, k)
		}
	}
	if len(keys) != len(seedKeys)-1 {
		t.Fatal("seedKeys changed: no EC-P384 entry")
	}
	runSeedCommands(t, start, keys)

	t.Run("EC-P384", func(t *testing.T) {
		h := start(t)
		h.hsmhost("key", "create", "managedhsm:MyHSM:mykey", "--kty", "EC-HSM", "--curve", "P-384", "--ops", "sign")
		h.write("data.txt", "hello from hsmbridge\n")
		out, err := h.try("", "sh", "-c", seedSign)
		if err == nil || !strings.Contains(out, "managedhsm:MyHSM:mykey") || !strings.Contains(out, "sha384 only") {
			t.Fatalf("SHA-256 with a P-384 key: want a refusal naming the key and sha384: %v\n%s", err, out)
		}
		h.write("pubkey.pem", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:mykey"))
		sha384 := strings.ReplaceAll(seedCSR, "openssl req -new", "openssl req -new -sha384")
		h.shell(sha384)
		if out := h.run("", "openssl", "req", "-verify", "-in", "server.csr", "-noout"); !strings.Contains(out, "verify OK") {
			t.Fatalf("openssl req -verify: %s", out)
		}
		h.shell(strings.ReplaceAll(seedSign, "-sha256", "-sha384"))
		if out := h.shell(strings.ReplaceAll(seedVerify, "-sha256", "-sha384")); !strings.Contains(out, "Verified OK") {
			t.Fatalf("verify: %s", out)
		}
	})
}

// Managed HSM decrypts RSA1_5, RSA-OAEP (SHA-1) and RSA-OAEP-256 (MGF1 with
// the same digest, no label): those pass the simulator's decrypt flow; the
// rest is refused with a message that names the key and says why.
func TestMHSMDecryptSeed(t *testing.T) {
	requireTool(t, "openssl")
	h, _ := startMHSMHost(t, "")
	var supported, refused []struct{ name, opts string }
	for _, s := range encryptionSchemes {
		if strings.Contains(s.opts, "sha384") || strings.Contains(s.opts, "sha512") ||
			strings.Contains(s.opts, "label") || strings.Contains(s.opts, "mgf1_md:sha1") {
			refused = append(refused, s)
		} else {
			supported = append(supported, s)
		}
	}
	if len(supported) != 5 || len(refused) != 4 {
		t.Fatalf("scheme split %d/%d; the list in decrypt_test.go changed", len(supported), len(refused))
	}
	decryptSeedFlows(t, h, supported, "")
	for _, s := range refused {
		h.shell(fmt.Sprintf("openssl pkeyutl -encrypt -pubin -inkey myrsakey.pub %s -in plaintext.bin -out ciphertext.bin", s.opts))
		out, err := h.try("", "sh", "-c", fmt.Sprintf("openssl pkeyutl -decrypt %s -inkey managedhsm:MyHSM:myrsakey %s -in ciphertext.bin -out decrypted.bin", withProvider, s.opts))
		if err == nil {
			t.Errorf("%s: decrypted, but Managed HSM has no such algorithm", s.name)
		} else if !strings.Contains(out, "managedhsm:MyHSM:myrsakey") || !strings.Contains(out, "Managed HSM") && !strings.Contains(out, "does not support") {
			t.Errorf("%s: the refusal does not name the key and the reason:\n%s", s.name, out)
		}
	}
}

// nginx keyless TLS with RSA 3072 and EC P-256 keys on 4 workers, as on the
// simulator; neither nginx's master nor its workers hold the token.
func TestMHSMNginxKeylessTLS(t *testing.T) {
	requireNginx(t)
	hostConfig, workerUser := nginxWorkerAccess(t)
	h, s := startMHSMHost(t, hostConfig)
	n := nginxKeylessTLS(t, h, hostConfig, workerUser)
	pids := append([]int{n.cmd.Process.Pid}, childPIDs(n.cmd.Process.Pid)...)
	if len(pids) < 5 {
		t.Errorf("nginx has %d processes, want a master and 4 workers", len(pids))
	}
	for _, pid := range pids {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(env, []byte(s.token)) || bytes.Contains(env, []byte(mhsm.EnvStaticToken)) {
			t.Errorf("nginx process %d holds the token", pid)
		}
	}
}

func childPIDs(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// A key rotated in the HSM while nginx runs: the workers keep signing with
// the version they loaded (their certificate's), so handshakes keep
// succeeding; a reload with a certificate for the new version picks the new
// version up. Run on the simulator too: the guarantee is the front end's,
// whatever the route.
func TestRotationDoesNotChangeWhatRunningNginxSignsWith(t *testing.T) {
	requireNginx(t)
	hostConfig, workerUser := nginxWorkerAccess(t)
	for _, backend := range []string{"simulator", "mhsm"} {
		t.Run(backend, func(t *testing.T) {
			var h *host
			if backend == "mhsm" {
				h, _ = startMHSMHost(t, hostConfig)
			} else {
				h = startHost(t, hostConfig)
			}
			const ref = "managedhsm:MyHSM:nginx-rot"
			nginxKey(h, "rot", "--kty EC --curve P-256")
			h.write("v1.crt", h.read("rot.crt"))
			h.write("v1.pub", h.hsmhost("key", "pubkey", ref))
			n := startNginx(t, h, workerUser, "rot")
			if total, failures, _ := n.handshakes(5, "rot"); len(failures) > 0 {
				t.Fatalf("before rotation: %d of %d failed; first: %s", len(failures), total, failures[0])
			}

			// Rotate: a new version becomes the latest.
			h.hsmhost("key", "create", ref, "--kty", "EC", "--curve", "P-256", "--ops", "sign")
			h.write("v2.pub", h.hsmhost("key", "pubkey", ref))
			if samePEM(h.read("v1.pub"), h.read("v2.pub")) {
				t.Fatal("the second key create made no new key")
			}
			// A fresh load now signs with the new version (checked by the
			// default provider), so the rotation is real...
			h.write("data.txt", "after rotation\n")
			h.shell("openssl dgst -sha256 " + withProvider + " -sign " + ref + " -out sig.bin data.txt")
			if out := h.shell("openssl dgst -sha256 -verify v2.pub -signature sig.bin data.txt"); !strings.Contains(out, "Verified OK") {
				t.Fatalf("a new load does not sign with the new version: %s", out)
			}
			// ...and the running workers still sign with the old one: curl
			// checks every handshake signature against the v1 certificate.
			total, failures, pids := n.handshakes(25, "rot")
			if len(failures) > 0 {
				t.Fatalf("after rotation, before reload: %d of %d handshakes failed; first: %s", len(failures), total, failures[0])
			}
			if len(pids) < 2 {
				t.Errorf("only %d worker(s) served after rotation", len(pids))
			}

			// Reload with a certificate for the new version.
			h.run("", "openssl", "req", "-new", "-x509", "-provider", "akv_provider", "-provider", "default",
				"-key", ref, "-subj", "/CN=localhost", "-days", "2", "-out", "rot.crt")
			oldWorkers := childPIDs(n.cmd.Process.Pid)
			if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			// New workers start with the new configuration (or, if the
			// key did not match the certificate, nginx keeps the old
			// ones); the old ones leave once idle.
			for deadline := time.Now().Add(15 * time.Second); ; {
				left := 0
				for _, pid := range oldWorkers {
					if syscall.Kill(pid, 0) == nil {
						left++
					}
				}
				if left == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d old workers still run 15s after SIGHUP (reload refused?)", left)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if total, failures, _ := n.handshakes(10, "rot"); len(failures) > 0 {
				t.Fatalf("after reload: %d of %d failed; first: %s", len(failures), total, failures[0])
			}
			// And the v1 certificate no longer matches what is served.
			for _, proto := range []string{"1.2", "1.3"} {
				if body, err := n.get("rot", proto, "v1.crt"); err == nil {
					t.Errorf("after reload, TLS %s still verifies with the v1 certificate: %s", proto, body)
				}
			}
		})
	}
}

// AES-256 key wrap with an oct-HSM key through the seed's command form,
// checked against OpenSSL's default provider given the key material from
// the stand-in's store (a real HSM never releases it; the stand-in's test
// store does).
func TestMHSMAESKeyWrap(t *testing.T) {
	requireTool(t, "openssl")
	h, s := startMHSMHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:myaeskey", "--kty", "oct-HSM", "--size", "256", "--ops", "wrapKey,unwrapKey")
	randomFile(t, h, "key.bin", 32)
	out, err := h.try("", "sh", "-c", "openssl pkeyutl -encrypt "+withProvider+" -inkey managedhsm:MyHSM:myaeskey -in key.bin -out wrapped.bin")
	if err != nil && strings.Contains(out, "is not an RSA or EC key") {
		t.Skipf("this provider build has no AES key wrap yet:\n%s", out)
	}
	if err != nil {
		t.Fatalf("wrap: %v\n%s", err, out)
	}
	kek := standinSecret(t, s, "myaeskey")
	if len(kek) != 32 {
		t.Fatalf("the stand-in holds a %d-byte key, want 32", len(kek))
	}
	if got, want := readBytes(t, h, "wrapped.bin"), defaultProviderWrap(t, h, "id-aes256-wrap", kek, "key.bin", false); !bytes.Equal(got, want) {
		t.Fatalf("HSM wrap %x, default provider %x", got, want)
	}
	h.shell("openssl pkeyutl -decrypt " + withProvider + " -inkey managedhsm:MyHSM:myaeskey -in wrapped.bin -out unwrapped.bin")
	if !bytes.Equal(readBytes(t, h, "unwrapped.bin"), readBytes(t, h, "key.bin")) {
		t.Fatal("unwrap did not give the wrapped key back")
	}
	// The check can fail: a tampered wrap is refused.
	flipByte(t, h, "wrapped.bin", "tampered.bin", 9)
	if out, err := h.try("", "sh", "-c", "openssl pkeyutl -decrypt "+withProvider+" -inkey managedhsm:MyHSM:myaeskey -in tampered.bin -out x.bin"); err == nil {
		t.Fatalf("a tampered wrap unwrapped:\n%s", out)
	}
}

// standinSecret reads an oct key's bytes from the stand-in's store file.
func standinSecret(t *testing.T, s *standin, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(s.state)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Keys []struct {
			Name     string `json:"name"`
			Versions []struct {
				Key struct {
					K string `json:"k"`
				} `json:"key"`
			} `json:"versions"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for _, k := range st.Keys {
		if strings.EqualFold(k.Name, name) && len(k.Versions) > 0 {
			raw, err := base64.RawURLEncoding.DecodeString(k.Versions[len(k.Versions)-1].Key.K)
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}
	}
	t.Fatalf("no key %s in the stand-in's store", name)
	return nil
}
