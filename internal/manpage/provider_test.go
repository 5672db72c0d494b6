package manpage

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const providerDir = "../../adapters/openssl/provider"

// providerSource is every .c and .h file of the provider, concatenated.
func providerSource(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, pat := range []string{"*.c", "*.h"} {
		files, err := filepath.Glob(filepath.Join(providerDir, pat))
		if err != nil || len(files) == 0 {
			t.Fatalf("no provider sources in %s (%v)", providerDir, err)
		}
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(src)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func literals(src string, re *regexp.Regexp) map[string]bool {
	found := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(src, -1) {
		found[m[1]] = true
	}
	return found
}

// compare reports names found in the code but not documented, and the
// reverse.
func compare(t *testing.T, what string, inCode map[string]bool, documented map[string]bool) {
	t.Helper()
	var undocumented, absent []string
	for n := range inCode {
		if !documented[n] {
			undocumented = append(undocumented, n)
		}
	}
	for n := range documented {
		if !inCode[n] {
			absent = append(absent, n)
		}
	}
	sort.Strings(undocumented)
	sort.Strings(absent)
	if len(undocumented) > 0 {
		t.Errorf("the provider reads %s %v, which internal/manpage/provider.go does not document", what, undocumented)
	}
	if len(absent) > 0 {
		t.Errorf("internal/manpage/provider.go documents %s %v, which the provider's C code does not have", what, absent)
	}
}

// The provider's own parameter names are its string literals in these
// forms: azihsm.*, hsmbridge-* (context parameters), and the names of the
// masked-key KDFs (output_file, derived_key_*). hsmbridge-keyref is the
// decoder's structure name, not a parameter.
var paramLiteral = regexp.MustCompile(`"(azihsm\.[a-z_]+|hsmbridge-[a-z-]+|output_file|derived_key_[a-z]+)"`)

// ... and the names the code gives its parameters with #define.
var paramDefine = regexp.MustCompile(`#define\s+(?:\w*_PARAM_\w+|P_\w+)\s+"([^"]+)"`)

func TestEveryProviderParameterIsDocumented(t *testing.T) {
	src := providerSource(t)
	inCode := literals(src, paramLiteral)
	for n := range literals(src, paramDefine) {
		inCode[n] = true
	}
	delete(inCode, "hsmbridge-keyref")
	documented := map[string]bool{}
	for _, p := range Params {
		documented[p.Name] = true
		if p.Standard { // OpenSSL's name, which the code may spell with OpenSSL's macro
			inCode[p.Name] = true
		}
	}
	compare(t, "parameters", inCode, documented)
}

// openssl.cnf settings are the core parameters OSSL_provider_init asks for.
var settingLiteral = regexp.MustCompile(`OSSL_PARAM_construct_utf8_ptr\(\s*"([a-z_]+)"`)

func TestEveryOpensslCnfSettingIsDocumented(t *testing.T) {
	inCode := literals(providerSource(t), settingLiteral)
	documented := map[string]bool{}
	for _, s := range Settings {
		documented[s.Name] = true
	}
	compare(t, "openssl.cnf settings", inCode, documented)
}

var getenvCall = regexp.MustCompile(`getenv\(\s*"([A-Z_0-9]+)"\s*\)`)

func TestEveryEnvironmentVariableIsDocumented(t *testing.T) {
	inCode := literals(providerSource(t), getenvCall)
	documented := map[string]bool{}
	for _, e := range ProviderEnv {
		if !e.OpenSSL {
			documented[e.Name] = true
		}
	}
	compare(t, "environment variables", inCode, documented)
}

// The store's schemes are the first fields of provider.c's store table.
var storeScheme = regexp.MustCompile(`\{\s*"([a-z][a-z0-9]*)",\s*NULL,\s*hb_store_functions`)

func TestEveryStoreSchemeIsDocumented(t *testing.T) {
	inCode := literals(providerSource(t), storeScheme)
	if len(inCode) == 0 {
		t.Fatal("found no store table in provider.c: update storeScheme")
	}
	documented := map[string]bool{}
	for _, r := range RefForms {
		if r.Scheme != "" {
			documented[r.Scheme] = true
			if !strings.HasPrefix(r.Form, r.Scheme+":") || !strings.HasPrefix(r.Example, r.Scheme+":") {
				t.Errorf("%s: form %q and example %q should start with the scheme", r.Scheme, r.Form, r.Example)
			}
		}
	}
	compare(t, "store schemes", inCode, documented)
}

// The load names are the module files the build makes.
func TestLoadNamesAreTheBuiltModules(t *testing.T) {
	mk, err := os.ReadFile("../../adapters/openssl/Makefile.inc")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^HB_OSSL_NAMES\s*:=\s*(.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("no HB_OSSL_NAMES in adapters/openssl/Makefile.inc")
	}
	inBuild := map[string]bool{}
	for _, n := range strings.Fields(string(m[1])) {
		inBuild[n] = true
	}
	documented := map[string]bool{}
	for _, n := range LoadNames {
		documented[n.Name] = true
	}
	compare(t, "module names", inBuild, documented)
}

// The installed snippet is CnfSnippet with comments, and it names every
// load name and only documented settings.
func TestSnippetFileIsTheDocumentedOne(t *testing.T) {
	file, err := os.ReadFile("../../packaging/openssl-hsmbridge.cnf")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := withoutComments(string(file)), withoutComments(CnfSnippet); got != want {
		t.Errorf("packaging/openssl-hsmbridge.cnf without its comments:\n%s\nwant (CnfSnippet):\n%s", got, want)
	}
	names := map[string]bool{}
	for _, s := range Settings {
		names[s.Name] = true
	}
	for _, l := range strings.Split(CnfSnippet, "\n") {
		if k, _, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, "hsmbridge_") && !names[strings.TrimSpace(k)] {
			t.Errorf("CnfSnippet sets %s, which is not a setting", k)
		}
	}
	for _, n := range LoadNames {
		if !strings.Contains(CnfSnippet, "\n"+n.Name+" = ") {
			t.Errorf("CnfSnippet does not declare %s", n.Name)
		}
	}
}

func withoutComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// The page shows every table row.
func TestHsmbridge7ShowsEveryRow(t *testing.T) {
	page := Hsmbridge7("")
	var names []string
	for _, p := range Params {
		names = append(names, p.Name)
	}
	for _, s := range Settings {
		names = append(names, s.Name)
	}
	for _, e := range ProviderEnv {
		names = append(names, e.Name)
	}
	for _, r := range RefForms {
		names = append(names, r.Form)
	}
	for _, n := range LoadNames {
		names = append(names, n.Name+".so", n.Property)
	}
	for _, n := range names {
		if !strings.Contains(page, Escape(n)) {
			t.Errorf("hsmbridge(7) does not show %q", n)
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"--config":       `\-\-config`,
		`a\b`:            `a\eb`,
		".include x":     `\&.include x`,
		"'quoted":        `\&'quoted`,
		"use `hsmhost`.": "use " + `\fBhsmhost\fR.`,
	} {
		got := Inline(in)
		if got != want {
			t.Errorf("Inline(%q) = %q, want %q", in, got, want)
		}
	}
}
