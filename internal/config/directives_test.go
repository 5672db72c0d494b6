package config

import (
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// The parser accepts exactly the documented directives: every attribute and
// block of the schemas has a Directives line, every line names something
// the schema accepts, and "required" agrees.
func TestDirectivesMatchTheParser(t *testing.T) {
	schemas := map[string]*hcl.BodySchema{
		"": rootSchema, "backend": backendSchema, "route": routeSchema, "policy": policySchema,
	}
	for _, block := range DirectiveBlocks {
		if schemas[block] == nil {
			t.Fatalf("DirectiveBlocks names %q, which has no schema here", block)
		}
	}
	for block, s := range schemas {
		if !slices.Contains(DirectiveBlocks, block) {
			t.Errorf("block %q is parsed but missing from DirectiveBlocks", block)
		}
		parsed := map[string]string{} // name -> "required", "optional" or "block:<label>"
		for _, a := range s.Attributes {
			parsed[a.Name] = "optional"
			if a.Required {
				parsed[a.Name] = "required"
			}
		}
		for _, b := range s.Blocks {
			parsed[b.Type] = "block:" + strings.Join(b.LabelNames, ",")
		}
		documented := map[string]string{}
		for _, d := range Directives {
			if d.Block != block {
				continue
			}
			switch {
			case d.Kind == "block":
				documented[d.Name] = "block:" + d.Label
			case d.Required:
				documented[d.Name] = "required"
			default:
				documented[d.Name] = "optional"
			}
		}
		for name, how := range parsed {
			if got, ok := documented[name]; !ok {
				t.Errorf("%s accepts %q (%s), which Directives does not document", where0(block), name, how)
			} else if got != how {
				t.Errorf("%s: %q is %s in the parser but %s in Directives", where0(block), name, how, got)
			}
		}
		for name := range documented {
			if _, ok := parsed[name]; !ok {
				t.Errorf("Directives documents %q in %s, which the parser does not accept", name, where0(block))
			}
		}
	}
}

func where0(block string) string {
	if block == "" {
		return "the top level"
	}
	return "a " + block + " block"
}

// Every directive has what the pages print, and its example is HCL that
// sets that directive (a block's example is its opening line).
func TestDirectivesAreComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range Directives {
		key := d.Block + "." + d.Name
		if seen[key] {
			t.Errorf("%s is documented twice", key)
		}
		seen[key] = true
		if d.Meaning == "" || d.Example == "" || d.Kind == "" {
			t.Errorf("%s: meaning, example and kind are all needed", key)
		}
		if d.Kind != "block" && !d.Required && d.Default == "" {
			t.Errorf("%s: an optional attribute needs its default", key)
		}
		src := d.Example
		if d.Kind == "block" {
			src += "\n}"
		}
		f, diags := hclparse.NewParser().ParseHCL([]byte(src+"\n"), key)
		if diags.HasErrors() {
			t.Errorf("%s: example %q is not HCL: %v", key, d.Example, diags)
			continue
		}
		body := f.Body.(*hclsyntax.Body)
		switch {
		case d.Kind == "block" && (len(body.Blocks) != 1 || body.Blocks[0].Type != d.Name):
			t.Errorf("%s: example %q does not open a %s block", key, d.Example, d.Name)
		case d.Kind != "block" && (len(body.Attributes) != 1 || body.Attributes[d.Name] == nil):
			t.Errorf("%s: example %q does not set %s", key, d.Example, d.Name)
		}
	}
}

// docs/CONFIG.md, the long form, mentions every directive as `name`.
func TestConfigDocMentionsEveryDirective(t *testing.T) {
	doc, err := os.ReadFile("../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, d := range Directives {
		if !strings.Contains(string(doc), "`"+d.Name+"`") {
			missing = append(missing, d.Name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("docs/CONFIG.md does not mention %v", missing)
	}
}
