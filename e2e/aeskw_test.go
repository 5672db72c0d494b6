package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostclient"
)

// AES key wrap with a backend oct key, the way the Managed HSM seed exposes
// it: `openssl pkeyutl -encrypt|-decrypt -inkey managedhsm:MyHSM:myaeskey`.
//
// The independent check: the HSM key cannot be exported, so the test reads
// the simulator's own key file (a test backend keeps oct secrets in its
// state directory) and has OpenSSL's default provider compute the same wrap
// with `openssl enc -id-aesNNN-wrap[-pad]`. AES key wrap is deterministic,
// so the bytes must be identical. The same wrap is also unwrapped through
// hsmhost's own protocol client, which does not go through the provider.

// simulatorSecret returns the raw bytes of an oct key from the simulator's
// state (<state>/simulator/keys/<ns>/<name>/<version>.json, field "secret").
func simulatorSecret(t *testing.T, h *host, ns, name string) []byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(h.state, "simulator", "keys", ns, name, "*.json"))
	if err != nil || len(files) != 1 {
		t.Fatalf("expected one key version file for %s/%s in the simulator state, found %v (%v)", ns, name, files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Secret []byte `json:"secret"`
	}
	if err := json.Unmarshal(b, &rec); err != nil || len(rec.Secret) == 0 {
		t.Fatalf("no secret in %s: %v", files[0], err)
	}
	return rec.Secret
}

func hostClient(t *testing.T, h *host) *hostclient.Client {
	t.Helper()
	c, err := hostclient.Dial(h.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Hello(ctx, "e2e-aeskw"); err != nil {
		t.Fatal(err)
	}
	return c
}

// defaultProviderWrap wraps (or unwraps, decrypt=true) a file with a known
// key using only OpenSSL's default provider.
func defaultProviderWrap(t *testing.T, h *host, cipher string, kek []byte, in string, decrypt bool) []byte {
	t.Helper()
	iv := "A6A6A6A6A6A6A6A6" // RFC 3394 2.2.3.1
	if strings.HasSuffix(cipher, "-pad") {
		iv = "A65959A6" // RFC 5649 3
	}
	d := ""
	if decrypt {
		d = "-d "
	}
	os.Remove(h.path("independent.bin"))
	h.shell(fmt.Sprintf("openssl enc %s-%s -K %s -iv %s -in %s -out independent.bin", d, cipher, hex.EncodeToString(kek), iv, in))
	return readBytes(t, h, "independent.bin")
}

func flipByte(t *testing.T, h *host, from, to string, i int) {
	t.Helper()
	b := readBytes(t, h, from)
	b[i] ^= 0x01
	if err := os.WriteFile(h.path(to), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// unwrapFailure returns the provider's one-sentence unwrap failure from
// OpenSSL's output, without the per-process error-queue prefix.
func unwrapFailure(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "AES key unwrap"); i >= 0 {
			return line[i:]
		}
	}
	t.Fatalf("no AES key unwrap failure in:\n%s", out)
	return ""
}

func TestAESKeyWrapManagedHSMSeed(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	hc := hostClient(t, h)
	ctx := context.Background()

	keys := []struct {
		name string
		bits int
		alg  core.WrapAlgorithm
	}{
		{"aes128", 128, core.WrapA128KW},
		{"aes192", 192, core.WrapA192KW},
		{"myaeskey", 256, core.WrapA256KW}, // the seed's own name
	}
	for _, k := range keys {
		ref := "managedhsm:MyHSM:" + k.name
		h.hsmhost("key", "create", ref, "--kty", "oct", "--size", fmt.Sprint(k.bits), "--ops", "wrapKey,unwrapKey")
		kek := simulatorSecret(t, h, "MyHSM", k.name)
		if len(kek)*8 != k.bits {
			t.Fatalf("%s: simulator secret is %d bytes", ref, len(kek))
		}
		plain := randomFile(t, h, "key.bin", 32)
		cipher := fmt.Sprintf("id-aes%d-wrap", k.bits)

		for _, order := range providerOrders {
			t.Run(fmt.Sprintf("%s/%s", k.name, order), func(t *testing.T) {
				os.Remove(h.path("wrapped.bin"))
				os.Remove(h.path("unwrapped.bin"))
				// The seed's command, verbatim apart from the key name.
				h.shell(fmt.Sprintf("openssl pkeyutl -encrypt %s -inkey %s -in key.bin -out wrapped.bin", order, ref))
				wrapped := readBytes(t, h, "wrapped.bin")
				if len(wrapped) != len(plain)+8 {
					t.Fatalf("wrapped key is %d bytes, want %d", len(wrapped), len(plain)+8)
				}
				if want := defaultProviderWrap(t, h, cipher, kek, "key.bin", false); !bytes.Equal(wrapped, want) {
					t.Fatalf("backend wrap differs from the default provider's %s:\n got %x\nwant %x", cipher, wrapped, want)
				}
				if got := defaultProviderWrap(t, h, cipher, kek, "wrapped.bin", true); !bytes.Equal(got, plain) {
					t.Fatalf("default provider's %s does not unwrap the backend's wrap", cipher)
				}

				h.shell(fmt.Sprintf("openssl pkeyutl -decrypt %s -inkey %s -in wrapped.bin -out unwrapped.bin", order, ref))
				if got := readBytes(t, h, "unwrapped.bin"); !bytes.Equal(got, plain) {
					t.Fatalf("pkeyutl -decrypt gave %x, want %x", got, plain)
				}

				// The host's protocol, without the provider: same bytes both ways.
				got, err := hc.UnwrapKey(ctx, ref, "", wrapped, k.alg)
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("hsmhost UnwrapKey: %x, %v; want %x", got, err, plain)
				}
				again, err := hc.WrapKey(ctx, ref, "", plain, k.alg)
				if err != nil || !bytes.Equal(again, wrapped) {
					t.Fatalf("hsmhost WrapKey: %x, %v; want %x", again, err, wrapped)
				}

				// A tampered wrap fails the integrity check, and says so.
				flipByte(t, h, "wrapped.bin", "tampered.bin", len(wrapped)-1)
				out, err := h.try("", "sh", "-c", fmt.Sprintf("openssl pkeyutl -decrypt %s -inkey %s -in tampered.bin -out bad.bin", order, ref))
				if err == nil {
					t.Fatalf("a tampered wrap was unwrapped:\n%s", out)
				}
				msg := unwrapFailure(t, out)
				if !strings.Contains(out, ref) || !strings.Contains(msg, string(k.alg)) {
					t.Fatalf("unwrap failure does not name %s and %s:\n%s", ref, k.alg, out)
				}
			})
		}
	}
}

// RFC 5649 for inputs RFC 3394 cannot take, and the refusals.
func TestAESKeyWrapPadAndRefusals(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	hc := hostClient(t, h)
	ctx := context.Background()
	const ref = "managedhsm:MyHSM:myaeskey"
	const akv = "-provider akv_provider -provider default"
	h.hsmhost("key", "create", ref, "--kty", "oct", "--size", "256", "--ops", "wrapKey,unwrapKey")
	kek := simulatorSecret(t, h, "MyHSM", "myaeskey")
	plain := randomFile(t, h, "key20.bin", 20)

	// RFC 3394 (the default) refuses 20 bytes before asking the backend,
	// and says what to use instead.
	out, err := h.try("", "sh", "-c", "openssl pkeyutl -encrypt "+akv+" -inkey "+ref+" -in key20.bin -out w.bin")
	if err == nil || !strings.Contains(out, ref) || !strings.Contains(out, "multiples of 8, the input is 20 bytes") ||
		!strings.Contains(out, "algorithm:CKM_AES_KEY_WRAP_PAD") {
		t.Fatalf("RFC 3394 wrap of 20 bytes: err=%v\n%s", err, out)
	}

	for _, order := range providerOrders {
		os.Remove(h.path("w.bin"))
		h.shell(fmt.Sprintf("openssl pkeyutl -encrypt %s -inkey %s -pkeyopt algorithm:CKM_AES_KEY_WRAP_PAD -in key20.bin -out w.bin", order, ref))
		wrapped := readBytes(t, h, "w.bin")
		if len(wrapped) != (len(plain)+7)/8*8+8 {
			t.Fatalf("RFC 5649 wrap of 20 bytes is %d bytes, want 32", len(wrapped))
		}
		if want := defaultProviderWrap(t, h, "id-aes256-wrap-pad", kek, "key20.bin", false); !bytes.Equal(wrapped, want) {
			t.Fatalf("backend RFC 5649 wrap differs from id-aes256-wrap-pad:\n got %x\nwant %x", wrapped, want)
		}
		h.shell(fmt.Sprintf("openssl pkeyutl -decrypt %s -inkey %s -pkeyopt algorithm:CKM_AES_KEY_WRAP_PAD -in w.bin -out u.bin", order, ref))
		if got := readBytes(t, h, "u.bin"); !bytes.Equal(got, plain) {
			t.Fatalf("RFC 5649 unwrap gave %x, want %x", got, plain)
		}
		if got, err := hc.UnwrapKey(ctx, ref, "", wrapped, core.WrapAESKeyWrapPad); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("hsmhost UnwrapKey CKM_AES_KEY_WRAP_PAD: %x, %v", got, err)
		}
	}

	// OpenSSL's cipher name works as an alias.
	h.shell("openssl pkeyutl -encrypt " + akv + " -inkey " + ref + " -pkeyopt algorithm:id-aes256-wrap-pad -in key20.bin -out w2.bin")
	if !bytes.Equal(readBytes(t, h, "w2.bin"), readBytes(t, h, "w.bin")) {
		t.Fatal("algorithm:id-aes256-wrap-pad differs from CKM_AES_KEY_WRAP_PAD")
	}

	// Unwrap failures have one message whatever went wrong: a tampered
	// wrap and a wrap made with another key read the same.
	h.hsmhost("key", "create", "managedhsm:MyHSM:otherkey", "--kty", "oct", "--size", "256", "--ops", "wrapKey,unwrapKey")
	randomFile(t, h, "key32.bin", 32)
	h.shell("openssl pkeyutl -encrypt " + akv + " -inkey " + ref + " -in key32.bin -out w32.bin")
	h.shell("openssl pkeyutl -encrypt " + akv + " -inkey managedhsm:MyHSM:otherkey -in key32.bin -out other.bin")
	flipByte(t, h, "w32.bin", "tampered.bin", 3)
	var msgs []string
	for _, f := range []string{"tampered.bin", "other.bin"} {
		out, err := h.try("", "sh", "-c", "openssl pkeyutl -decrypt "+akv+" -inkey "+ref+" -in "+f+" -out bad.bin")
		if err == nil {
			t.Fatalf("%s was unwrapped:\n%s", f, out)
		}
		msgs = append(msgs, unwrapFailure(t, out))
	}
	if msgs[0] != msgs[1] {
		t.Fatalf("unwrap failures differ:\n%s\n%s", msgs[0], msgs[1])
	}

	// Refusals, each with the reference and the cause.
	h.hsmhost("key", "create", "managedhsm:MyHSM:myrsakey", "--kty", "RSA", "--size", "2048", "--ops", "sign,decrypt,wrapKey,unwrapKey")
	h.hsmhost("key", "create", "managedhsm:MyHSM:wraponly", "--kty", "oct", "--size", "256", "--ops", "wrapKey")
	refusals := []struct {
		name, cmd string
		want      []string
	}{
		{"A128KW with a 256-bit key",
			"openssl pkeyutl -encrypt " + akv + " -inkey " + ref + " -pkeyopt algorithm:A128KW -in key32.bin -out r.bin",
			[]string{ref, "A128KW needs a 128-bit AES key, this key has 256 bits"}},
		{"unknown algorithm",
			"openssl pkeyutl -encrypt " + akv + " -inkey " + ref + " -pkeyopt algorithm:A512KW -in key32.bin -out r.bin",
			[]string{`unknown AES key-wrap algorithm "A512KW"`}},
		{"RFC 3394 unwrap of a length that is no wrap",
			"openssl pkeyutl -decrypt " + akv + " -inkey " + ref + " -in key20.bin -out r.bin",
			[]string{ref, "20 bytes cannot be A256KW output"}},
		// The RSA asym cipher has no such option: OpenSSL refuses to set it.
		{"RSA key with the AES option",
			"openssl pkeyutl -encrypt " + akv + " -inkey managedhsm:MyHSM:myrsakey -pkeyopt algorithm:CKM_AES_KEY_WRAP_PAD -in key32.bin -out r.bin",
			[]string{`Can't set parameter "algorithm:CKM_AES_KEY_WRAP_PAD"`}},
		{"key without unwrapKey",
			"openssl pkeyutl -decrypt " + akv + " -inkey managedhsm:MyHSM:wraponly -in wo.bin -out r.bin",
			[]string{"managedhsm:MyHSM:wraponly", "does not allow unwrapKey"}},
	}
	// wrapKey alone still wraps, and correctly.
	h.shell("openssl pkeyutl -encrypt " + akv + " -inkey managedhsm:MyHSM:wraponly -in key32.bin -out wo.bin")
	if want := defaultProviderWrap(t, h, "id-aes256-wrap", simulatorSecret(t, h, "MyHSM", "wraponly"), "key32.bin", false); !bytes.Equal(readBytes(t, h, "wo.bin"), want) {
		t.Fatal("wrap with a wrapKey-only key differs from the default provider's")
	}
	for _, r := range refusals {
		os.Remove(h.path("r.bin"))
		out, err := h.try("", "sh", "-c", r.cmd)
		if err == nil {
			t.Errorf("%s: succeeded:\n%s", r.name, out)
			continue
		}
		for _, w := range r.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", r.name, w, out)
			}
		}
		if b, _ := os.ReadFile(h.path("r.bin")); len(b) != 0 {
			t.Errorf("%s: wrote %d bytes of output", r.name, len(b))
		}
	}
}
