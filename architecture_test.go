// Package hsmbridge_test holds the test of the module's import graph:
// the dependency rules docs/ARCHITECTURE.md states, checked on what the
// Go tool reports rather than on what the document says.
package hsmbridge_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/hsmbridge/hsmbridge"

// rule forbids the packages under from importing (outside their tests)
// anything that allow does not accept.
type rule struct {
	under string // a folder of the module, "" for every package
	why   string
	allow func(pkg, imp string) bool
}

// inModule reports whether imp is one of the module's folders dirs, or
// a package below one.
func inModule(imp string, dirs ...string) bool {
	for _, d := range dirs {
		p := module + "/" + d
		if imp == p || strings.HasPrefix(imp, p+"/") {
			return true
		}
	}
	return false
}

// std reports whether imp is in Go's standard library: its first path
// element has no dot.
func std(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	return !strings.Contains(first, ".")
}

var rules = []rule{
	{"core", "the domain knows nothing of OpenSSL, HTTP, gRPC or go-plugin",
		func(pkg, imp string) bool {
			return (std(imp) && !strings.HasPrefix(imp, "net/http")) || inModule(imp, "core")
		}},
	{"ports", "ports name operations in the domain's terms only",
		func(pkg, imp string) bool { return imp == "context" || inModule(imp, "core") }},
	{"plugins/sdk", "the plugin SDK is public: what a third party imports leans on no internal package",
		func(pkg, imp string) bool {
			return !strings.HasPrefix(imp, module+"/") || inModule(imp, "core", "ports", "plugins/sdk")
		}},
	{"adapters", "backends are driven adapters: they reach the domain through ports, never the host",
		func(pkg, imp string) bool { return !hostSide(imp) }},
	{"plugins", "plugins are driven adapters: they reach the domain through ports, never the host",
		func(pkg, imp string) bool { return !hostSide(imp) }},
	{"", "test doubles are not a part of the product: only tests and other test doubles use them",
		func(pkg, imp string) bool { return !inModule(imp, "testdoubles") || inModule(pkg, "testdoubles") }},
}

// hostSide: hsmhost's own parts, which only cmd/hsmhost wires together.
func hostSide(imp string) bool {
	return inModule(imp, "cmd", "internal/socketserver", "internal/hostsvc", "internal/pluginhost",
		"internal/config", "internal/telemetry", "hsmkey", "testdoubles")
}

// violations lists, for a graph of package → non-test imports, every
// import a rule forbids, one line each, sorted.
func violations(graph map[string][]string) []string {
	var out []string
	for pkg, imps := range graph {
		for _, r := range rules {
			if r.under != "" && !inModule(pkg, r.under) {
				continue
			}
			for _, imp := range imps {
				if !r.allow(pkg, imp) {
					out = append(out, fmt.Sprintf("%s imports %s: %s", pkg, imp, r.why))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// importGraph is `go list`'s non-test imports of every package in dir's
// module.
func importGraph(t *testing.T, dir string) map[string][]string {
	t.Helper()
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in %s: %v\n%s", dir, err, stderr.String())
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			graph[f[0]] = f[1:]
		}
	}
	return graph
}

func TestImportGraphFollowsTheArchitecture(t *testing.T) {
	graph := importGraph(t, ".")
	for _, d := range []string{"core", "ports", "plugins/sdk", "adapters/mhsm", "testdoubles/mhsm-standin"} {
		if _, ok := graph[module+"/"+d]; !ok {
			t.Fatalf("go list reported no package %s: the rules would check nothing", d)
		}
	}
	for _, v := range violations(graph) {
		t.Error(v)
	}
}

// The rules catch what they are for: each import below breaks one.
func TestArchitectureRulesRefuse(t *testing.T) {
	m := func(p string) string { return module + "/" + p }
	cases := map[string][]string{
		m("core"):                  {"net/http"},
		m("ports"):                 {m("adapters/mhsm")},
		m("plugins/sdk"):           {m("internal/hostframe")},
		m("adapters/mhsm"):         {m("internal/pluginhost")},
		m("plugins/simulator"):     {m("internal/config")},
		m("cmd/hsmhost"):           {m("testdoubles/mhsm-standin")},
		m("internal/socketserver"): {m("testdoubles/mhsm-standin")},
	}
	for pkg, imps := range cases {
		if v := violations(map[string][]string{pkg: imps}); len(v) == 0 {
			t.Errorf("%s importing %v broke no rule", pkg, imps)
		}
	}
	allowed := map[string][]string{
		m("core"):                     {"crypto/ecdsa", m("core/x")},
		m("ports"):                    {"context", m("core")},
		m("plugins/sdk"):              {m("core"), m("ports"), "github.com/hashicorp/go-plugin"},
		m("adapters/mhsm"):            {m("core"), m("ports"), m("internal/secp256k1")},
		m("testdoubles/mhsm-standin"): {m("internal/aeskw")},
		m("cmd/mhsm-standin-user"):    {m("core")},
	}
	if v := violations(allowed); len(v) != 0 {
		t.Errorf("allowed imports refused: %v", v)
	}
}
