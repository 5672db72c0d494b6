package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The two forms of key-reference file `hsmhost key ref` writes: the flag
// that selects each and the PEM label it has. Both hold the same versioned
// reference; the PKCS#8 form ("PRIVATE KEY", algorithm
// 2.25.133896219887739542807793727763915612139) exists for programs that
// pick PEM blocks by label.
var keyRefForms = []struct{ name, flag, label string }{
	{"pkcs8", "--pkcs8", "PRIVATE KEY"},
	{"label", "--pkcs8=false", "HSMBRIDGE KEY REFERENCE"},
}

// optionalTool is requireTool for servers that `make deps` does not
// install (Apache, Postfix, HAProxy, stunnel; scripts/install-test-servers.sh
// does): missing, the test skips even under `make test`, unless
// HSMBRIDGE_REQUIRE_SERVERS is set (CI sets it).
func optionalTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("HSMBRIDGE_REQUIRE_SERVERS") != "" {
			t.Fatalf("%s is not installed and HSMBRIDGE_REQUIRE_SERVERS is set (scripts/install-test-servers.sh installs it)", name)
		}
		t.Skipf("%s is not installed (not among make deps' packages; scripts/install-test-servers.sh installs it)", name)
	}
	return p
}

// formKeys creates ref with the `hsmhost key create` flags kty, writes
// <name>.crt (self-signed by the HSM key, CN=localhost) and, for each form,
// <name>-<form>.key.
func formKeys(h *host, name, ref, kty string) {
	h.t.Helper()
	h.hsmhost(append([]string{"key", "create", ref}, append(strings.Fields(kty), "--ops", "sign")...)...)
	h.run("", "openssl", "req", "-new", "-x509", "-provider", "akv_provider", "-provider", "default",
		"-key", ref, "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-days", "2", "-out", name+".crt")
	for _, f := range keyRefForms {
		key := h.hsmhost("key", "ref", f.flag, ref)
		if !strings.HasPrefix(key, "-----BEGIN "+f.label+"-----\n") {
			h.t.Fatalf("hsmhost key ref %s %s wrote:\n%s", f.flag, ref, key)
		}
		h.write(name+"-"+f.name+".key", key)
	}
}

// logBuffer collects a daemon's output from its writer goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemon starts a server in the foreground in h's directory with h's
// environment plus env; the test's cleanup stops it (SIGTERM, then KILL)
// and shows its output if the test failed.
func daemon(t *testing.T, h *host, env []string, name string, args ...string) *logBuffer {
	t.Helper()
	out := &logBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Dir = h.dir
	cmd.Env = append(h.env(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	// A process group of its own: Apache's prefork stops by signalling its
	// whole group, which would otherwise be the test's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A daemon's children may keep its output open after it is gone.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), out)
		}
	})
	return out
}

// tlsGet makes a fresh TLS connection (version: tls.VersionTLS12 or 13) to
// port, trusting only certFile for localhost, so Go checks the server's
// signature, made in the backend, against the certificate; it sends send
// and returns what comes back until the server closes or 2 s pass.
func tlsGet(h *host, port int, version uint16, certFile, send string) (string, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(h.read(certFile))) {
		return "", fmt.Errorf("no certificate in %s", certFile)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port),
		&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: version, MaxVersion: version})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, send); err != nil {
		return "", err
	}
	b, _ := io.ReadAll(conn)
	return string(b), nil
}

// Servers that already loaded key-reference files load both forms: openssl
// s_server, HAProxy (certificate and key in one file, the certificate
// first), stunnel and nginx (4 forked workers); every handshake, TLS 1.2
// and 1.3, signs in the backend and is checked by Go against the
// certificate.
func TestKeyReferenceFormsInServers(t *testing.T) {
	requireTool(t, "openssl")
	hostConfig, workerUser := nginxWorkerAccess(t)
	h := startHost(t, hostConfig)
	h.write("openssl.cnf", providerConf)
	conf := "OPENSSL_CONF=" + h.path("openssl.cnf")
	formKeys(h, "rsa", "managedhsm:MyHSM:forms-rsa", "--kty RSA --size 2048")
	formKeys(h, "ec", "managedhsm:MyHSM:forms-ec", "--kty EC --curve P-256")
	versions := map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}
	// handshake checks fresh connections to port with both versions.
	handshake := func(t *testing.T, port int, crt, send, want string, log fmt.Stringer) {
		t.Helper()
		waitPort(t, port, log)
		for v, version := range versions {
			got, err := tlsGet(h, port, version, crt, send)
			if err != nil || !strings.Contains(got, want) {
				t.Errorf("TLS %s to %d (%s): %v, got %q, want %q", v, port, crt, err, got, want)
			}
		}
	}

	t.Run("s_server", func(t *testing.T) {
		for _, f := range keyRefForms {
			for _, k := range []string{"rsa", "ec"} {
				port := freePort(t)
				log := daemon(t, h, []string{conf}, "openssl", "s_server", "-accept", fmt.Sprintf("127.0.0.1:%d", port),
					"-cert", k+".crt", "-key", k+"-"+f.name+".key", "-www", "-quiet")
				handshake(t, port, k+".crt", "GET / HTTP/1.0\r\n\r\n", "HTTP/1.0 200 ok", log)
			}
		}
	})

	t.Run("haproxy", func(t *testing.T) {
		haproxy := optionalTool(t, "haproxy")
		for _, f := range keyRefForms {
			var binds strings.Builder
			ports := map[string]int{}
			for _, k := range []string{"rsa", "ec"} {
				ports[k] = freePort(t)
				bundle := k + "-" + f.name + ".bundle.pem"
				h.write(bundle, h.read(k+".crt")+h.read(k+"-"+f.name+".key"))
				fmt.Fprintf(&binds, "    bind 127.0.0.1:%d ssl crt %s\n", ports[k], h.path(bundle))
			}
			cfg := "haproxy-" + f.name + ".cfg"
			h.write(cfg, fmt.Sprintf(`global
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend fe
%s    http-request return status 200 content-type text/plain string "ok haproxy %s"
`, binds.String(), f.name))
			log := daemon(t, h, []string{conf}, haproxy, "-db", "-f", h.path(cfg))
			for k, port := range ports {
				handshake(t, port, k+".crt", "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n", "ok haproxy "+f.name, log)
			}
		}
	})

	t.Run("stunnel", func(t *testing.T) {
		stunnel := optionalTool(t, "stunnel4")
		// The service behind stunnel: says hello and closes.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				io.WriteString(c, "hello from behind stunnel\n")
				c.Close()
			}
		}()
		for _, f := range keyRefForms {
			var services strings.Builder
			ports := map[string]int{}
			for _, k := range []string{"rsa", "ec"} {
				ports[k] = freePort(t)
				fmt.Fprintf(&services, "[%s]\naccept = 127.0.0.1:%d\nconnect = %s\ncert = %s\nkey = %s\n",
					k, ports[k], l.Addr(), h.path(k+".crt"), h.path(k+"-"+f.name+".key"))
			}
			cfg := "stunnel-" + f.name + ".conf"
			h.write(cfg, "foreground = yes\npid =\nsslVersionMin = TLSv1.2\n"+services.String())
			log := daemon(t, h, []string{conf}, stunnel, h.path(cfg))
			for k, port := range ports {
				handshake(t, port, k+".crt", "", "hello from behind stunnel", log)
			}
		}
	})

	t.Run("nginx", func(t *testing.T) {
		requireNginx(t)
		var names []string
		for _, f := range keyRefForms {
			for _, k := range []string{"rsa", "ec"} {
				name := k + "-" + f.name
				h.write(name+".crt", h.read(k+".crt"))
				names = append(names, name)
			}
		}
		n := startNginx(t, h, workerUser, names...)
		total, failures, _ := n.handshakes(5, names...)
		if len(failures) > 0 {
			t.Fatalf("%d of %d requests failed; first: %s", len(failures), total, failures[0])
		}
	})
}

// Apache's SSLProxyMachineCertificateFile, the client certificate a reverse
// proxy presents to its backend, read with PEM_X509_INFO_read_bio: with the
// PKCS#8 form the proxy signs the backend's CertificateVerify with the HSM
// key in its (forked, unprivileged) children, and a backend that requires
// the certificate answers. The label form is skipped by that reader, so
// Apache finds no key (the reason the PKCS#8 form exists).
func TestApacheProxyMachineCertificateFile(t *testing.T) {
	apache := optionalTool(t, "apache2")
	requireTool(t, "openssl")
	const mods = "/usr/lib/apache2/modules"
	for _, m := range []string{"mod_mpm_prefork.so", "mod_authz_core.so", "mod_proxy.so", "mod_proxy_http.so", "mod_ssl.so"} {
		if _, err := os.Stat(filepath.Join(mods, m)); err != nil {
			t.Skipf("%s: %v", m, err)
		}
	}
	hostConfig, workerUser := nginxWorkerAccess(t)
	h := startHost(t, hostConfig)
	h.write("openssl.cnf", providerConf)
	conf := "OPENSSL_CONF=" + h.path("openssl.cnf")
	ref := "managedhsm:MyHSM:apache-client"
	h.hsmhost("key", "create", ref, "--kty", "EC", "--curve", "P-256", "--ops", "sign")
	h.run("", "openssl", "req", "-new", "-x509", "-provider", "akv_provider", "-provider", "default",
		"-key", ref, "-subj", "/CN=apache-proxy-client", "-days", "2", "-out", "client.crt")
	// The backend: openssl s_server with a local key, requiring a client
	// certificate issued as client.crt (self-signed: itself).
	h.run("", "openssl", "req", "-new", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "backend.key", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-days", "2", "-out", "backend.crt")
	backend := freePort(t)
	backendLog := daemon(t, h, nil, "openssl", "s_server", "-accept", fmt.Sprintf("127.0.0.1:%d", backend),
		"-cert", "backend.crt", "-key", "backend.key", "-Verify", "1", "-verify_return_error", "-CAfile", "client.crt", "-www")
	waitPort(t, backend, backendLog)

	user := ""
	if workerUser != "" {
		user = "User nobody\nGroup nogroup\n"
	}
	for _, f := range keyRefForms {
		dir := h.path("apache-" + f.name)
		for _, d := range []string{"logs", "run"} {
			os.MkdirAll(filepath.Join(dir, d), 0o755)
		}
		key := h.hsmhost("key", "ref", f.flag, ref)
		// Certificate, then its key, in one file, as Apache's documentation shows.
		h.write("client-"+f.name+".pem", h.read("client.crt")+key)
		port := freePort(t)
		h.write("apache-"+f.name+".conf", fmt.Sprintf(`ServerRoot %[1]s
DefaultRuntimeDir %[1]s/run
PidFile %[1]s/run/apache.pid
Mutex file:%[1]s/run default
ErrorLog %[1]s/logs/error.log
LogLevel warn ssl:info proxy:info
%[2]sLoadModule mpm_prefork_module %[3]s/mod_mpm_prefork.so
LoadModule authz_core_module %[3]s/mod_authz_core.so
LoadModule proxy_module %[3]s/mod_proxy.so
LoadModule proxy_http_module %[3]s/mod_proxy_http.so
LoadModule ssl_module %[3]s/mod_ssl.so
StartServers 2
ServerName localhost
Listen 127.0.0.1:%[4]d
SSLProxyEngine on
SSLProxyVerify require
SSLProxyCACertificateFile %[5]s/backend.crt
SSLProxyMachineCertificateFile %[5]s/client-%[6]s.pem
ProxyPass "/" "https://localhost:%[7]d/"
`, dir, user, mods, port, h.dir, f.name, backend))
		log := daemon(t, h, []string{conf}, apache, "-f", h.path("apache-"+f.name+".conf"), "-DFOREGROUND")
		errorLog := func() string { b, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log")); return string(b) }
		waitPort(t, port, log)
		get := func() (string, error) {
			out, err := exec.Command("curl", "-sS", "--max-time", "20", fmt.Sprintf("http://127.0.0.1:%d/", port)).CombinedOutput()
			return string(out), err
		}
		if f.name == "label" {
			// mod_ssl says it found no client certificate with a key.
			out, _ := get()
			if strings.Contains(out, "Client certificate") || !strings.Contains(errorLog(), "AH02206: no client certs found for SSL proxy") {
				t.Errorf("label form: Apache proxied (%q) or did not say AH02206; error.log:\n%s", out, errorLog())
			}
			continue
		}
		for i := 0; i < 4; i++ { // more than one prefork child, each a fresh backend connection
			out, err := get()
			if err != nil || !strings.Contains(out, "Client certificate") { // s_server -www shows the one it verified
				t.Fatalf("request %d through Apache: %v\n%s\nerror.log:\n%s\nbackend:\n%s", i, err, out, errorLog(), backendLog)
			}
		}
		if !strings.Contains(backendLog.String(), "CN = apache-proxy-client") {
			t.Errorf("the backend did not see the proxy's client certificate:\n%s", backendLog)
		}
	}
}

// Postfix's smtpd_tls_chain_files with the key first (then its
// certificate), read block by block by label: the PKCS#8 form loads, and
// STARTTLS signs in the backend from the smtpd processes (user postfix);
// the label form is skipped ("ignoring PEM type"), so smtpd has no key.
func TestPostfixChainFilesKeyFirst(t *testing.T) {
	postfix := optionalTool(t, "postfix")
	if os.Geteuid() != 0 {
		t.Skip("Postfix runs as root")
	}
	if _, err := exec.Command("id", "postfix").CombinedOutput(); err != nil {
		t.Skip("no postfix user")
	}
	requireTool(t, "openssl")
	h := startHost(t, "socket_mode = \"0660\"\nsocket_group = \"postfix\"\n")
	h.write("openssl.cnf", providerConf)
	ref := "managedhsm:MyHSM:postfix"
	formKeys(h, "pf", ref, "--kty EC --curve P-256")
	for _, f := range keyRefForms {
		cfgDir := h.path("postfix-" + f.name)
		for _, d := range []string{"", "queue", "data", "logs"} {
			if err := os.MkdirAll(filepath.Join(cfgDir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// Postfix wants its data directory its own; the queue it makes itself.
		h.run("", "chown", "postfix", filepath.Join(cfgDir, "data"))
		port := freePort(t)
		// The environment is Postfix's to hand on: only what import_environment names reaches smtpd.
		var imported []string
		for _, kv := range append(h.env(), "OPENSSL_CONF="+h.path("openssl.cnf")) {
			if strings.HasPrefix(kv, "HSMBRIDGE_") || strings.HasPrefix(kv, "OPENSSL_") {
				imported = append(imported, kv)
			}
		}
		os.WriteFile(filepath.Join(cfgDir, "main.cf"), []byte(fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = localhost
mydestination =
maillog_file = %[1]s/logs/maillog
maillog_file_prefixes = %[1]s
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_tls_chain_files = %[2]s/pf-%[3]s.key, %[2]s/pf.crt
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C %[4]s
`, cfgDir, h.dir, f.name, strings.Join(imported, " "))), 0o644)
		// Debian's services smtpd needs, none chrooted, and smtpd on our port.
		os.WriteFile(filepath.Join(cfgDir, "master.cf"), []byte(fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
proxymap unix - - n - - proxymap
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`, port)), 0o644)
		daemon(t, h, nil, postfix, "-c", cfgDir, "start-fg")
		// Its master makes a session of its own: stop it the Postfix way
		// (cleanups run last first, so before daemon's).
		t.Cleanup(func() { exec.Command(postfix, "-c", cfgDir, "stop").Run() })
		maillog := func() string { b, _ := os.ReadFile(filepath.Join(cfgDir, "logs", "maillog")); return string(b) }
		waitPort(t, port, stringerFunc(maillog))

		starttls := func(version uint16) error {
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
			if err != nil {
				return err
			}
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			c, err := smtp.NewClient(conn, "localhost")
			if err != nil {
				conn.Close()
				return err
			}
			defer c.Close()
			if ok, _ := c.Extension("STARTTLS"); !ok {
				return fmt.Errorf("no STARTTLS offered")
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM([]byte(h.read("pf.crt")))
			if err := c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: version, MaxVersion: version}); err != nil {
				return err
			}
			return c.Quit()
		}
		if f.name == "label" {
			err := starttls(tls.VersionTLS13)
			if err == nil || !strings.Contains(maillog(), "ignoring PEM type") {
				t.Errorf("label form: STARTTLS gave %v; maillog:\n%s", err, maillog())
			}
			for _, line := range strings.Split(maillog(), "\n") {
				if strings.Contains(line, "ignoring PEM type") {
					t.Logf("label form: %s", line)
				}
			}
			continue
		}
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13, tls.VersionTLS12, tls.VersionTLS13} {
			if err := starttls(v); err != nil {
				t.Fatalf("STARTTLS (TLS %x) with the PKCS#8 form: %v\nmaillog:\n%s", v, err, maillog())
			}
		}
		if n := strings.Count(maillog(), "TLS connection established from"); n < 4 {
			t.Errorf("smtpd logged %d TLS connections, want 4:\n%s", n, maillog())
		}
	}
}

type stringerFunc func() string

func (f stringerFunc) String() string { return f() }

// Putting a backend key's private half in a PKCS#8 or PKCS#12 file
// (EVP_PKEY2PKCS8) is refused, saying why and naming the reference, from a
// key file of either form and from the reference itself; no file is
// written.
func TestExportOfBackendKeyRefused(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.write("openssl.cnf", providerConf)
	conf := "OPENSSL_CONF=" + h.path("openssl.cnf")
	ref := "managedhsm:MyHSM:noexport"
	formKeys(h, "k", ref, "--kty RSA --size 2048")
	type attempt struct{ what, out string }
	var attempts []attempt
	for _, f := range keyRefForms {
		key := "k-" + f.name + ".key"
		attempts = append(attempts,
			attempt{"pkcs8 -topk8 -nocrypt -in " + key, f.name + ".p8"},
			attempt{"pkcs8 -topk8 -passout pass:secret -in " + key, f.name + ".enc.p8"},
			attempt{"pkcs12 -export -passout pass:secret -in k.crt -inkey " + key, f.name + ".p12"})
	}
	attempts = append(attempts, attempt{"pkcs12 -export -passout pass:secret -in k.crt -provider akv_provider -provider default -inkey " + ref, "uri.p12"})
	for _, a := range attempts {
		out, err := h.try("", "sh", "-c", fmt.Sprintf("env %s openssl %s -out %s", conf, a.what, a.out))
		want := "the private key of " + ref + "?version="
		if err == nil || !strings.Contains(out, want) || !strings.Contains(out, "is held by the backend and cannot be exported") {
			t.Errorf("openssl %s: %v, want a refusal naming %s:\n%s", a.what, err, ref, out)
		}
		if strings.Contains(out, "wrong tag") {
			t.Errorf("openssl %s still fails parsing our output:\n%s", a.what, out)
		}
		if fi, err := os.Stat(h.path(a.out)); err == nil && fi.Size() > 0 {
			t.Errorf("openssl %s wrote %d bytes to %s", a.what, fi.Size(), a.out)
		}
	}
}

// An AES key's reference file in the PKCS#8 form loads (the label form's
// never did): `openssl pkeyutl -encrypt -inkey aes.pem` wraps in the
// backend, and the key named by its reference unwraps it again.
func TestAESKeyReferencePKCS8(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.write("openssl.cnf", providerConf)
	conf := "OPENSSL_CONF=" + h.path("openssl.cnf")
	ref := "managedhsm:MyHSM:aes-p8"
	h.hsmhost("key", "create", ref, "--kty", "oct", "--size", "256", "--ops", "wrapKey,unwrapKey")
	h.write("aes.pem", h.hsmhost("key", "ref", "--pkcs8", ref))
	h.write("key.bin", "0123456789abcdef0123456789abcdef")
	h.run("", "env", conf, "openssl", "pkeyutl", "-encrypt", "-inkey", "aes.pem", "-in", "key.bin", "-out", "wrapped.bin")
	h.run("", "openssl", "pkeyutl", "-decrypt", "-provider", "akv_provider", "-provider", "default",
		"-inkey", ref, "-in", "wrapped.bin", "-out", "back.bin")
	if w := h.read("wrapped.bin"); len(w) != 40 || h.read("back.bin") != h.read("key.bin") {
		t.Fatalf("wrapped %d bytes; unwrapped %q", len(w), h.read("back.bin"))
	}
}
