package contracttests

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestAzihsmDevicePlugin runs the suite against the Integrated HSM device
// plugin over the real plugin boundary, with the emulated device library in
// place of the native one: the plugin's own dlopen binding loads it, as it
// would load libazihsm_api_native.so on a machine with the device. This is
// the run a third party would make: the plugin binary and its settings.
func TestAzihsmDevicePlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a plugin")
	}
	lib, err := filepath.Abs(filepath.Join("..", "build", "emulator", "libazihsm_api_native.so"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lib); err != nil {
		if os.Getenv("HSMBRIDGE_REQUIRE_E2E") != "" {
			t.Fatalf("the emulated device is not built (%v): run make build", err)
		}
		t.Skipf("the emulated device is not built (%v): run make build", err)
	}
	plugin := filepath.Join(t.TempDir(), "hsmbridge-azihsm")
	cmd := exec.Command("go", "build", "-o", plugin, "../plugins/azihsm-device/cmd/hsmbridge-azihsm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the device plugin: %v\n%s", err, b)
	}
	Run(t, Config{
		PluginPath: plugin,
		Settings: map[string]string{
			"library":         lib,
			"credentials_id":  "70fcf730b8764238b8358010ce8a3f76",
			"credentials_pin": "db3dc77fc22e430080d41b31b6f04800",
		},
		Env: []string{"AZIHSM_EMU_STATE_DIR=" + t.TempDir()},
	})
}
