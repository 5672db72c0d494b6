package e2e

// The same SoftHSM2 token behind nginx with 4 forked workers, two ways:
// through libp11's PKCS#11 engine (Debian's libengine-pkcs11-openssl), which
// loads the token's module into nginx itself, and through hsmbridge's
// provider, which holds no PKCS#11 state in nginx at all.
//
// Measured on Debian 12 (libp11 0.4.12, SoftHSM2 2.6.1): with the workers
// running as an unprivileged user, as nginx runs them, every engine
// handshake fails with "PKCS#11 module::Object handle invalid": in the
// worker, the module no longer finds the objects the master opened, whose
// files only root can read. The same engine serves every handshake when the
// workers run as root, or when the token's files are readable by the
// workers, so it is not fork alone: the engine needs the token, its PIN and
// its key store inside every worker. hsmbridge's workers need only the
// socket's group.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const libp11Engine = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"

func TestPKCS11LibP11EngineNeedsTheTokenInEveryWorker(t *testing.T) {
	requireNginx(t)
	requireTool(t, "pkcs11-tool")
	if _, err := os.Stat(libp11Engine); err != nil {
		if os.Getenv("HSMBRIDGE_REQUIRE_E2E") != "" {
			t.Fatalf("%s is missing (make deps installs libengine-pkcs11-openssl)", libp11Engine)
		}
		t.Skipf("%s is missing (apt-get install libengine-pkcs11-openssl)", libp11Engine)
	}
	hostConfig, workerUser := nginxWorkerAccess(t)
	h, env := startPKCS11Host(t, hostConfig)
	module := softhsmModule(t)

	// A key made in the token by pkcs11-tool, and a certificate for it
	// made through the engine.
	tool := exec.Command("pkcs11-tool", "--module", module, "--login", "--pin", softPIN, "--keypairgen",
		"--key-type", "EC:prime256v1", "--label", "engine-ec", "--id", "e1")
	tool.Env = append(os.Environ(), env...)
	if out, err := tool.CombinedOutput(); err != nil {
		t.Fatalf("pkcs11-tool --keypairgen: %v\n%s", err, out)
	}
	// In the host's folder, which nginx's unprivileged workers can reach
	// (a t.TempDir() is private to root).
	dir := h.path("engine")
	os.MkdirAll(dir, 0o755)
	engineConf := filepath.Join(dir, "engine.cnf")
	os.WriteFile(engineConf, []byte(fmt.Sprintf(`openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = %s
MODULE_PATH = %s
PIN = %s
init = 0
`, libp11Engine, module, softPIN)), 0o644)
	uri := "pkcs11:token=" + softToken + ";object=engine-ec;type=private"
	crt := filepath.Join(dir, "ec.crt")
	req := exec.Command("openssl", "req", "-new", "-x509", "-engine", "pkcs11", "-keyform", "engine", "-key", uri,
		"-subj", "/CN=localhost", "-days", "2", "-out", crt)
	req.Env = append(os.Environ(), append(env, "OPENSSL_CONF="+engineConf)...)
	if out, err := req.CombinedOutput(); err != nil {
		t.Fatalf("openssl req through the engine: %v\n%s", err, out)
	}

	if os.Geteuid() != 0 {
		t.Skip("the comparison runs nginx's workers as another user: run it as root")
	}
	const n = 20
	unprivileged := engineNginx(t, dir, engineConf, env, crt, uri, "nobody", n)
	root := engineNginx(t, dir, engineConf, env, crt, uri, "root", n)
	t.Logf("libp11 engine, 4 forked workers: %d of %d handshakes served by workers running as nobody, %d of %d as root", unprivileged, n, root, n)
	if root != n {
		t.Fatalf("the engine's nginx with root workers served %d of %d: its setup is at fault", root, n)
	}
	if unprivileged != 0 {
		t.Errorf("libp11's engine served %d of %d handshakes from unprivileged workers; this test records that it served none "+
			"(Debian 12: libp11 0.4.12, SoftHSM2 2.6.1): if that changed, update the test and docs/FEATURES.md", unprivileged, n)
	}

	// hsmbridge on the same token, its workers unprivileged: every one.
	nginxKeylessTLS(t, h, hostConfig, workerUser)
}

// engineNginx runs nginx with the key through libp11's engine, 4 forked
// workers running as user, and counts the fresh TLS connections out of n
// that succeed.
func engineNginx(t *testing.T, dir, engineConf string, env []string, crt, uri, user string, n int) int {
	t.Helper()
	port := freePort(t)
	name := "workers-" + user
	procs := "worker_processes 4;\nmaster_process on;"
	user = "user " + user + map[bool]string{true: " nogroup;", false: ";"}[user == "nobody"]
	os.MkdirAll(filepath.Join(dir, name, "tmp"), 0o755)
	conf := filepath.Join(dir, name, "nginx.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`%s
%s
daemon off;
pid %[3]s/nginx.pid;
error_log %[3]s/error.log info;
env SOFTHSM2_CONF;
env OPENSSL_CONF;
ssl_engine pkcs11;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[3]s/tmp; proxy_temp_path %[3]s/tmp; fastcgi_temp_path %[3]s/tmp;
    uwsgi_temp_path %[3]s/tmp; scgi_temp_path %[3]s/tmp;
    server {
        listen 127.0.0.1:%[4]d ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate %[5]s;
        ssl_certificate_key "engine:pkcs11:%[6]s";
        location / { return 200 "ok $ssl_protocol\n"; }
    }
}
`, user, procs, filepath.Join(dir, name), port, crt, uri)), 0o644)
	cmd := exec.Command("nginx", "-c", conf, "-p", filepath.Join(dir, name))
	cmd.Env = append(os.Environ(), append(env, "OPENSSL_CONF="+engineConf)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, name, "error.log"))
			t.Logf("nginx (%s) output:\n%s\nerror.log:\n%s", name, out.String(), log)
		}
	}()
	url := fmt.Sprintf("https://localhost:%d/", port)
	resolve := fmt.Sprintf("localhost:%d:127.0.0.1", port)
	curl := func(args ...string) bool {
		c := exec.Command("curl", append([]string{"-sS", "--max-time", "5", "--cacert", crt, "--resolve", resolve}, append(args, url)...)...)
		b, err := c.Output()
		return err == nil && strings.HasPrefix(string(b), "ok TLSv")
	}
	// Up when the port answers TCP, whether or not handshakes succeed.
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("curl", "-s", "--max-time", "1", "-o", "/dev/null", "--resolve", resolve, "http://localhost:"+fmt.Sprint(port)+"/").Run() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("nginx (%s) did not listen on %d", name, port)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ok := 0
	for i := range n {
		flags := []string{"--tlsv1.3"}
		if i%2 == 1 {
			flags = []string{"--tlsv1.2", "--tls-max", "1.2"}
		}
		if curl(flags...) {
			ok++
		}
	}
	return ok
}
