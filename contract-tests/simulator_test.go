package contracttests

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/plugins/simulator"
)

// simulatorPlugin builds the simulator plugin into a temporary directory,
// or, without a Go toolchain, uses build/plugins/hsmbridge-simulator.
func simulatorPlugin(t *testing.T) string {
	if _, err := exec.LookPath("go"); err != nil {
		p, err := filepath.Abs(filepath.Join("..", "build", "plugins", "hsmbridge-simulator"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); err != nil {
			t.Skipf("no go command to build the simulator plugin and no %s: %v", p, err)
		}
		return p
	}
	out := filepath.Join(t.TempDir(), "hsmbridge-simulator")
	cmd := exec.Command("go", "build", "-o", out, "../plugins/simulator/cmd/hsmbridge-simulator")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the simulator plugin: %v\n%s", err, b)
	}
	return out
}

// TestSimulatorPlugin runs the suite against the simulator as a plugin, the
// way hsmhost runs it.
func TestSimulatorPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a plugin")
	}
	Run(t, Config{
		PluginPath: simulatorPlugin(t),
		Settings:   map[string]string{simulator.SettingStateDir: t.TempDir()},
	})
}

// inProcess gives the simulator the Description the suite asks for.
type inProcess struct{ *simulator.Backend }

func (b inProcess) Description() core.BackendDescription { return b.Describe() }

// TestSimulatorInProcess runs the suite on the simulator without a plugin
// boundary, so that a failure can be told apart from a transport problem.
func TestSimulatorInProcess(t *testing.T) {
	b, err := simulator.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	RunBackend(t, inProcess{b}, Config{})
}
