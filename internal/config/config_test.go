package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `
socket       = "/run/hsmbridge/hsmhost.sock"
socket_mode  = "0660"
socket_group = "www-data"
log_level    = "debug"

backend "sim-a" {
  plugin   = "builtin:simulator"
  settings = { state_dir = "/var/lib/hsmbridge/sim-a" }
}

backend "akv" {
  plugin   = "/usr/lib/hsmbridge/plugins/akv"
  sha256   = "AB8e1f0c0e2f8b6e4b5b0c7f1c5e9a2d3f4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d"
  pass_env = ["AZURE_CLIENT_ID", "AZURE_TENANT_ID"]
  settings = { retries = 3, verbose = true }
}

route {
  prefix  = "managedhsm:MyHSM:"
  backend = "akv"
}
route {
  prefix  = ""
  backend = "sim-a"
}
`

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(good), "good.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Socket != "/run/hsmbridge/hsmhost.sock" || c.SocketMode != 0o660 || c.SocketGroup != "www-data" || c.LogLevel != "debug" {
		t.Fatalf("top level: %+v", c)
	}
	if len(c.Backends) != 2 || len(c.Routes) != 2 {
		t.Fatalf("%d backends, %d routes", len(c.Backends), len(c.Routes))
	}
	a, k := c.Backends[0], c.Backends[1]
	if name, ok := a.Builtin(); !ok || name != "simulator" || a.Settings["state_dir"] != "/var/lib/hsmbridge/sim-a" || a.Where != "good.hcl:7" {
		t.Fatalf("sim-a: %+v", a)
	}
	if k.SHA256 != "ab8e1f0c0e2f8b6e4b5b0c7f1c5e9a2d3f4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d" {
		t.Fatalf("sha256 not normalised: %q", k.SHA256)
	}
	if strings.Join(k.PassEnv, ",") != "AZURE_CLIENT_ID,AZURE_TENANT_ID" || k.Settings["retries"] != "3" || k.Settings["verbose"] != "true" {
		t.Fatalf("akv: %+v", k)
	}
	if c.Routes[0].Prefix != "managedhsm:MyHSM:" || c.Routes[0].Backend != "akv" || c.Routes[1].Prefix != "" {
		t.Fatalf("routes %+v", c.Routes)
	}
}

func TestDefaultsWhenOptionalAttributesAreAbsent(t *testing.T) {
	c, err := Parse([]byte(`
backend "s" { plugin = "builtin:simulator" }
route {
  prefix = ""
  backend = "s"
}
`), "min.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.SocketMode != 0o600 || c.Socket != "" || c.LogLevel != "" {
		t.Fatalf("%+v", c)
	}
}

func TestParseErrorsCarryFileAndLine(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string // each must appear
	}{
		{"unknown backend in route", `
backend "a" { plugin = "builtin:simulator" }
route {
  prefix  = ""
  backend = "b"
}`, []string{`x.hcl:3: route "" names backend "b", which is not defined (defined: "a")`}},
		{"duplicate backend", `
backend "a" { plugin = "builtin:simulator" }
backend "a" { plugin = "builtin:simulator" }
route {
  prefix = ""
  backend = "a"
}`, []string{`x.hcl:3: backend "a" is defined twice (first at x.hcl:2)`}},
		{"bad sha256", `
backend "a" {
  plugin = "/opt/p"
  sha256 = "abc"
}
route {
  prefix = ""
  backend = "a"
}`, []string{`x.hcl:4: sha256 "abc" is not 64 hexadecimal digits`}},
		{"duplicate prefix", `
backend "a" { plugin = "builtin:simulator" }
route {
  prefix = "managedhsm:"
  backend = "a"
}
route {
  prefix = "managedhsm:"
  backend = "a"
}`, []string{`x.hcl:7: route prefix "managedhsm:" is given twice (first at x.hcl:3)`}},
		{"akv prefix", `
backend "a" { plugin = "builtin:simulator" }
route {
  prefix = "akv:vault=X"
  backend = "a"
}`, []string{`x.hcl:4: route prefix "akv:vault=X": akv: references are routed in their canonical form`}},
		{"unknown attribute", `
backend "a" {
  plugin = "builtin:simulator"
  colour = "red"
}
route {
  prefix = ""
  backend = "a"
}`, []string{`x.hcl:4: Unsupported argument`}},
		{"missing plugin", `
backend "a" {}
route {
  prefix = ""
  backend = "a"
}`, []string{`x.hcl:2: Missing required argument`}},
		{"unknown builtin and relative path", `
backend "a" { plugin = "builtin:nope" }
backend "b" { plugin = "plugins/akv" }
route {
  prefix = ""
  backend = "a"
}`, []string{`x.hcl:2: unknown built-in plugin "builtin:nope"`, `x.hcl:3: plugin path "plugins/akv" must be absolute`}},
		{"bad mode and level", `
socket_mode = "rw"
log_level = "loud"
backend "a" { plugin = "builtin:simulator" }
route {
  prefix = ""
  backend = "a"
}`, []string{`x.hcl:2: socket_mode "rw"`, `x.hcl:3: log_level "loud"`}},
		{"settings not a map of strings", `
backend "a" {
  plugin = "builtin:simulator"
  settings = { x = ["a"] }
}
route {
  prefix = ""
  backend = "a"
}`, []string{`x.hcl:4: settings must be a map of strings`}},
		{"bad pass_env", `
backend "a" {
  plugin = "builtin:simulator"
  pass_env = ["OK", "NOT OK"]
}
route {
  prefix = ""
  backend = "a"
}`, []string{`x.hcl:4: pass_env entry "NOT OK"`}},
		{"syntax error", "backend \"a\" {\n  plugin = \n}\n", []string{`x.hcl:`}},
		{"no routes", `backend "a" { plugin = "builtin:simulator" }`, []string{`x.hcl: no route block`}},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.src), "x.hcl")
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n%s\ndoes not contain\n%s", c.name, err, w)
			}
		}
	}
}

func TestLocateAndEmbeddedDefault(t *testing.T) {
	t.Setenv("HSMBRIDGE_CONFIG", "")
	if _, err := os.Stat(DefaultPath); err == nil {
		t.Skip(DefaultPath + " exists on this machine")
	}
	p, err := Locate("")
	if err != nil || p != "" {
		t.Fatalf("Locate = %q, %v", p, err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != EmbeddedSource || len(c.Backends) != 1 || c.Backends[0].Plugin != "builtin:simulator" || len(c.Routes) != 1 || c.Routes[0].Prefix != "" {
		t.Fatalf("default %+v", c)
	}
	if _, err := Locate("/nonexistent/hsmhost.hcl"); err == nil {
		t.Fatal("missing explicit file accepted")
	}
	f := filepath.Join(t.TempDir(), "h.hcl")
	os.WriteFile(f, []byte(good), 0o600)
	t.Setenv("HSMBRIDGE_CONFIG", f)
	if p, _ := Locate(""); p != f {
		t.Fatalf("HSMBRIDGE_CONFIG ignored: %q", p)
	}
}

func TestSocketPathPrecedence(t *testing.T) {
	c := &Config{Socket: "/from/config.sock"}
	t.Setenv("HSMBRIDGE_SOCKET", "")
	if SocketPath("/flag.sock", c) != "/flag.sock" || SocketPath("", c) != "/from/config.sock" {
		t.Fatal("flag or config ignored")
	}
	t.Setenv("HSMBRIDGE_SOCKET", "/env.sock")
	if SocketPath("", c) != "/env.sock" || DefaultSocketPath() != "/env.sock" {
		t.Fatal("env ignored")
	}
	t.Setenv("HSMBRIDGE_SOCKET", "")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	want := "/run/user/1000/hsmbridge/hsmhost.sock"
	if os.Getuid() == 0 {
		want = "/run/hsmbridge/hsmhost.sock"
	}
	if got := DefaultSocketPath(); got != want {
		t.Fatalf("default %q, want %q", got, want)
	}
}

func TestFileWithOnlySocketSettingsKeepsTheEmbeddedBackend(t *testing.T) {
	cfg, err := Parse([]byte("socket_mode = \"0660\"\nsocket_group = \"nogroup\"\n"), "only-socket.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SocketMode != 0o660 || cfg.SocketGroup != "nogroup" {
		t.Fatalf("socket settings lost: %+v", cfg)
	}
	if len(cfg.Backends) != 1 || cfg.Backends[0].Plugin != "builtin:simulator" || len(cfg.Routes) != 1 || cfg.Routes[0].Prefix != "" {
		t.Fatalf("expected the embedded simulator on a catch-all route, got %+v %+v", cfg.Backends, cfg.Routes)
	}
	if _, err := Parse([]byte("route {\n  prefix = \"\"\n  backend = \"x\"\n}\n"), "routes-only.hcl"); err == nil {
		t.Fatal("routes without backends were accepted")
	}
}

func TestConnectionLimits(t *testing.T) {
	const routes = "backend \"a\" { plugin = \"builtin:simulator\" }\nroute {\n  prefix = \"\"\n  backend = \"a\"\n}\n"
	c, err := Parse([]byte(routes), "x.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.FrameTimeout != 10*time.Second || c.MaxConnectionsPerUID != 256 {
		t.Fatalf("defaults: frame_timeout %s, max_connections_per_uid %d", c.FrameTimeout, c.MaxConnectionsPerUID)
	}
	if d := Default(); d.FrameTimeout != c.FrameTimeout || d.MaxConnectionsPerUID != c.MaxConnectionsPerUID {
		t.Fatalf("embedded default: %s, %d", d.FrameTimeout, d.MaxConnectionsPerUID)
	}
	c, err = Parse([]byte("frame_timeout = \"2500ms\"\nmax_connections_per_uid = 0\n"+routes), "x.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.FrameTimeout != 2500*time.Millisecond || c.MaxConnectionsPerUID != 0 {
		t.Fatalf("set: frame_timeout %s, max_connections_per_uid %d", c.FrameTimeout, c.MaxConnectionsPerUID)
	}
	for src, want := range map[string]string{
		"frame_timeout = \"10\"":          `x.hcl:1: frame_timeout "10" is not a duration`,
		"frame_timeout = \"0s\"":          `x.hcl:1: frame_timeout "0s" must be longer than 0`,
		"max_connections_per_uid = -1":    `x.hcl:1: max_connections_per_uid must be a whole number`,
		"max_connections_per_uid = 1.5":   `x.hcl:1: max_connections_per_uid must be a whole number`,
		"max_connections_per_uid = \"x\"": `x.hcl:1: max_connections_per_uid must be a whole number`,
	} {
		_, err := Parse([]byte(src+"\n"+routes), "x.hcl")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %s", src, err, want)
		}
	}
}

func TestOperationsSettings(t *testing.T) {
	const routes = "backend \"a\" { plugin = \"builtin:simulator\" }\nroute {\n  prefix = \"\"\n  backend = \"a\"\n}\n"
	c, err := Parse([]byte(routes), "x.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Audit || c.AuditRate != DefaultAuditRate || c.MetricsListen != "" || c.LogFormat != "" {
		t.Fatalf("defaults: audit %v rate %d metrics %q format %q", c.Audit, c.AuditRate, c.MetricsListen, c.LogFormat)
	}
	if d := Default(); d.Audit != c.Audit || d.AuditRate != c.AuditRate || d.MetricsListen != "" || d.LogFormat != "" {
		t.Fatalf("embedded default: %+v", d)
	}
	// A file with only these keeps the embedded backend, as with socket options.
	c, err = Parse([]byte("log_format = \"JSON\"\naudit = false\naudit_rate = 0\nmetrics_listen = \"127.0.0.1:9464\"\n"), "x.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Audit || c.AuditRate != 0 || c.MetricsListen != "127.0.0.1:9464" || c.LogFormat != "json" || len(c.Backends) != 1 {
		t.Fatalf("set: %+v", c)
	}
	for _, addr := range []string{"[::1]:9464", ":9464", "localhost:0", "0.0.0.0:65535"} {
		if c, err := Parse([]byte("metrics_listen = \""+addr+"\"\n"+routes), "x.hcl"); err != nil || c.MetricsListen != addr {
			t.Errorf("metrics_listen %q: %v", addr, err)
		}
	}
	for src, want := range map[string]string{
		`log_format = "xml"`:                 `x.hcl:1: log_format "xml" is not one of text, json`,
		`audit = "maybe"`:                    `x.hcl:1: audit must be true or false`,
		`audit = 1`:                          `x.hcl:1: audit must be true or false`,
		`audit_rate = -1`:                    `x.hcl:1: audit_rate must be a whole number from 0 up`,
		`audit_rate = 2.5`:                   `x.hcl:1: audit_rate must be a whole number from 0 up`,
		`metrics_listen = "9464"`:            `x.hcl:1: metrics_listen "9464" is not host:port`,
		`metrics_listen = "127.0.0.1:"`:      `x.hcl:1: metrics_listen "127.0.0.1:" has no port number`,
		`metrics_listen = "127.0.0.1:http"`:  `x.hcl:1: metrics_listen "127.0.0.1:http" has no port number`,
		`metrics_listen = "127.0.0.1:70000"`: `x.hcl:1: metrics_listen "127.0.0.1:70000" has no port number`,
	} {
		_, err := Parse([]byte(src+"\n"+routes), "x.hcl")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %s", src, err, want)
		}
	}
}

// Every scheme a canonical reference can have is a valid route prefix (and
// a partial one still matches); other prefixes are refused, saying why.
func TestRoutePrefixes(t *testing.T) {
	for _, p := range []string{"managedhsm:MyHSM:", "hsmbridge:lab:", "azihsm://", "pkcs11:", "pkcs11:token=tok1;", "pkcs", "managed", ""} {
		if msg := checkPrefix(p); msg != "" {
			t.Errorf("prefix %q refused: %s", p, msg)
		}
	}
	for p, want := range map[string]string{
		"akv:vault=X": "akv: references are routed in their canonical form",
		"PKCS11:":     "canonical schemes are lower case",
		"pkcs12:":     `unknown scheme "pkcs12" (managedhsm, hsmbridge, azihsm or pkcs11)`,
		"MyHSM":       "matches no reference: canonical references start with managedhsm:, hsmbridge:, azihsm:// or pkcs11:",
	} {
		if msg := checkPrefix(p); !strings.Contains(msg, want) {
			t.Errorf("prefix %q: %q, want %q", p, msg, want)
		}
	}
}
