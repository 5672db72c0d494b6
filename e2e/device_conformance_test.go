package e2e

import (
	"strings"
	"testing"
)

// TestSeedConformanceOnDevice runs every Integrated HSM row of the seed
// conformance table (TestSeedConformance) with azihsm:// routed by config
// to the device backend on the emulated device, instead of the simulator.
// The commands and their independent checks are the same rows; where the
// device words a refusal its own way, deviceRefusals says what the row must
// print instead, and deviceGaps names rows that cannot pass on the device
// and why.
func TestSeedConformanceOnDevice(t *testing.T) {
	requireTool(t, "openssl")
	requireBuild(t)
	var rows []seedRow
	for _, r := range conformanceRows() {
		if !strings.HasPrefix(r.name, "azihsm/") {
			continue
		}
		if want, ok := deviceRefusals[r.name]; ok {
			if r.fails == nil {
				r.check = nil // it checked a result that must not exist now
			}
			r.fails = want
		}
		if gap, ok := deviceGaps[r.name]; ok {
			r.knownGap = gap
		}
		rows = append(rows, r)
	}
	runSeedRows(t, rows, func(t *testing.T) *host { h, _ := deviceHost(t); return h })
}

// deviceRefusals: rows that must fail on the device, with what they print:
// refusals whose reason the device words its own way, and commands the
// device cannot do.
var deviceRefusals = map[string][]string{
	"azihsm/refuse-store-foreign-blob": {"./foreign.bin: ", "the masked key does not decode"},
	// As with the upstream provider: the device signs PKCS#1 v1.5 only over
	// the message, and pkeyutl gives it a digest.
	"azihsm/rsa-sign-oneshot-pkcs1-sha256": {"rsa_2048_sign.bin", "PKCS#1 v1.5 only over the whole message", "use openssl dgst -sign, or PSS"},
}

// deviceGaps: rows that cannot pass on the device, and why.
var deviceGaps = map[string]string{
	"azihsm/rand-from-backend":                   "the device API hsmbridge uses has no random-bytes call (RAND stays with the default provider)",
	"azihsm/rsa-verify-oneshot-pkcs1-sha256":     "its signature comes from a one-shot PKCS#1 v1.5 signature, which the device does not make (row rsa-sign-oneshot-pkcs1-sha256 checks the refusal)",
	"azihsm/hkdf-aes-from-key-octets":            "a blob given as key octets is known by the core format's magic; the device's blobs have a layout of their own, so only azihsm.ikm_file names them",
	"azihsm/rsa-decrypt-oaep-sha256-mgf1-sha384": "the emulated device takes MGF1 on the OAEP hash only (strict until the hardware is known to take others)",
	"azihsm/rsa-sign-pss-mgf1-sha1":              "the emulated device takes MGF1 on the PSS hash only (strict until the hardware is known to take others)",
}

// runSeedRows runs each row in parallel against a fresh host from start,
// after its prerequisites (TestSeedConformance on the simulator,
// TestSeedConformanceOnDevice on the device backend).
func runSeedRows(t *testing.T, rows []seedRow, start func(t *testing.T) *host) {
	byName := map[string]*seedRow{}
	for i := range rows {
		byName[rows[i].name] = &rows[i]
	}
	for i := range rows {
		r := &rows[i]
		t.Run(r.name, func(t *testing.T) {
			if r.knownGap != "" {
				t.Skip("known gap: " + r.knownGap)
			}
			t.Parallel()
			h := start(t)
			for _, p := range prerequisites(r, byName) {
				if p.setup != nil {
					p.setup(t, h)
				}
				if out, err := h.try(p.stdin, "sh", "-c", seedCmd(p.cmd)); err != nil {
					t.Fatalf("prerequisite %s: %v\n%s\n%s", p.name, err, seedCmd(p.cmd), out)
				}
			}
			if r.setup != nil {
				r.setup(t, h)
			}
			line := seedCmd(r.cmd)
			if r.fails != nil {
				h.fails(line, r.fails...)
				if r.check != nil {
					r.check(t, h, r, "")
				}
				return
			}
			out, err := h.try(r.stdin, "sh", "-c", line)
			if err != nil {
				t.Fatalf("%s\n%v\n%s", line, err, out)
			}
			if r.check == nil {
				t.Fatal("a row without a check") // every row checks its result
			}
			r.check(t, h, r, out)
		})
	}
}
