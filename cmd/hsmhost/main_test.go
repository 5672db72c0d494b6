package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostclient"
)

var hsmhostBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hsmhost-bin")
	if err != nil {
		panic(err)
	}
	hsmhostBin = filepath.Join(dir, "hsmhost")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", hsmhostBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building hsmhost:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// host is one `hsmhost serve` process in its own directory.
type host struct {
	t      *testing.T
	dir    string
	socket string
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan error
}

func shortTempDir(t *testing.T) string {
	// Unix socket paths must stay under ~100 bytes; t.TempDir() may not.
	dir, err := os.MkdirTemp("", "hh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (h *host) env() []string {
	return append(os.Environ(), "HSMBRIDGE_SOCKET="+h.socket, "HSMBRIDGE_STATE_DIR="+filepath.Join(h.dir, "default-state"), "HSMBRIDGE_CONFIG=")
}

func startHost(t *testing.T, dir string, args ...string) *host {
	t.Helper()
	h := &host{t: t, dir: dir, socket: filepath.Join(dir, "run", "hsmhost.sock"), log: &syncBuffer{}, exited: make(chan error, 1)}
	h.cmd = exec.Command(hsmhostBin, append([]string{"serve", "--log-level", "debug"}, args...)...)
	h.cmd.Env = h.env()
	h.cmd.Stderr = h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.exited <- h.cmd.Wait() }()
	t.Cleanup(func() {
		h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(10 * time.Second):
			h.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("hsmhost log:\n%s", h.log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := hostclient.Dial(h.socket); err == nil {
			c.Close()
			return h
		}
		select {
		case err := <-h.exited:
			t.Fatalf("hsmhost serve exited: %v\n%s", err, h.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hsmhost did not come up\n%s", h.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe to read while exec writes into it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cli runs one hsmhost command against the host.
func (h *host) cli(args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command(hsmhostBin, args...)
	cmd.Env = h.env()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func (h *host) mustCLI(args ...string) string {
	h.t.Helper()
	out, errOut, code := h.cli(args...)
	if code != 0 {
		h.t.Fatalf("hsmhost %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func parsePubPEM(t *testing.T, text string) *ecdsa.PublicKey {
	t.Helper()
	block, _ := pem.Decode([]byte(text))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("not a PUBLIC KEY PEM: %q", text)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*ecdsa.PublicKey)
}

const twoSimConfig = `
backend "sim-a" {
  plugin   = "builtin:simulator"
  settings = { state_dir = %q }
}
backend "sim-b" {
  plugin   = "builtin:simulator"
  settings = { state_dir = %q }
}
route {
  prefix  = "managedhsm:MyHSM:"
  backend = %q
}
route {
  prefix  = "hsmbridge:"
  backend = "sim-b"
}
`

// TestReloadMovesReferenceToOtherBackend: two simulators, each with a key of
// the same name; editing the route and sending SIGHUP changes the public key
// (and the signer) served for the reference, in the same process.
func TestReloadMovesReferenceToOtherBackend(t *testing.T) {
	dir := shortTempDir(t)
	cfgPath := filepath.Join(dir, "hsmhost.hcl")
	stateA, stateB := filepath.Join(dir, "state-a"), filepath.Join(dir, "state-b")
	writeCfg := func(target string) {
		if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(twoSimConfig, stateA, stateB, target)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("sim-a")
	h := startHost(t, dir, "--config", cfgPath)

	// Same namespace and name in both backends: managedhsm: goes to sim-a,
	// hsmbridge: to sim-b.
	outA := h.mustCLI("key", "create", "managedhsm:MyHSM:tls", "--kty", "EC", "--curve", "P-256", "--ops", "sign,verify")
	outB := h.mustCLI("key", "create", "hsmbridge:MyHSM:tls", "--kty", "EC-HSM", "--ops", "sign")
	if !strings.Contains(outA, "backend:  sim-a") || !strings.Contains(outB, "backend:  sim-b") {
		t.Fatalf("created in the wrong backends:\n%s\n%s", outA, outB)
	}
	pubA := parsePubPEM(t, h.mustCLI("key", "pubkey", "managedhsm:MyHSM:tls"))
	pubB := parsePubPEM(t, h.mustCLI("key", "pubkey", "hsmbridge:MyHSM:tls"))
	if pubA.Equal(pubB) {
		t.Fatal("the two simulators hold the same key")
	}
	// The stores really are separate directories.
	for _, d := range []string{stateA, stateB} {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("state dir %s: %v", d, err)
		}
	}

	writeCfg("sim-b")
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var now *ecdsa.PublicKey
	for {
		now = parsePubPEM(t, h.mustCLI("key", "pubkey", "akv:vault=MyHSM,name=tls"))
		if !now.Equal(pubA) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !now.Equal(pubB) {
		t.Fatalf("after SIGHUP the reference still serves sim-a's key\n%s", h.log.String())
	}
	select {
	case err := <-h.exited:
		t.Fatalf("hsmhost exited during reload: %v", err)
	default:
	}

	// Signing follows the route too: verify with sim-b's public key.
	c, err := hostclient.Dial(h.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	digest := sha256.Sum256([]byte("after reload"))
	sig, timing, err := c.Sign(context.Background(), "managedhsm:MyHSM:tls", "", digest[:], core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	if timing.GetPluginNs() == 0 || timing.GetBackendNs() < timing.GetPluginNs() || timing.GetHostNs() < timing.GetBackendNs() {
		t.Errorf("timing does not nest: %v", timing)
	}
	if !ecdsa.VerifyASN1(pubB, digest[:], sig) || ecdsa.VerifyASN1(pubA, digest[:], sig) {
		t.Fatal("signature not made by sim-b's key")
	}

	// A broken edit is refused and the running routes stay.
	os.WriteFile(cfgPath, []byte("backend \"x\" {\n"), 0o600)
	h.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if got := parsePubPEM(t, h.mustCLI("key", "pubkey", "managedhsm:MyHSM:tls")); !got.Equal(pubB) {
		t.Fatal("a bad configuration changed the routes")
	}
	if !strings.Contains(h.log.String(), "reload failed") {
		t.Fatalf("no reload failure logged:\n%s", h.log.String())
	}
}

func TestCLIAgainstDefaultConfig(t *testing.T) {
	dir := shortTempDir(t)
	h := startHost(t, dir)

	// A second serve sees the live one and steps aside with status 0.
	_, errOut, code := h.cli("serve")
	if code != 0 || !strings.Contains(errOut, "already running") {
		t.Fatalf("second serve: exit %d, %q", code, errOut)
	}

	// Import an existing key (PKCS#1 PEM) and check the served public key is
	// the original's.
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	keyFile := filepath.Join(dir, "rsa.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), 0o600)
	out := h.mustCLI("key", "import", "hsmbridge:apps:imported", "--in", keyFile, "--ops", "sign,decrypt")
	if !strings.HasPrefix(out, "hsmbridge:apps:imported?version=") {
		t.Fatalf("import output %q", out)
	}
	block, _ := pem.Decode([]byte(h.mustCLI("key", "pubkey", "hsmbridge:apps:imported")))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil || !rk.PublicKey.Equal(pub) {
		t.Fatalf("imported public key differs: %v", err)
	}
	// An EC key in SEC 1 DER.
	ek, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(ek)
	os.WriteFile(filepath.Join(dir, "ec.der"), der, 0o600)
	h.mustCLI("key", "import", "--in", filepath.Join(dir, "ec.der"), "hsmbridge:apps:ec")
	if got := parsePubPEM(t, h.mustCLI("key", "pubkey", "hsmbridge:apps:ec")); !got.Equal(&ek.PublicKey) {
		t.Fatal("imported EC public key differs")
	}

	list := h.mustCLI("key", "list", "hsmbridge:apps:")
	if lines := strings.Split(strings.TrimSpace(list), "\n"); len(lines) != 2 || !strings.Contains(list, "RSA 2048\tsign,decrypt\tsimulator") {
		t.Fatalf("list:\n%s", list)
	}

	// doctor exercises every key's operations and passes on healthy keys.
	out = h.mustCLI("doctor", "hsmbridge:apps")
	for _, want := range []string{"ok    state directory", "hsmbridge:apps:imported?version=", " sign: a test signature verifies", " decrypt: decrypts", "all checks passed"} {
		if !strings.Contains(out, want) {
			t.Fatalf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if _, _, code := h.cli("doctor", "not-a-namespace"); code == 0 {
		t.Fatal("doctor accepted a malformed namespace")
	}

	// Errors: exit 1 with the reference in the message.
	_, errOut, code = h.cli("key", "show", "managedhsm:MyHSM:nokey")
	if code != 1 || !strings.Contains(errOut, `managedhsm:MyHSM:nokey: `) || !strings.Contains(errOut, `not found in backend "simulator"`) {
		t.Fatalf("show missing key: exit %d, %q", code, errOut)
	}
	_, errOut, code = h.cli("key", "ref", "managedhsm:MyHSM:nokey")
	if code != 1 || !strings.Contains(errOut, "managedhsm:MyHSM:nokey") {
		t.Fatalf("ref of missing key: exit %d, %q", code, errOut)
	}
	refOut := h.mustCLI("key", "ref", "akv:vault=MyHSM,name=nokey", "--offline")
	if r, err := core.DecodeRefPEM([]byte(refOut)); err != nil || r.String() != "managedhsm:MyHSM:nokey" {
		t.Fatalf("offline ref: %q %v", refOut, err)
	}
	if _, _, code := h.cli("key", "create", "managedhsm:MyHSM:k", "--kty", "DSA"); code != 2 {
		t.Fatalf("bad --kty: exit %d", code)
	}
	if _, _, code := h.cli("key", "frobnicate"); code != 2 {
		t.Fatalf("unknown subcommand: exit %d", code)
	}
	if _, _, code := h.cli("key", "show"); code != 2 {
		t.Fatalf("missing reference: exit %d", code)
	}
	del := h.mustCLI("key", "delete", "hsmbridge:apps:ec")
	if !strings.Contains(del, "deleted hsmbridge:apps:ec (1 version(s))") {
		t.Fatalf("delete: %q", del)
	}

	// SIGTERM: clean exit and the socket is gone.
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.exited:
		if err != nil {
			t.Fatalf("serve exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	if _, err := os.Stat(h.socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	h.exited <- nil // for the cleanup
}

func TestServeRefusesBadConfigWithLine(t *testing.T) {
	dir := shortTempDir(t)
	cfg := filepath.Join(dir, "bad.hcl")
	os.WriteFile(cfg, []byte("backend \"a\" {\n  plugin = \"builtin:simulator\"\n}\nroute {\n  prefix = \"\"\n  backend = \"b\"\n}\n"), 0o600)
	h := &host{t: t, dir: dir, socket: filepath.Join(dir, "run", "s.sock")}
	_, errOut, code := h.cli("serve", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, cfg+`:4: route "" names backend "b"`) {
		t.Fatalf("exit %d: %q", code, errOut)
	}
}

func TestParseInterspersed(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kty := fs.String("kty", "", "")
	off := fs.Bool("offline", false, "")
	pos, err := parseInterspersed(fs, []string{"REF", "--kty", "EC", "--offline", "more", "--", "--kty"})
	if err != nil || *kty != "EC" || !*off || strings.Join(pos, " ") != "REF more --kty" {
		t.Fatalf("%q %q %v %v", pos, *kty, *off, err)
	}
	if _, err := parseInterspersed(fs, []string{"--nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}

func TestCreateSpec(t *testing.T) {
	s, err := createSpec("RSA-HSM", 3072, "", "sign, decrypt")
	if err != nil || s.Type != core.KeyTypeRSA || s.Bits != 3072 || len(s.Usages) != 2 {
		t.Fatalf("%+v %v", s, err)
	}
	// Without --ops nothing is sent: the backend applies the service's defaults.
	s, err = createSpec("ec", 0, "p-384", "")
	if err != nil || s.Curve != core.CurveP384 || len(s.Usages) != 0 {
		t.Fatalf("%+v %v", s, err)
	}
	// P-256K in az's spellings (any case) and OpenSSL's name.
	for _, c := range []string{"P-256K", "p-256k", "secp256k1"} {
		if s, err = createSpec("EC-HSM", 0, c, "sign"); err != nil || s.Curve != core.CurveP256K {
			t.Errorf("--curve %s: %+v %v", c, s, err)
		}
	}
	for _, bad := range [][]any{{"EC", 256, ""}, {"RSA", 1024, ""}, {"EC", 0, "P-192"}, {"RSA", 0, "P-256"}, {"EC", 0, "P256K"}} {
		if _, err := createSpec(bad[0].(string), bad[1].(int), bad[2].(string), ""); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// A session key made over one application session works while that
// session has a connection and stops working for everyone once its last
// connection closes; a persistent masked key outlives it. Real hsmhost,
// real simulator plugin.
func TestSessionKeysEndWithTheirSession(t *testing.T) {
	dir := shortTempDir(t)
	h := startHost(t, dir)
	ctx := context.Background()
	dial := func(session string) *hostclient.Client {
		c, err := hostclient.Dial(h.socket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.HelloSession(ctx, "test", session); err != nil {
			t.Fatal(err)
		}
		return c
	}
	ref := "azihsm://./k.bin;type=ec"
	spec := core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP256}
	digest := sha256.Sum256([]byte("session"))
	scheme := core.SignatureScheme{Padding: core.PaddingECDSA, Hash: core.SHA256}

	app := dial("app-1")
	second := dial("app-1") // the same process's second pooled connection
	sblob, skey, err := app.GenerateMasked(ctx, ref, spec, []string{"digitalSignature"}, true)
	if err != nil {
		t.Fatal(err)
	}
	pblob, _, err := app.GenerateMasked(ctx, ref, spec, []string{"digitalSignature"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(skey.Reference, "azihsm://./k.bin;type=ec;version=") {
		t.Fatalf("reference of the generated key: %q", skey.Reference)
	}
	sig, _, err := second.Sign(ctx, skey.Reference, "", digest[:], scheme)
	if err != nil {
		t.Fatalf("signing with the session key inside its session: %v", err)
	}
	pub, _ := x509.ParsePKIXPublicKey(skey.PublicKeyDER)
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatal("the session key's signature does not verify")
	}
	app.Close()
	if _, _, err := second.Sign(ctx, skey.Reference, "", digest[:], scheme); err != nil {
		t.Fatalf("the session still has a connection: %v", err)
	}
	second.Close()

	other := dial("app-2")
	defer other.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = other.OpenMasked(ctx, ref, sblob)
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the host ends the session as the close reaches it
	}
	if err == nil || !strings.Contains(err.Error(), "session has ended") || !strings.Contains(err.Error(), ref) {
		t.Fatalf("opening a session key after its session ended: %v", err)
	}
	k, err := other.OpenMasked(ctx, ref, pblob)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.Sign(ctx, k.Reference, "", digest[:], scheme); err != nil {
		t.Fatalf("a persistent masked key in another session: %v", err)
	}
}

// The Integrated HSM's chain, checked against an independent computation:
// ECDH in the backend with a keyAgreement key, HKDF to an HMAC key and to
// an AES key, both masked; the HMAC must equal one computed here from the
// peer's side of the ECDH, and a key wrapped with the derived AES key must
// unwrap with OpenSSL's own AES key wrap under the locally derived key.
func TestECDHThenHKDFThenHMACAndAESMatchLocalComputation(t *testing.T) {
	dir := shortTempDir(t)
	h := startHost(t, dir)
	ctx := context.Background()
	c, err := hostclient.Dial(h.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.HelloSession(ctx, "test", "chain"); err != nil {
		t.Fatal(err)
	}
	ref := "azihsm://./ecdh.bin;type=ec"
	_, mine, err := c.GenerateMasked(ctx, ref, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP384}, []string{"keyAgreement"}, false)
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	peerDER, _ := x509.MarshalPKIXPublicKey(&peer.PublicKey)
	secret, err := c.Agree(ctx, mine.Reference, "", peerDER)
	if err != nil {
		t.Fatal(err)
	}

	// The same secret, computed on the peer's side.
	minePub, _ := x509.ParsePKIXPublicKey(mine.PublicKeyDER)
	pe, _ := peer.ECDH()
	me, _ := minePub.(*ecdsa.PublicKey).ECDH()
	z, err := pe.ECDH(me)
	if err != nil {
		t.Fatal(err)
	}
	salt, info := []byte("salt"), []byte("hsmbridge test")

	hmacBlob, err := c.Derive(ctx, ref, core.DeriveParams{Input: secret, Hash: core.SHA384, Salt: salt, Info: info, OutputType: "hmac", OutputBits: 384})
	if err != nil {
		t.Fatal(err)
	}
	hk, err := c.OpenMasked(ctx, "azihsm://./hmac.bin;type=ec", hmacBlob)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("no 1024-byte cap "), 200)
	got, err := c.MAC(ctx, hk.Reference, "", core.SHA384, msg)
	if err != nil {
		t.Fatal(err)
	}
	localKey, _ := hkdf.Key(sha512.New384, z, salt, string(info), 48)
	m := hmac.New(sha512.New384, localKey)
	m.Write(msg)
	if !hmac.Equal(got, m.Sum(nil)) {
		t.Fatal("the backend's HMAC differs from the one computed from the peer's side")
	}
	if _, err := c.MAC(ctx, hk.Reference, "", core.SHA256, msg); err == nil || !strings.Contains(err.Error(), "must be sha384") {
		t.Fatalf("MAC with the wrong digest: %v", err)
	}

	aesBlob, err := c.Derive(ctx, ref, core.DeriveParams{Input: secret, Hash: core.SHA256, Salt: salt, Info: info, OutputType: "aes", OutputBits: 256})
	if err != nil {
		t.Fatal(err)
	}
	ak, err := c.OpenMasked(ctx, "azihsm://./aes.bin;type=ec", aesBlob)
	if err != nil {
		t.Fatal(err)
	}
	known := bytes.Repeat([]byte{0x5a}, 32)
	wrapped, err := c.WrapKey(ctx, ak.Reference, "", known, core.WrapA256KW)
	if err != nil {
		t.Fatal(err)
	}
	localAES, _ := hkdf.Key(sha256.New, z, salt, string(info), 32)
	wf := filepath.Join(dir, "wrapped.bin")
	os.WriteFile(wf, wrapped, 0o600)
	out, err := exec.Command("openssl", "enc", "-d", "-id-aes256-wrap", "-K", fmt.Sprintf("%x", localAES), "-iv", "A6A6A6A6A6A6A6A6", "-in", wf).Output()
	if err != nil {
		t.Skipf("openssl enc -id-aes256-wrap: %v", err)
	}
	if !bytes.Equal(out, known) {
		t.Fatal("OpenSSL does not unwrap, with the locally derived key, what the derived key wrapped in the backend")
	}

	// Refusals: a digitalSignature key cannot agree; an HMAC key has its hash's size.
	_, signer, _ := c.GenerateMasked(ctx, ref, core.KeySpec{Type: core.KeyTypeEC, Curve: core.CurveP384}, []string{"digitalSignature"}, false)
	if _, err := c.Agree(ctx, signer.Reference, "", peerDER); err == nil || !strings.Contains(err.Error(), "does not allow deriveKey") {
		t.Fatalf("ECDH with a signing key: %v", err)
	}
	if _, err := c.Derive(ctx, ref, core.DeriveParams{Input: secret, Hash: core.SHA256, OutputType: "hmac", OutputBits: 384}); err == nil {
		t.Fatal("a 384-bit HMAC-SHA256 key was derived")
	}
}
