package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// Programs that only take key file paths, unchanged: a Python ssl server
// loads its key from a key-reference file and requires a client
// certificate; curl presents one whose key is a key-reference file too.
// Both private-key operations of the mutual-TLS handshake run in hsmhost.
func TestPythonServerAndCurlClientWithKeyReferenceFiles(t *testing.T) {
	python := requireTool(t, "python3")
	requireTool(t, "curl")
	if out, err := exec.Command(python, "-c", "import ssl; assert ssl.OPENSSL_VERSION_INFO[0] >= 3").CombinedOutput(); err != nil {
		t.Skipf("python3's ssl module is not built on OpenSSL 3: %s", out)
	}
	h := startHost(t, "")
	h.write("openssl.cnf", providerConf)
	for _, name := range []string{"server", "client"} {
		ref := "managedhsm:MyHSM:" + name
		h.hsmhost("key", "create", ref, "--kty", "EC", "--curve", "P-256", "--ops", "sign")
		h.write(name+".key", h.hsmhost("key", "ref", ref))
		h.run("", "openssl", "req", "-new", "-x509", "-provider", "akv_provider", "-provider", "default",
			"-key", ref, "-subj", "/CN=localhost", "-days", "2", "-out", name+".crt")
	}
	port := freePort(t)
	h.write("server.py", fmt.Sprintf(`
import http.server, ssl
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        peer = self.connection.getpeercert()
        body = ("hello " + dict(x[0] for x in peer["subject"])["commonName"] + "\n").encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("server.crt", "server.key")
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations("client.crt")
srv = http.server.HTTPServer(("127.0.0.1", %d), Handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
`, port))
	cmd := exec.Command(python, "server.py")
	cmd.Dir = h.dir
	cmd.Env = append(h.env(), "OPENSSL_CONF="+h.path("openssl.cnf"))
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitPort(t, port, &log)

	curl := func(withClientCert bool) (string, error) {
		args := []string{"-sS", "--max-time", "20", "--cacert", "server.crt",
			"--resolve", fmt.Sprintf("localhost:%d:127.0.0.1", port)}
		if withClientCert {
			args = append(args, "--cert", "client.crt", "--key", "client.key")
		}
		return h.try("", "env", append([]string{"OPENSSL_CONF=" + h.path("openssl.cnf"), "curl"},
			append(args, fmt.Sprintf("https://localhost:%d/", port))...)...)
	}
	for i := 0; i < 3; i++ {
		if out, err := curl(true); err != nil || out != "hello localhost\n" {
			t.Fatalf("mutual TLS with key-reference files: %v %q\nserver log: %s", err, out, log.String())
		}
	}
	// The server really requires the client's (HSM-held) key.
	if out, err := curl(false); err == nil {
		t.Fatalf("the server accepted a client without a certificate: %q", out)
	}
}
