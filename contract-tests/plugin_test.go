package contracttests

import (
	"flag"
	"strings"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
)

// Flags for running the suite against any plugin:
//
//	go test ./contract-tests -run TestPlugin -plugin /path/to/plugin -settings k=v,k2=v2
var (
	pluginFlag    = flag.String("plugin", "", "backend plugin binary to run the contract suite against")
	settingsFlag  = flag.String("settings", "", "comma-separated k=v settings passed to the plugin's Configure")
	envFlag       = flag.String("env", "", "comma-separated K=V environment variables for the plugin")
	namespaceFlag = flag.String("namespace", "", "namespace to create test keys in (default contract-tests)")
	keysFlag      = flag.String("keys", "", "comma-separated existing keys namespace/name[@version] to test with as well")
)

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseSettings(t *testing.T, s string) map[string]string {
	m := map[string]string{}
	for _, kv := range splitList(s) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			t.Fatalf("-settings: %q is not k=v", kv)
		}
		m[k] = v
	}
	return m
}

func parseKeys(t *testing.T, s string) []core.KeyID {
	var ids []core.KeyID
	for _, k := range splitList(s) {
		nsName, version, _ := strings.Cut(k, "@")
		ns, name, ok := strings.Cut(nsName, "/")
		if !ok || ns == "" || name == "" {
			t.Fatalf("-keys: %q is not namespace/name[@version]", k)
		}
		ids = append(ids, core.KeyID{Namespace: ns, Name: name, Version: version})
	}
	return ids
}

// TestPlugin runs the suite against the plugin named by -plugin.
func TestPlugin(t *testing.T) {
	if *pluginFlag == "" {
		t.Skip("no -plugin given")
	}
	Run(t, Config{
		PluginPath: *pluginFlag,
		Settings:   parseSettings(t, *settingsFlag),
		Env:        splitList(*envFlag),
		Namespace:  *namespaceFlag,
		Keys:       parseKeys(t, *keysFlag),
	})
}
