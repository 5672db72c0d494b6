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
	nginx := requireTool(t, "nginx")
	requireTool(t, "curl")
	requireTool(t, "openssl")

	config := ""
	workerUser := ""
	if os.Geteuid() == 0 {
		// Workers drop to nobody; the socket is opened to its group.
		group := "nogroup"
		if _, err := user.LookupGroup(group); err != nil {
			t.Skip("no nogroup group")
		}
		config = fmt.Sprintf("socket_mode = \"0660\"\nsocket_group = %q\n", group)
		workerUser = "user nobody " + group + ";"
	}
	h := startHost(t, config)
	if config != "" {
		// startHost waited for the socket; the group rule must hold for it.
		fi, err := os.Stat(h.socket)
		if err != nil || fi.Mode().Perm() != 0o660 {
			t.Fatalf("socket mode %v, %v", fi.Mode(), err)
		}
	}
	h.write("openssl.cnf", providerConf)
	for _, k := range []struct{ name, kty string }{{"rsa", "--kty RSA --size 3072"}, {"ec", "--kty EC --curve P-256"}} {
		h.hsmhost(append([]string{"key", "create", "managedhsm:MyHSM:nginx-" + k.name}, append(strings.Fields(k.kty), "--ops", "sign")...)...)
		h.write(k.name+".key", h.hsmhost("key", "ref", "managedhsm:MyHSM:nginx-"+k.name))
		// The certificate is signed by the HSM key itself.
		h.run("", "openssl", "req", "-new", "-x509", "-provider", "akv_provider", "-provider", "default",
			"-key", "managedhsm:MyHSM:nginx-"+k.name, "-subj", "/CN=localhost", "-days", "2", "-out", k.name+".crt")
	}

	rsaPort, ecPort := freePort(t), freePort(t)
	for _, d := range []string{"logs", "tmp"} {
		os.MkdirAll(h.path(d), 0o755)
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
    server {
        listen 127.0.0.1:%[3]d ssl reuseport;
        ssl_certificate %[2]s/rsa.crt;
        ssl_certificate_key %[2]s/rsa.key;
        location / { return 200 "ok rsa $ssl_protocol pid=$pid\n"; }
    }
    server {
        listen 127.0.0.1:%[4]d ssl reuseport;
        ssl_certificate %[2]s/ec.crt;
        ssl_certificate_key %[2]s/ec.key;
        location / { return 200 "ok ec $ssl_protocol pid=$pid\n"; }
    }
}
`, workerUser, h.dir, rsaPort, ecPort)
	h.write("nginx.conf", conf)

	cmd := exec.Command(nginx, "-c", h.path("nginx.conf"), "-p", h.dir)
	cmd.Env = append(h.env(), "OPENSSL_CONF="+h.path("openssl.cnf"))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			errLog, _ := os.ReadFile(h.path("logs/error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out, errLog)
		}
	}()
	waitPort(t, rsaPort, out)
	waitPort(t, ecPort, out)

	// 200 fresh connections (reuseport spreads them over the workers): 50 for each key and protocol, 4 at a time.
	type job struct {
		port  int
		alg   string
		proto string
	}
	var jobs []job
	for i := 0; i < 50; i++ {
		for _, p := range []string{"1.2", "1.3"} {
			jobs = append(jobs, job{rsaPort, "rsa", p}, job{ecPort, "ec", p})
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
				args := []string{"-sS", "--max-time", "20", "--cacert", h.path(j.alg + ".crt"),
					"--resolve", fmt.Sprintf("localhost:%d:127.0.0.1", j.port)}
				if j.proto == "1.2" {
					args = append(args, "--tlsv1.2", "--tls-max", "1.2")
				} else {
					args = append(args, "--tlsv1.3")
				}
				args = append(args, fmt.Sprintf("https://localhost:%d/", j.port))
				body, err := exec.Command("curl", args...).CombinedOutput()
				want := fmt.Sprintf("ok %s TLSv%s ", j.alg, j.proto)
				mu.Lock()
				if err != nil || !strings.HasPrefix(string(body), want) {
					failures = append(failures, fmt.Sprintf("%s TLS %s: %v %s", j.alg, j.proto, err, body))
				} else if i := strings.Index(string(body), "pid="); i >= 0 {
					pids[strings.TrimSpace(string(body)[i:])] = true
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
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed; first: %s", len(failures), len(jobs), failures[0])
	}
	t.Logf("200 requests succeeded, served by %d workers", len(pids))
	if len(pids) < 2 {
		t.Errorf("only %d worker(s) served; the fork path was barely exercised", len(pids))
	}
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
