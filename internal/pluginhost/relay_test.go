package pluginhost

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// A relayed plugin line keeps the backend's module and shows the plugin's
// own as plugin_module, at every depth of Named.
func TestRelayedLinesKeepTheBackendsModule(t *testing.T) {
	var out bytes.Buffer
	l := relayed{hclog.New(&hclog.LoggerOptions{Name: "hsmhost", Output: &out, JSONFormat: true, Level: hclog.Trace}).Named("backend").Named("mhsm")}
	args := []any{"@module", "mhsm", "address", "/tmp/x"}
	l.Named("hsmbridge-mhsm").Debug("plugin address", args...)
	if args[0] != "@module" {
		t.Fatal("the caller's arguments were changed")
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, out.Bytes())
	}
	if m["@module"] != "hsmhost.backend.mhsm.hsmbridge-mhsm" || m["plugin_module"] != "mhsm" || m["address"] != "/tmp/x" || m["@level"] != "debug" {
		t.Fatalf("relayed as %v", m)
	}
}
