package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/internal/config"
	"github.com/hsmbridge/hsmbridge/internal/manpage"
)

func renderPage(t *testing.T, page string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run([]string{"manpage", page, "--version", ""}, &out, &errOut); code != exitOK {
		t.Fatalf("hsmhost manpage %s: exit %d: %s", page, code, errOut.String())
	}
	return out.String()
}

// The checked-in pages are what the code renders now. After changing a
// flag, a directive or a provider table: go generate ./cmd/hsmhost
func TestManPagesAreCurrent(t *testing.T) {
	for _, page := range []string{"hsmhost.8", "hsmbridge.7"} {
		want := renderPage(t, page)
		got, err := os.ReadFile(filepath.Join("../../docs/man", page))
		if err != nil {
			t.Fatalf("%v (go generate ./cmd/hsmhost writes it)", err)
		}
		if string(got) != want {
			t.Errorf("docs/man/%s is not what the code renders: run go generate ./cmd/hsmhost", page)
		}
	}
}

// sectionOf returns the page's text from the command's .SS line to the
// next one.
func sectionOf(page, synopsis string) string {
	start := strings.Index(page, ".SS "+`"`+manpage.Escape("hsmhost "+synopsis))
	if start < 0 {
		return ""
	}
	rest := page[start+4:]
	if end := strings.Index(rest, "\n.S"); end >= 0 {
		rest = rest[:end]
	}
	return rest
}

// Every command of `hsmhost --help` has a section with every flag of its
// flag set, and a description.
func TestManPageHasEveryCommandAndFlag(t *testing.T) {
	page := renderPage(t, "hsmhost.8")
	cmds, err := commands()
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) < 10 {
		t.Fatalf("found %d commands in topUsage; the parser of topUsage is wrong", len(cmds))
	}
	seen := map[string]bool{}
	for _, c := range cmds {
		seen[c.path] = true
		sec := sectionOf(page, c.synopsis)
		if sec == "" {
			t.Errorf("hsmhost(8) has no section for %q", c.path)
			continue
		}
		if len(commandText[c.path]) == 0 {
			t.Errorf("command %q has no description in commandText (manpage.go)", c.path)
		}
		for _, f := range c.flags {
			if !strings.Contains(sec, manpage.Bold("--"+f.Name)) {
				t.Errorf("hsmhost(8): %s has no --%s", c.path, f.Name)
			}
		}
	}
	for path := range commandText {
		if !seen[path] {
			t.Errorf("commandText describes %q, which topUsage does not list", path)
		}
	}
	// The flags the test relies on are really captured.
	for _, want := range []struct{ cmd, flag string }{{"serve", "config"}, {"key create", "kty"}, {"key ref", "offline"}, {"doctor", "socket"}} {
		found := false
		for _, c := range cmds {
			if c.path == want.cmd {
				found = slices.ContainsFunc(c.flags, func(f *flag.Flag) bool { return f.Name == want.flag })
			}
		}
		if !found {
			t.Errorf("the flags of %q did not include --%s: flag sets are no longer captured", want.cmd, want.flag)
		}
	}
}

// A flag that --help's synopsis shows exists in that command's flag set
// (topUsage is written by hand).
func TestTopUsageNamesOnlyRealFlags(t *testing.T) {
	cmds, err := commands()
	if err != nil {
		t.Fatal(err)
	}
	opt := regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	for _, c := range cmds {
		for _, m := range opt.FindAllStringSubmatch(c.synopsis, -1) {
			if !slices.ContainsFunc(c.flags, func(f *flag.Flag) bool { return f.Name == m[1] }) {
				t.Errorf("topUsage shows %q with --%s, which it does not have", c.path, m[1])
			}
		}
	}
}

// Every configuration directive is on the page, in its block's section.
func TestManPageHasEveryDirective(t *testing.T) {
	page := renderPage(t, "hsmhost.8")
	_, conf, ok := strings.Cut(page, ".SH \"CONFIGURATION\"")
	if !ok {
		t.Fatal("no CONFIGURATION section")
	}
	for _, d := range config.Directives {
		if d.Kind == "block" {
			if !strings.Contains(conf, ".SS \""+manpage.Escape(d.Name)) {
				t.Errorf("hsmhost(8) has no section for %s blocks", d.Name)
			}
			continue
		}
		if !strings.Contains(conf, manpage.Bold(d.Name)+" (") {
			t.Errorf("hsmhost(8) does not document %s.%s", d.Block, d.Name)
		}
	}
	for _, e := range hostEnv {
		if !strings.Contains(page, manpage.Bold(e.name)) {
			t.Errorf("hsmhost(8) does not list %s", e.name)
		}
	}
}

// hostEnv lists every variable the host's own Go code reads.
func TestHostEnvIsComplete(t *testing.T) {
	dirs := []string{".", "../../internal/config", "../../internal/socketpath", "../../internal/pluginhost",
		"../../internal/socketserver", "../../internal/hostsvc", "../../plugins/sdk", "../../plugins/simulator"}
	lit := regexp.MustCompile(`"(HSMBRIDGE_[A-Z0-9_]+)"`)
	call := regexp.MustCompile(`os\.(?:Getenv|LookupEnv)\("([A-Z0-9_]+)"\)`)
	found := map[string]string{}
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, re := range []*regexp.Regexp{lit, call} {
				for _, m := range re.FindAllStringSubmatch(string(src), -1) {
					found[m[1]] = f
				}
			}
		}
	}
	documented := map[string]bool{}
	for _, e := range hostEnv {
		documented[e.name] = true
	}
	var missing []string
	for name, file := range found {
		if !documented[name] {
			missing = append(missing, name+" ("+file+")")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("hostEnv (manpage.go) does not document %v", missing)
	}
}

// The page's example configuration, and the one the packages install, are
// valid.
func TestExampleConfigsParse(t *testing.T) {
	if _, err := config.Parse([]byte(exampleConfig), "hsmhost(8) example"); err != nil {
		t.Errorf("the man page's example: %v", err)
	}
	src, err := os.ReadFile("../../packaging/hsmhost.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(src, "packaging/hsmhost.hcl")
	if err != nil {
		t.Fatalf("packaging/hsmhost.hcl: %v", err)
	}
	if cfg.Socket != "/run/hsmbridge/hsmhost.sock" || cfg.SocketGroup != "hsmbridge" || cfg.SocketMode != 0o660 {
		t.Errorf("packaging/hsmhost.hcl: socket %s mode %o group %s, want the service's /run/hsmbridge/hsmhost.sock 0660 hsmbridge",
			cfg.Socket, cfg.SocketMode, cfg.SocketGroup)
	}
	// Its commented-out blocks parse too once uncommented: from a line
	// "# backend ..." or "# route {" to the next "# }".
	var on []string
	inBlock := false
	for _, l := range strings.Split(string(src), "\n") {
		text, commented := strings.CutPrefix(l, "# ")
		switch {
		case commented && (strings.HasPrefix(text, "backend ") || strings.HasPrefix(text, "route ")):
			inBlock = true
			on = append(on, text)
		case inBlock && commented:
			on = append(on, text)
			inBlock = text != "}"
		case !strings.HasPrefix(l, "#"):
			on = append(on, l)
		}
	}
	all, err := config.Parse([]byte(strings.Join(on, "\n")), "packaging/hsmhost.hcl, uncommented")
	if err != nil {
		t.Fatalf("packaging/hsmhost.hcl with its examples uncommented: %v", err)
	}
	if len(all.Backends) != 3 || len(all.Routes) != 3 {
		t.Errorf("packaging/hsmhost.hcl uncommented has backends %v and %d routes, want the simulator, mhsm, azihsm and 3 routes",
			all.BackendNames(), len(all.Routes))
	}
}

// The unit's ExecStart uses only serve's real flags, and the config file
// hsmhost reads by default.
func TestUnitCommandLine(t *testing.T) {
	unit, err := os.ReadFile("../../packaging/hsmhost.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ExecStart=(\S+) serve (.*)$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("no ExecStart=... serve ... line")
	}
	cmds, err := commands()
	if err != nil {
		t.Fatal(err)
	}
	var serveFlags []*flag.Flag
	for _, c := range cmds {
		if c.path == "serve" {
			serveFlags = c.flags
		}
	}
	for _, a := range strings.Fields(string(m[2])) {
		if name, ok := strings.CutPrefix(a, "--"); ok && !slices.ContainsFunc(serveFlags, func(f *flag.Flag) bool { return f.Name == name }) {
			t.Errorf("ExecStart passes --%s, which serve does not have", name)
		}
	}
	if !strings.Contains(string(m[2]), config.DefaultPath) {
		t.Errorf("ExecStart should name %s", config.DefaultPath)
	}
}
