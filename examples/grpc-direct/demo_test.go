package main

// The demo run exactly as README.md tells a user to run it (the scripts, in
// order, from this folder), in a folder and on a port of its own, with the
// demo's own hsmhost. Its certificates are checked with Go's crypto/x509
// against the public keys hsmhost's CLI prints, and the clients the CA did
// not certify must be refused.

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestDemoAsTheREADMESays(t *testing.T) {
	work, err := os.MkdirTemp("", "grpc-direct-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) }) // after stop-demo.sh, registered below
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HSMBRIDGE_") && !strings.HasPrefix(kv, "DEMO_") {
			env = append(env, kv)
		}
	}
	env = append(env, "DEMO_WORK="+work, "DEMO_ADDR="+addr)
	script := func(name string, args ...string) (string, error) {
		cmd := exec.Command("./"+name, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		t.Logf("./%s %s\n%s", name, strings.Join(args, " "), out)
		return string(out), err
	}
	must := func(name string, args ...string) string {
		t.Helper()
		out, err := script(name, args...)
		if err != nil {
			t.Fatalf("./%s: %v", name, err)
		}
		return out
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, log := range []string{"server.log", "hsmhost.log"} {
				b, _ := os.ReadFile(filepath.Join(work, "logs", log))
				t.Logf("%s:\n%s", log, b)
			}
		}
		script("stop-demo.sh")
	})

	out := must("generate-certs.sh")
	for _, want := range []string{"hsmhost key create managedhsm:DemoHSM:grpc-ca", "ca.crt", "server.crt", "client.crt"} {
		if !strings.Contains(out, want) {
			t.Errorf("generate-certs.sh did not say %q", want)
		}
	}
	checkCertificates(t, work, env)

	must("start-demo.sh")
	serverPid := readPid(t, filepath.Join(work, "server.pid"))
	hostPid := readPid(t, filepath.Join(work, "hsmhost.pid"))

	out = must("run-client.sh")
	for _, want := range []string{
		`server certificate "CN=grpc-direct server,O=hsmbridge demo", verified against "CN=grpc-direct demo CA,O=hsmbridge demo"`,
		`unary SayHello: "Hello, world"; the server verified client certificate "CN=grpc-direct client,O=hsmbridge demo" (CA "CN=grpc-direct demo CA,O=hsmbridge demo")`,
		`: SUCCESS, TLS 1.3`,
		`streaming SayHelloStream(count 5): 5 replies, "Hello #1 of 5, world" … "Hello #5 of 5, world"; the server verified client certificate "CN=grpc-direct client,O=hsmbridge demo"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("run-client.sh did not print %s", want)
		}
	}
	if out := must("run-client.sh", "-name", "HSM", "-count", "3"); !strings.Contains(out, `"Hello, HSM"`) || !strings.Contains(out, `SayHelloStream(count 3): 3 replies, "Hello #1 of 3, HSM" … "Hello #3 of 3, HSM";`) {
		t.Error("run-client.sh did not pass its arguments on")
	}

	// The client learns of a refusal as a TLS alert or as a broken pipe,
	// whichever comes first; the server's log says why, every time.
	out = must("try-untrusted-client.sh")
	if strings.Contains(out, "ACCEPTED") || strings.Count(out, "refused, as it must be") != 2 ||
		!strings.Contains(out, "the server: refused 127.0.0.1:") {
		t.Error("try-untrusted-client.sh: a client was not refused as it should be")
	}
	log, _ := os.ReadFile(filepath.Join(work, "logs", "server.log"))
	for _, want := range []string{`SayHello("world")`, `SayHelloStream("world", count 5)`,
		"tls: failed to verify certificate: x509: certificate signed by unknown authority", "tls: client didn't provide a certificate"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the server's log lacks %q:\n%s", want, log)
		}
	}

	must("stop-demo.sh")
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("stop-demo.sh left %s behind (%v)", work, err)
	}
	for name, pid := range map[string]int{"server": serverPid, "hsmhost": hostPid} {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("the %s (pid %d) still runs after stop-demo.sh", name, pid)
		}
	}
}

// checkCertificates: the CA certified both leaves, and each certificate
// holds the public key of its key in the backend (hsmhost key pubkey).
func checkCertificates(t *testing.T, work string, env []string) {
	t.Helper()
	load := func(name string) *x509.Certificate {
		certs, err := readCerts(filepath.Join(work, name))
		if err != nil {
			t.Fatal(err)
		}
		return certs[0]
	}
	ca, server, client := load("ca.crt"), load("server.crt"), load("client.crt")
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err != nil {
		t.Errorf("server.crt: %v", err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client.crt: %v", err)
	}
	hsmhost := filepath.Join(work, "bin", "hsmhost")
	if _, err := os.Stat(hsmhost); err != nil {
		hsmhost = filepath.Join("..", "..", "build", "bin", "hsmhost")
	}
	for ref, cert := range map[string]*x509.Certificate{
		"managedhsm:DemoHSM:grpc-ca": ca, "managedhsm:DemoHSM:grpc-server": server, "managedhsm:DemoHSM:grpc-client": client,
	} {
		cmd := exec.Command(hsmhost, "key", "pubkey", ref)
		cmd.Env = append(env, "HSMBRIDGE_SOCKET="+filepath.Join(work, "run", "hsmhost.sock"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("hsmhost key pubkey %s: %v", ref, err)
		}
		b, _ := pem.Decode(out)
		if b == nil {
			t.Fatalf("hsmhost key pubkey %s printed %q", ref, out)
		}
		pub, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
			t.Errorf("the certificate of %s holds another key", ref)
		}
	}
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return pid
}
