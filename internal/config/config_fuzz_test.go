package config

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
)

// FuzzParse parses arbitrary bytes as a configuration file, with Parse and
// with Load of the same bytes written to a file; the seed corpus is in
// testdata/fuzz/FuzzParse. It checks:
//   - Load and Parse agree, and Parse is deterministic;
//   - every line of an error starts with the file name and, where it has
//     one, a line number inside the file;
//   - an accepted configuration keeps every promise Parse makes: at least
//     one backend and one route, unique valid backend names, every route
//     naming a defined backend, unique prefixes that can match a canonical
//     reference, absolute paths, a normalised sha256, a permission mode,
//     unique policy names and an access policy that compiles, a known
//     log format, an audit rate from 0 up, a metrics address that is a
//     host and a port number, and positive frame timeout and
//     connection limit.
func FuzzParse(f *testing.F) {
	const name = "fuzz.hcl"
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, err := Parse(src, name)
		checkPositions(t, src, name, err)
		again, err2 := Parse(src, name)
		if !reflect.DeepEqual(cfg, again) || errString(err) != errString(err2) {
			t.Fatalf("Parse is not deterministic:\n%+v %v\n%+v %v", cfg, err, again, err2)
		}

		file, ferr := os.CreateTemp(dir, "*.hcl")
		if ferr != nil {
			t.Fatal(ferr)
		}
		path := file.Name()
		defer os.Remove(path)
		if _, ferr := file.Write(src); ferr != nil {
			t.Fatal(ferr)
		}
		file.Close()
		loaded, lerr := Load(path)
		want, werr := Parse(src, path)
		if !reflect.DeepEqual(loaded, want) || errString(lerr) != errString(werr) {
			t.Fatalf("Load(%s) differs from Parse:\n%+v %v\n%+v %v", filepath.Base(path), loaded, lerr, want, werr)
		}

		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse failed (%v) but returned %+v", err, cfg)
			}
			return
		}
		checkConfig(t, src, name, cfg)
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

var positionPattern = regexp.MustCompile(`^([^:]+):(?:([0-9]+):)? `)

// checkPositions: each line of err is "<file>:<line>: <msg>" or, for a
// problem of the whole file, "<file>: <msg>".
func checkPositions(t *testing.T, src []byte, name string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	lines := strings.Count(string(src), "\n") + 1
	for _, l := range strings.Split(err.Error(), "\n") {
		m := positionPattern.FindStringSubmatch(l)
		if m == nil || m[1] != name {
			t.Fatalf("error line %q carries no position; the whole error:\n%v", l, err)
		}
		if m[2] != "" {
			if n, _ := strconv.Atoi(m[2]); n < 1 || n > lines {
				t.Fatalf("error line %q: line %s is outside the %d-line file", l, m[2], lines)
			}
		}
	}
}

var wherePattern = regexp.MustCompile(`^fuzz\.hcl:[1-9][0-9]*$`)

func checkConfig(t *testing.T, src []byte, name string, cfg *Config) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("accepted\n%s\nas %+v, but "+format, append([]any{src, cfg}, args...)...)
	}
	if cfg.Source != name {
		fail("Source is %q", cfg.Source)
	}
	if cfg.Socket != "" && !filepath.IsAbs(cfg.Socket) {
		fail("socket %q is relative", cfg.Socket)
	}
	if cfg.SocketMode > 0o777 {
		fail("socket mode %o", cfg.SocketMode)
	}
	if cfg.LogLevel != "" && !contains(logLevels, cfg.LogLevel) {
		fail("log level %q", cfg.LogLevel)
	}
	if cfg.LogFormat != "" && !contains(LogFormats, cfg.LogFormat) {
		fail("log format %q", cfg.LogFormat)
	}
	if cfg.AuditRate < 0 {
		fail("audit rate %d", cfg.AuditRate)
	}
	if cfg.MetricsListen != "" {
		host, port, err := net.SplitHostPort(cfg.MetricsListen)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 || strings.ContainsAny(host, " \t/") {
			fail("metrics_listen %q", cfg.MetricsListen)
		}
	}
	if cfg.FrameTimeout <= 0 || cfg.MaxConnectionsPerUID < 0 {
		fail("frame timeout %s, max connections per uid %d", cfg.FrameTimeout, cfg.MaxConnectionsPerUID)
	}
	if len(cfg.Backends) == 0 || len(cfg.Routes) == 0 {
		fail("%d backends, %d routes", len(cfg.Backends), len(cfg.Routes))
	}
	embedded := len(cfg.Backends) == 1 && cfg.Backends[0].Where == EmbeddedSource
	defined := map[string]bool{}
	for _, b := range cfg.Backends {
		if defined[b.Name] {
			fail("backend %q twice", b.Name)
		}
		defined[b.Name] = true
		if !backendNamePattern.MatchString(b.Name) {
			fail("backend name %q", b.Name)
		}
		if bi, ok := b.Builtin(); ok {
			if !contains(Builtins, bi) {
				fail("unknown builtin %q", b.Plugin)
			}
		} else if !filepath.IsAbs(b.Plugin) {
			fail("plugin %q is relative", b.Plugin)
		}
		if b.SHA256 != "" && !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(b.SHA256) {
			fail("sha256 %q not normalised", b.SHA256)
		}
		for _, e := range b.PassEnv {
			if !envNamePattern.MatchString(e) {
				fail("pass_env entry %q", e)
			}
		}
		if b.Settings == nil {
			fail("backend %q has nil settings", b.Name)
		}
		if !embedded && !wherePattern.MatchString(b.Where) {
			fail("backend %q at %q", b.Name, b.Where)
		}
	}
	prefixes := map[string]bool{}
	for _, r := range cfg.Routes {
		if !defined[r.Backend] {
			fail("route %q names undefined backend %q", r.Prefix, r.Backend)
		}
		if prefixes[r.Prefix] {
			fail("prefix %q twice", r.Prefix)
		}
		prefixes[r.Prefix] = true
		if msg := checkPrefix(r.Prefix); msg != "" {
			fail("%s", msg)
		}
		if !embedded && !wherePattern.MatchString(r.Where) {
			fail("route %q at %q", r.Prefix, r.Where)
		}
	}
	if cfg.Access.Source != name {
		fail("access policy source %q", cfg.Access.Source)
	}
	policies := map[string]bool{}
	for _, r := range cfg.Access.Rules {
		if policies[r.Name] {
			fail("policy %q twice", r.Name)
		}
		policies[r.Name] = true
		if !wherePattern.MatchString(r.Where) {
			fail("policy %q at %q", r.Name, r.Where)
		}
		for _, k := range r.Keys {
			if msg := checkKeyPattern(k); msg != "" {
				fail("%s", msg)
			}
		}
		if r.Executable != "" && !filepath.IsAbs(r.Executable) {
			fail("policy %q: executable %q is relative", r.Name, r.Executable)
		}
	}
	if _, err := hostsvc.NewAccess(cfg.Access); err != nil {
		fail("the policy does not compile: %v", err)
	}
}
