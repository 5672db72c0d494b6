package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The Integrated HSM device backend end to end: hsmhost with azihsm://
// routed by config (examples/config/azihsm-emulator.hcl) to the device
// plugin, which loads the emulated device library through its dlopen
// binding, and the seed's openssl commands.

// deviceHost starts hsmhost on the device backend with an emulated device
// of its own; it returns the host and the emulator's state directory.
func deviceHost(t *testing.T) (*host, string) {
	t.Helper()
	lib := filepath.Join(buildDir, "emulator", "libazihsm_api_native.so")
	plugin := filepath.Join(buildDir, "plugins", "hsmbridge-azihsm")
	for _, p := range []string{lib, plugin} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("HSMBRIDGE_REQUIRE_E2E") != "" {
				t.Fatalf("%s is missing: run make build", p)
			}
			t.Skipf("%s is missing: run make build", p)
		}
	}
	tmpl, err := os.ReadFile(filepath.Join(repoRoot, "examples", "config", "azihsm-emulator.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("@PLUGIN_DIR@", filepath.Join(buildDir, "plugins"), "@EMU_LIB@", lib).Replace(string(tmpl))
	emu := t.TempDir()
	h := startHostWithEnv(t, cfg, []string{"AZIHSM_EMU_STATE_DIR=" + emu, "AZIHSM_EMU_LEAK_REPORT=" + filepath.Join(emu, "leaks")})
	// The emulated device's blobs (testdoubles/azihsm-emulator/masked.c).
	h.backend, h.blobMagic, h.blobSessionFlag, h.aesKeysWrap = "azihsm", "AZEM", 7, false
	h.another = func(t *testing.T) *host { o, _ := deviceHost(t); return o }
	return h, emu
}

const prov = `-propquery "?provider=azihsm" -provider default -provider azihsm_provider`

func (h *host) genEC(file, curve, usage string) {
	h.t.Helper()
	h.shell(`openssl genpkey ` + prov + ` -algorithm EC -pkeyopt group:` + curve + ` -pkeyopt azihsm.key_usage:` + usage +
		` -pkeyopt azihsm.masked_key:./` + file + ` -outform DER -out /dev/null`)
}

// signVerified signs data.bin with the masked key file and verifies the
// signature with the default provider alone.
func (h *host) signVerified(file string) {
	h.t.Helper()
	h.shell(`openssl dgst -sha256 ` + prov + ` -sign "azihsm://./` + file + `;type=ec" -out s.sig data.bin`)
	h.shell(`openssl pkey ` + prov + ` -in "azihsm://./` + file + `;type=ec" -pubout -out pub.pem`)
	if out := h.shell(`openssl dgst -sha256 -verify pub.pem -signature s.sig data.bin`); !strings.Contains(out, "Verified OK") {
		h.t.Fatalf("the device's signature does not verify: %s", out)
	}
}

func TestDeviceFaultsAreSurvivedUnderOpenSSL(t *testing.T) {
	requireTool(t, "openssl")
	h, emu := deviceHost(t)
	h.write("data.bin", strings.Repeat("data ", 1000))
	h.genEC("k.bin", "P-256", "digitalSignature")
	faults := filepath.Join(emu, "faults")
	for _, fault := range []string{"live_migration", "io_aborted", "session_needs_renegotiation", "device_not_ready"} {
		if err := os.WriteFile(faults, []byte(fault+" 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		h.signVerified("k.bin") // recovered inside the backend: reopened, reloaded, retried
	}
	os.WriteFile(faults, []byte("io_aborted -1\n"), 0o644)
	h.fails(`openssl dgst -sha256 `+prov+` -sign "azihsm://./k.bin;type=ec" -out x.sig data.bin`, "./k.bin", "persisted")
	os.WriteFile(faults, []byte("io_aborted 0\n"), 0o644)
	h.signVerified("k.bin")
}

// The seed's flows many times over, then the device is asked how many
// handles are open: none but those the backend holds (and no streaming
// context), and after hsmhost stops, none at all.
func TestDeviceLeavesNoHandleOpen(t *testing.T) {
	requireTool(t, "openssl")
	h, emu := deviceHost(t)
	h.write("data.bin", strings.Repeat("data ", 1000))
	h.shell(`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform DER -out ext.der 2>/dev/null`)
	h.shell(`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out peer.pem 2>/dev/null && openssl pkey -in peer.pem -pubout -out peer_pub.pem`)
	for i := 0; i < 5; i++ {
		h.genEC("ec.bin", "P-256", "digitalSignature")
		h.signVerified("ec.bin")
		h.shell(`openssl genpkey ` + prov + ` -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt azihsm.input_key:./ext.der -pkeyopt azihsm.masked_key:./rsa.bin -outform DER -out /dev/null`)
		h.shell(`openssl dgst -sha256 ` + prov + ` -sign "azihsm://./rsa.bin;type=rsa" -out r.sig data.bin`)
		h.shell(`openssl dgst -sha256 ` + prov + ` -sigopt rsa_padding_mode:pss -sign "azihsm://./rsa.bin;type=rsa" -out p.sig data.bin`)
		h.genEC("kx.bin", "P-384", "keyAgreement")
		h.shell(`openssl pkeyutl -derive ` + prov + ` -inkey "azihsm://./kx.bin;type=ec" -peerkey peer_pub.pem -pkeyopt output_file:ss.bin`)
		h.shell(`openssl kdf ` + prov + ` -keylen 4096 -kdfopt digest:SHA384 -kdfopt azihsm.ikm_file:./ss.bin -kdfopt output_file:./hk.bin -kdfopt derived_key_type:hmac -kdfopt derived_key_bits:384 -binary -out /dev/null HKDF`)
		h.shell(`openssl mac ` + prov + ` -macopt digest:SHA384 -macopt azihsm.key_file:./hk.bin -in data.bin HMAC`)
		h.shell(`openssl genpkey ` + prov + ` -algorithm EC -pkeyopt group:P-256 -pkeyopt azihsm.session:true -pkeyopt azihsm.masked_key:./sess.bin -outform DER -out /dev/null`)
	}
	out := h.hsmhost("doctor", "azihsm")
	m := regexp.MustCompile(`ok    device handles: (.*)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("doctor did not report the device's handles as held by the backend:\n%s", out)
	}
	t.Logf("after the flows: %s", m[1])
	if !strings.Contains(m[1], "0 streaming context(s)") {
		t.Fatalf("streaming contexts left open: %s", m[1])
	}
	h.stop()
	report, err := os.ReadFile(filepath.Join(emu, "leaks"))
	if err != nil {
		t.Fatalf("the emulated device wrote no report at exit (did the plugin exit cleanly?): %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(report)), "\n") {
		if !strings.HasSuffix(line, "partitions=0 sessions=0 keys=0 contexts=0") {
			t.Fatalf("handles left open when the plugin exited: %s", line)
		}
	}
}

func TestDevicePluginWithoutItsLibrarySaysWhereItLooked(t *testing.T) {
	requireBuild(t)
	plugin := filepath.Join(buildDir, "plugins", "hsmbridge-azihsm")
	if _, err := os.Stat(plugin); err != nil {
		t.Skip(err)
	}
	cfg := `backend "azihsm" {
  plugin   = "` + plugin + `"
  settings = { library = "/nonexistent/libazihsm_api_native.so", credentials_id = "70fcf730b8764238b8358010ce8a3f76", credentials_pin = "db3dc77fc22e430080d41b31b6f04800" }
}
route {
  prefix  = "azihsm://"
  backend = "azihsm"
}
`
	h := startHost(t, cfg)
	h.write("data.bin", "x")
	h.fails(`openssl genpkey `+prov+` -algorithm EC -pkeyopt group:P-256 -pkeyopt azihsm.masked_key:./k.bin -outform DER -out /dev/null`,
		"/nonexistent/libazihsm_api_native.so")
	out, err := h.try("", hsmhostBin, "doctor", "azihsm")
	if err == nil || !strings.Contains(out, "FAIL") || !strings.Contains(out, "/nonexistent/libazihsm_api_native.so") {
		t.Fatalf("doctor without the library: %v\n%s", err, out)
	}
	h.stop()
	if log := h.log.String(); !strings.Contains(log, "[WARN]") || !strings.Contains(log, "device is not available") ||
		!strings.Contains(log, "/nonexistent/libazihsm_api_native.so") {
		t.Fatalf("hsmhost's log does not warn at start-up that the library is missing and where it looked:\n%s", log)
	}
}
