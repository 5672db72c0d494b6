package pkcs11backend

import (
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/hsmbridge/hsmbridge/core"
)

type config struct {
	module, tokenLabel, namespace string
	slot                          uint
	haveSlot                      bool
	pin                           string
	sessions                      int
	oaepHashes                    []core.Hash
}

var knownSettings = []string{"module", "token_label", "slot", "pin_file", "pin_env", "pin", "sessions", "namespace", "oaep_hashes"}

func parseConfig(s map[string]string) (config, error) {
	var unknown []string
	for k := range s {
		if !contains(knownSettings, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return config{}, core.Errorf(core.KindInvalidInput, "pkcs11: unknown setting(s) %s (known: %s)", strings.Join(unknown, ", "), strings.Join(knownSettings, ", "))
	}
	c := config{module: s["module"], tokenLabel: s["token_label"], namespace: s["namespace"], sessions: 4}
	if c.module == "" {
		return c, core.Errorf(core.KindInvalidInput, "pkcs11: setting \"module\" (path of the PKCS#11 library) is required")
	}
	if v, ok := s["slot"]; ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return c, core.Errorf(core.KindInvalidInput, "pkcs11: setting \"slot\" %q is not a slot ID", v)
		}
		c.slot, c.haveSlot = uint(n), true
	}
	if c.haveSlot == (c.tokenLabel != "") {
		return c, core.Errorf(core.KindInvalidInput, "pkcs11: give exactly one of the settings \"token_label\" and \"slot\"")
	}
	n := 0
	for _, k := range []string{"pin_file", "pin_env", "pin"} {
		if _, ok := s[k]; ok {
			n++
		}
	}
	if n > 1 {
		return c, core.Errorf(core.KindInvalidInput, "pkcs11: give at most one of pin_file, pin_env and pin")
	}
	switch {
	case s["pin_file"] != "":
		b, err := os.ReadFile(s["pin_file"])
		if err != nil {
			return c, core.Errorf(core.KindInvalidInput, "pkcs11: reading pin_file: %v", err)
		}
		c.pin = strings.TrimRight(string(b), "\r\n")
	case s["pin_env"] != "":
		v, ok := os.LookupEnv(s["pin_env"])
		if !ok {
			return c, core.Errorf(core.KindInvalidInput, "pkcs11: environment variable %s (pin_env) is not set; list it in the backend's pass_env", s["pin_env"])
		}
		c.pin = v
	default:
		c.pin = s["pin"]
	}
	if v, ok := s["sessions"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1024 {
			return c, core.Errorf(core.KindInvalidInput, "pkcs11: setting \"sessions\" %q must be a number from 1 to 1024", v)
		}
		c.sessions = n
	}
	c.oaepHashes = []core.Hash{core.SHA1}
	if v, ok := s["oaep_hashes"]; ok {
		c.oaepHashes = nil
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			h, err := core.ParseHash(f)
			if err != nil {
				return c, core.Errorf(core.KindInvalidInput, "pkcs11: setting \"oaep_hashes\" %q: %v", v, err)
			}
			c.oaepHashes = append(c.oaepHashes, h)
		}
	}
	return c, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
