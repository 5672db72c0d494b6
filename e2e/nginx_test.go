package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"sync"
	"testing"
	"time"
)

// Debian's nginx 1.22 only takes key file paths, so it gets key-reference
// PEM files and an openssl.cnf that activates default and hsmbridge (no
// default property query). Four workers are forked after the keys are
// loaded: every handshake signs in a child that must open its own connection
// to hsmhost.
func TestNginxKeylessTLSAcrossForkedWorkers(t *testing.T) {
	requireNginx(t)
	hostConfig, workerUser := nginxWorkerAccess(t)
	nginxKeylessTLS(t, startHost(t, hostConfig), hostConfig, workerUser)
}

func requireNginx(t *testing.T) string {
	t.Helper()
	nginx := requireTool(t, "nginx")
	requireTool(t, "curl")
	requireTool(t, "openssl")
	return nginx
}

// nginxWorkerAccess returns what lets nginx workers reach hsmhost's socket:
// as root, workers drop to nobody, so the socket is opened to its group
// (hsmhost config lines) and nginx.conf names that user (a `user` line).
func nginxWorkerAccess(t *testing.T) (hostConfig, workerUser string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return "", ""
	}
	group := "nogroup"
	if _, err := user.LookupGroup(group); err != nil {
		t.Skip("no nogroup group")
	}
	return fmt.Sprintf("socket_mode = \"0660\"\nsocket_group = %q\n", group), "user nobody " + group + ";"
}

// nginxKeylessTLS runs nginx with an RSA 3072 and an EC P-256 key made in
// h's backend on 4 workers and makes 200 fresh TLS 1.2 and 1.3 connections.
func nginxKeylessTLS(t *testing.T, h *host, hostConfig, workerUser string) *nginxServer {
	t.Helper()
	if hostConfig != "" {
		// startHost waited for the socket; the group rule must hold for it.
		fi, err := os.Stat(h.socket)
		if err != nil || fi.Mode().Perm() != 0o660 {
			t.Fatalf("socket mode %v, %v", fi.Mode(), err)
		}
	}
	for _, k := range []struct{ name, kty string }{{"rsa", "--kty RSA --size 3072"}, {"ec", "--kty EC --curve P-256"}} {
		nginxKey(h, k.name, k.kty)
	}
	n := startNginx(t, h, workerUser, "rsa", "ec")

	// 200 fresh connections (reuseport spreads them over the workers): 50 for each key and protocol, 4 at a time.
	total, failures, pids := n.handshakes(50, "rsa", "ec")
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed; first: %s", len(failures), total, failures[0])
	}
	t.Logf("%d requests succeeded, served by %d workers", total, len(pids))
	if len(pids) < 2 {
		t.Errorf("only %d worker(s) served; the fork path was barely exercised", len(pids))
	}
	return n
}

// nginxKey creates managedhsm:MyHSM:nginx-<name> with the given `hsmhost key
// create` flags (a new version if it exists), writes its key-reference file
// <name>.key and a certificate <name>.crt signed by the HSM key itself.
func nginxKey(h *host, name, kty string) {
	h.t.Helper()
	ref := "managedhsm:MyHSM:nginx-" + name
	h.hsmhost(append([]string{"key", "create", ref}, append(strings.Fields(kty), "--ops", "sign")...)...)
	h.write(name+".key", h.hsmhost("key", "ref", ref))
	h.run("", "openssl", "req", "-new", "-x509", "-provider", "akv_provider", "-provider", "default",
		"-key", ref, "-subj", "/CN=localhost", "-days", "2", "-out", name+".crt")
}

// nginxServer is an nginx with one TLS server per key name, each on its
// own port, serving "ok <name> <protocol> pid=<worker>".
type nginxServer struct {
	h     *host
	cmd   *exec.Cmd
	out   *strings.Builder
	ports map[string]int
}

// startNginx starts nginx (4 workers) in h's directory with servers for
// the named keys (<name>.key and <name>.crt there) and waits until they
// listen; the test's cleanup stops it.
func startNginx(t *testing.T, h *host, workerUser string, names ...string) *nginxServer {
	t.Helper()
	h.write("openssl.cnf", providerConf)
	n := &nginxServer{h: h, out: &strings.Builder{}, ports: map[string]int{}}
	for _, d := range []string{"logs", "tmp"} {
		os.MkdirAll(h.path(d), 0o755)
	}
	var servers strings.Builder
	for _, name := range names {
		n.ports[name] = freePort(t)
		fmt.Fprintf(&servers, `    server {
        listen 127.0.0.1:%[3]d ssl reuseport;
        ssl_certificate %[1]s/%[2]s.crt;
        ssl_certificate_key %[1]s/%[2]s.key;
        location / { return 200 "ok %[2]s $ssl_protocol pid=$pid\n"; }
    }
`, h.dir, name, n.ports[name])
	}
	conf := fmt.Sprintf(`%s
worker_processes 4;
daemon off;
master_process on;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log info;
env HSMBRIDGE_SOCKET;
env OPENSSL_CONF;
events { worker_connections 64; }
http {
    access_log %[2]s/logs/access.log;
    client_body_temp_path %[2]s/tmp;
    proxy_temp_path %[2]s/tmp;
    fastcgi_temp_path %[2]s/tmp;
    uwsgi_temp_path %[2]s/tmp;
    scgi_temp_path %[2]s/tmp;
    ssl_protocols TLSv1.2 TLSv1.3;
%[3]s}
`, workerUser, h.dir, servers.String())
	h.write("nginx.conf", conf)

	n.cmd = exec.Command(requireTool(t, "nginx"), "-c", h.path("nginx.conf"), "-p", h.dir)
	n.cmd.Env = append(h.env(), "OPENSSL_CONF="+h.path("openssl.cnf"))
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.cmd.Process.Signal(os.Interrupt)
		n.cmd.Wait()
		if t.Failed() {
			errLog, _ := os.ReadFile(h.path("logs/error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", n.out, errLog)
		}
	})
	for _, name := range names {
		waitPort(t, n.ports[name], n.out)
	}
	return n
}

// get makes one fresh TLS connection to the server of key name with TLS
// version proto ("1.2" or "1.3"), trusting only the certificate file
// cacert, and returns the body; curl checks the server's signature with
// that certificate's public key.
func (n *nginxServer) get(name, proto, cacert string) (string, error) {
	port := n.ports[name]
	args := []string{"-sS", "--max-time", "20", "--cacert", n.h.path(cacert),
		"--resolve", fmt.Sprintf("localhost:%d:127.0.0.1", port)}
	if proto == "1.2" {
		args = append(args, "--tlsv1.2", "--tls-max", "1.2")
	} else {
		args = append(args, "--tlsv1.3")
	}
	args = append(args, fmt.Sprintf("https://localhost:%d/", port))
	body, err := exec.Command("curl", args...).CombinedOutput()
	want := fmt.Sprintf("ok %s TLSv%s ", name, proto)
	if err == nil && !strings.HasPrefix(string(body), want) {
		err = fmt.Errorf("body does not start with %q", want)
	}
	return string(body), err
}

// handshakes makes rounds fresh connections per key name and TLS version,
// 4 at a time, each trusting <name>.crt; it returns how many it made, the
// failures and the worker pids that answered.
func (n *nginxServer) handshakes(rounds int, names ...string) (int, []string, map[string]bool) {
	type job struct{ name, proto string }
	var jobs []job
	for i := 0; i < rounds; i++ {
		for _, p := range []string{"1.2", "1.3"} {
			for _, name := range names {
				jobs = append(jobs, job{name, p})
			}
		}
	}
	var (
		mu       sync.Mutex
		failures []string
		pids     = map[string]bool{}
		wg       sync.WaitGroup
		work     = make(chan job)
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				body, err := n.get(j.name, j.proto, j.name+".crt")
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Sprintf("%s TLS %s: %v %s", j.name, j.proto, err, body))
				} else if i := strings.Index(body, "pid="); i >= 0 {
					pids[strings.TrimSpace(body[i:])] = true
				}
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	return len(jobs), failures, pids
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(t *testing.T, port int, log fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nginx did not listen on %d: %s", port, log)
}
