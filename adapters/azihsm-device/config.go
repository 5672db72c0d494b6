package azihsmdevice

import (
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/hsmbridge/hsmbridge/adapters/azihsm-device/devapi"
	"github.com/hsmbridge/hsmbridge/core"
)

// Settings (the backend's `settings` block in hsmhost's config). The seed
// provider's openssl.cnf keys map onto them as docs/INTEGRATED_HSM.md lists.
const (
	SettingLibrary      = "library"         // path of libazihsm_api_native.so
	SettingDevice       = "device"          // partition path; default: the first listed
	SettingAPIRevision  = "api_revision"    // azihsm-api-revision; default: the partition's highest
	SettingCredID       = "credentials_id"  // 32 hex digits (AZIHSM_CREDENTIALS_ID)
	SettingCredPIN      = "credentials_pin" // 32 hex digits (AZIHSM_CREDENTIALS_PIN)
	SettingCredIDFile   = "credentials_id_file"
	SettingCredPINFile  = "credentials_pin_file"
	SettingBMKPath      = "bmk_path"              // azihsm-bmk-path
	SettingMUKPath      = "muk_path"              // azihsm-muk-path
	SettingOBKSource    = "obk_source"            // azihsm-obk-source: tpm or caller
	SettingOBKPath      = "obk_path"              // azihsm-obk-path
	SettingMOBKPath     = "mobk_path"             // azihsm-mobk-path
	SettingPOTASource   = "pota_source"           // azihsm-pota-source: tpm or caller
	SettingPOTAPrivPath = "pota_private_key_path" // azihsm-pota-private-key-path
	SettingPOTAPubPath  = "pota_public_key_path"  // azihsm-pota-public-key-path
	SettingMaxOpenKeys  = "max_open_keys"         // default DefaultMaxOpenKeys
)

// DefaultLibrary is looked up on the dynamic loader's search path.
const DefaultLibrary = "libazihsm_api_native.so"

// Environment variables read when the settings name no credential (give
// them to the plugin with the backend's pass_env).
const (
	EnvCredID  = "AZIHSM_CREDENTIALS_ID"
	EnvCredPIN = "AZIHSM_CREDENTIALS_PIN"
)

type config struct {
	library     string
	device      string
	apiRev      *devapi.APIRev
	creds       devapi.Credentials
	credsSource string
	bmkPath     string
	mukPath     string
	obkSource   devapi.BackupKeySource
	obkPath     string
	mobkPath    string
	potaSource  devapi.EndorsementSource
	potaPriv    string
	potaPub     string
	maxOpenKeys int
}

var knownSettings = map[string]bool{
	SettingLibrary: true, SettingDevice: true, SettingAPIRevision: true, SettingCredID: true, SettingCredPIN: true,
	SettingCredIDFile: true, SettingCredPINFile: true, SettingBMKPath: true, SettingMUKPath: true, SettingOBKSource: true,
	SettingOBKPath: true, SettingMOBKPath: true, SettingPOTASource: true, SettingPOTAPrivPath: true, SettingPOTAPubPath: true,
	SettingMaxOpenKeys: true,
}

func parseConfig(settings map[string]string, getenv func(string) string) (config, error) {
	var unknown []string
	for k := range settings {
		if !knownSettings[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return config{}, core.Errorf(core.KindInvalidInput, "azihsm-device: unknown setting(s) %s", strings.Join(unknown, ", "))
	}
	c := config{library: settings[SettingLibrary], device: settings[SettingDevice],
		bmkPath: settings[SettingBMKPath], mukPath: settings[SettingMUKPath],
		obkPath: settings[SettingOBKPath], mobkPath: settings[SettingMOBKPath],
		potaPriv: settings[SettingPOTAPrivPath], potaPub: settings[SettingPOTAPubPath]}
	if c.library == "" {
		c.library = DefaultLibrary
	}
	c.maxOpenKeys = DefaultMaxOpenKeys
	if v := settings[SettingMaxOpenKeys]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return config{}, core.Errorf(core.KindInvalidInput, "azihsm-device: %s %q is not a positive number", SettingMaxOpenKeys, v)
		}
		c.maxOpenKeys = n
	}
	if r := settings[SettingAPIRevision]; r != "" {
		rev, err := parseRev(r)
		if err != nil {
			return config{}, err
		}
		c.apiRev = &rev
	}
	var err error
	if c.obkSource, err = parseSource(settings[SettingOBKSource], SettingOBKSource); err != nil {
		return config{}, err
	}
	src, err := parseSource(settings[SettingPOTASource], SettingPOTASource)
	if err != nil {
		return config{}, err
	}
	c.potaSource = devapi.EndorsementSource(src)
	if c.obkSource == devapi.SourceCaller && (c.obkPath == "") == (c.mobkPath == "") {
		return config{}, core.Errorf(core.KindInvalidInput, "azihsm-device: obk_source = \"caller\" needs exactly one of obk_path and mobk_path")
	}
	if c.potaSource == devapi.EndorseCaller && (c.potaPriv == "" || c.potaPub == "") {
		return config{}, core.Errorf(core.KindInvalidInput, "azihsm-device: pota_source = \"caller\" needs pota_private_key_path and pota_public_key_path")
	}
	if err := c.readCredentials(settings, getenv); err != nil {
		return config{}, err
	}
	return c, nil
}

func parseRev(s string) (devapi.APIRev, error) {
	maj, min, ok := strings.Cut(s, ".")
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return devapi.APIRev{}, core.Errorf(core.KindInvalidInput, "azihsm-device: api_revision %q is not MAJOR.MINOR", s)
	}
	return devapi.APIRev{Major: uint32(a), Minor: uint32(b)}, nil
}

func parseSource(s, name string) (devapi.BackupKeySource, error) {
	switch strings.ToLower(s) {
	case "", "tpm":
		return devapi.SourceTPM, nil
	case "caller":
		return devapi.SourceCaller, nil
	}
	return 0, core.Errorf(core.KindInvalidInput, "azihsm-device: %s %q is not tpm or caller", name, s)
}

// readCredentials takes the credential id and PIN from the settings, from
// files the settings name, or from the environment, in that order.
func (c *config) readCredentials(settings map[string]string, getenv func(string) string) error {
	id, idFrom, err := credPart(settings[SettingCredID], settings[SettingCredIDFile], getenv(EnvCredID), "credential id", SettingCredID, EnvCredID)
	if err != nil {
		return err
	}
	pin, pinFrom, err := credPart(settings[SettingCredPIN], settings[SettingCredPINFile], getenv(EnvCredPIN), "credential PIN", SettingCredPIN, EnvCredPIN)
	if err != nil {
		return err
	}
	if id == nil || pin == nil {
		return nil // checked when the device is opened, so doctor can say it
	}
	copy(c.creds.ID[:], id)
	copy(c.creds.PIN[:], pin)
	clear(pin)
	c.credsSource = idFrom + " and " + pinFrom
	return nil
}

func credPart(inline, file, env, what, setting, envName string) ([]byte, string, error) {
	var text, from string
	switch {
	case inline != "":
		text, from = inline, "setting "+setting
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, "", core.Errorf(core.KindInvalidInput, "azihsm-device: reading the %s from %s: %v", what, file, err)
		}
		if len(data) == 16 {
			return data, file, nil // the upstream provider's binary form
		}
		text, from = strings.TrimSpace(string(data)), file
	case env != "":
		text, from = env, "$"+envName
	default:
		return nil, "", nil
	}
	b, err := hex.DecodeString(strings.ReplaceAll(text, "-", ""))
	if err != nil || len(b) != 16 {
		return nil, "", core.Errorf(core.KindInvalidInput, "azihsm-device: the %s from %s is not 16 bytes in hex (32 hex digits)", what, from)
	}
	return b, from, nil
}

func (c config) hasCredentials() bool { return c.credsSource != "" }

func (c config) missingCredentials() error {
	return core.Errorf(core.KindUnauthenticated, "azihsm-device: no partition credential: set %s and %s in the backend's settings, "+
		"or pass %s and %s to the plugin (pass_env)", SettingCredID, SettingCredPIN, EnvCredID, EnvCredPIN)
}

func (c config) String() string {
	return fmt.Sprintf("library %s, device %q", c.library, c.device)
}
