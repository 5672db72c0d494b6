package e2e

// Seed coverage: every command of the seed documents is a row of the
// conformance table or is listed, with its reason, as not run
// (conformance_test.go).

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// ---- seed coverage ----------------------------------------------------------

// seedSkipped are the seed commands (by prefix, whitespace collapsed) that
// are not rows; see the file comment for each reason.
var seedSkipped = []string{
	"cd ", "cargo build", "OPENSSL_VERSION=", "curl ", "./Configure ", "make -j", "OPENSSL_DIR=",
	"sudo cp ", "sudo mkdir -p /var/lib/azihsm", "docker ", "openssl <command>", "azihsm://",
	"./", "$ curl ", "export AZURE_CLI_ACCESS_TOKEN=", "az ", "oid=$(az ", "vm_principal=$(az ",
}

// seedDocsDir is where issue 3 keeps the seed documents: ../shared/seeds
// next to the repository (HSMBRIDGE_SEEDS overrides).
func seedDocsDir() string {
	if d := os.Getenv("HSMBRIDGE_SEEDS"); d != "" {
		return d
	}
	return filepath.Join(repoRoot, "..", "shared", "seeds")
}

var spaces = regexp.MustCompile(`\s+`)

func normalizeCommand(s string) string {
	return strings.TrimSpace(spaces.ReplaceAllString(strings.ReplaceAll(s, "\\\n", " "), " "))
}

// seedDocCommands returns the commands of a Markdown document's bash blocks:
// continuation lines joined, comments dropped; in a block that shows a
// prompt ("$ "), only the prompted lines.
func seedDocCommands(doc string) []string {
	var cmds []string
	var block []string
	inBlock, bash := false, false
	flush := func() {
		prompted := false
		for _, l := range block {
			prompted = prompted || strings.HasPrefix(l, "$ ")
		}
		text := strings.Join(block, "\n")
		text = strings.ReplaceAll(text, "\\\n", " ")
		for _, l := range strings.Split(text, "\n") {
			l = strings.TrimSpace(l)
			if i := strings.Index(l, " #"); i >= 0 {
				l = strings.TrimSpace(l[:i])
			}
			if l == "" || strings.HasPrefix(l, "#") || (prompted && !strings.HasPrefix(l, "$ ")) {
				continue
			}
			cmds = append(cmds, normalizeCommand(l))
		}
	}
	for _, l := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			if inBlock && bash {
				flush()
			}
			if !inBlock {
				bash = strings.TrimSpace(l) == "```bash"
				block = nil
			}
			inBlock = !inBlock
			continue
		}
		if inBlock && bash {
			block = append(block, l)
		}
	}
	return cmds
}

// checkSeedCoverage holds the table to the seed documents when they are
// present: every command of theirs is a row marked seed (its text equal
// up to whitespace) or skipped for a stated reason, and every row marked
// seed is one of their commands.
func checkSeedCoverage(t *testing.T, rows []seedRow) {
	t.Helper()
	dir := seedDocsDir()
	docs := []string{"integrated-hsm-provider.md", "managed-hsm-provider.md"}
	inDocs := map[string]bool{}
	for _, d := range docs {
		b, err := os.ReadFile(filepath.Join(dir, d))
		if err != nil {
			t.Logf("seed documents not found (%v): the table's coverage of them is not checked", err)
			return
		}
		for _, c := range seedDocCommands(string(b)) {
			inDocs[c] = true
		}
	}
	seedRows := map[string]bool{}
	for _, r := range rows {
		if r.seed {
			c := normalizeCommand(r.cmd)
			seedRows[c] = true
			if !inDocs[c] {
				t.Errorf("row %s is marked seed, but its command is in no seed document:\n%s", r.name, c)
			}
		}
	}
	n := 0
	for c := range inDocs {
		if seedRows[c] {
			n++
			continue
		}
		skipped := false
		for _, p := range seedSkipped {
			skipped = skipped || strings.HasPrefix(c, p)
		}
		if !skipped {
			t.Errorf("seed command is neither a row nor skipped: %s", c)
		}
	}
	t.Logf("%d distinct seed commands are rows, %d are skipped", n, len(inDocs)-n)
}
