package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hsmbridge/hsmbridge/adapters/mhsm"
)

// AES keys made outside hsmbridge (as `az keyvault key create --kty oct-HSM`
// makes them): Managed HSM never says an oct key's size, so neither hsmhost
// nor the plugin knows it, yet the seed's wrap and unwrap commands work and
// give what OpenSSL's default provider gives with the key's bytes.
func TestMHSMAESKeyWrapUnknownSize(t *testing.T) {
	requireTool(t, "openssl")
	h, s := startMHSMHost(t, "")
	for _, bits := range []int{128, 192, 256} {
		name := fmt.Sprintf("azaes%d", bits)
		body := s.restCreate(t, name, fmt.Sprintf(`{"kty":"oct-HSM","key_size":%d,"key_ops":["wrapKey","unwrapKey"]}`, bits))
		if strings.Contains(body, "key_size") {
			t.Fatalf("the stand-in's create answer tells the size, the service's does not: %s", body)
		}
	}
	// A key hsmhost made itself, too: after a restart its size is as unknown.
	h.hsmhost("key", "create", "managedhsm:MyHSM:hostaes", "--kty", "oct-HSM", "--size", "192", "--ops", "wrapKey,unwrapKey")
	restartMHSMHost(t, h, s)

	randomFile(t, h, "key.bin", 32)
	randomFile(t, h, "odd.bin", 21)
	for _, tc := range []struct {
		name string
		bits int
	}{{"azaes128", 128}, {"azaes192", 192}, {"azaes256", 256}, {"hostaes", 192}} {
		ref := "managedhsm:MyHSM:" + tc.name
		kek := standinSecret(t, s, tc.name)
		if len(kek) != tc.bits/8 {
			t.Fatalf("%s: the stand-in holds %d bytes", tc.name, len(kek))
		}
		cipher := fmt.Sprintf("id-aes%d-wrap", tc.bits)
		// The seed's commands, no algorithm named.
		h.shell("openssl pkeyutl -encrypt " + withProvider + " -inkey " + ref + " -in key.bin -out wrapped.bin")
		if got, want := readBytes(t, h, "wrapped.bin"), defaultProviderWrap(t, h, cipher, kek, "key.bin", false); !bytes.Equal(got, want) {
			t.Fatalf("%s: HSM wrap %x, default provider %s %x", tc.name, got, cipher, want)
		}
		h.shell("openssl pkeyutl -decrypt " + withProvider + " -inkey " + ref + " -in wrapped.bin -out unwrapped.bin")
		if !bytes.Equal(readBytes(t, h, "unwrapped.bin"), readBytes(t, h, "key.bin")) {
			t.Fatalf("%s: unwrap did not give the key back", tc.name)
		}
		// The sized algorithm of the key's size, and OpenSSL's name for it.
		for _, alg := range []string{fmt.Sprintf("A%dKW", tc.bits), cipher} {
			h.shell("openssl pkeyutl -encrypt " + withProvider + " -inkey " + ref + " -pkeyopt algorithm:" + alg + " -in key.bin -out wrapped2.bin")
			if !bytes.Equal(readBytes(t, h, "wrapped2.bin"), readBytes(t, h, "wrapped.bin")) {
				t.Fatalf("%s: %s wrapped differently from the default", tc.name, alg)
			}
			h.shell("openssl pkeyutl -decrypt " + withProvider + " -inkey " + ref + " -pkeyopt algorithm:" + alg + " -in wrapped2.bin -out unwrapped2.bin")
			if !bytes.Equal(readBytes(t, h, "unwrapped2.bin"), readBytes(t, h, "key.bin")) {
				t.Fatalf("%s: %s unwrap did not give the key back", tc.name, alg)
			}
		}
		// A wrong size is refused (by the service), saying what to use.
		wrong := 128
		if tc.bits == 128 {
			wrong = 256
		}
		out, err := h.try("", "sh", "-c", fmt.Sprintf("openssl pkeyutl -encrypt %s -inkey %s -pkeyopt algorithm:A%dKW -in key.bin -out x.bin", withProvider, ref, wrong))
		if err == nil {
			t.Fatalf("%s: A%dKW with a %d-bit key wrapped:\n%s", tc.name, wrong, tc.bits, out)
		}
		if !strings.Contains(out, "CKM_AES_KEY_WRAP") {
			t.Errorf("%s: the refusal of A%dKW does not name CKM_AES_KEY_WRAP:\n%s", tc.name, wrong, out)
		}
		// RFC 5649 for odd lengths.
		h.shell("openssl pkeyutl -encrypt " + withProvider + " -inkey " + ref + " -pkeyopt algorithm:CKM_AES_KEY_WRAP_PAD -in odd.bin -out wrappedpad.bin")
		if got, want := readBytes(t, h, "wrappedpad.bin"), defaultProviderWrap(t, h, cipher+"-pad", kek, "odd.bin", false); !bytes.Equal(got, want) {
			t.Fatalf("%s: HSM wrap-pad %x, default provider %x", tc.name, got, want)
		}
		h.shell("openssl pkeyutl -decrypt " + withProvider + " -inkey " + ref + " -pkeyopt algorithm:CKM_AES_KEY_WRAP_PAD -in wrappedpad.bin -out unwrappedpad.bin")
		if !bytes.Equal(readBytes(t, h, "unwrappedpad.bin"), readBytes(t, h, "odd.bin")) {
			t.Fatalf("%s: pad unwrap did not give the input back", tc.name)
		}
		// A tampered wrap is refused.
		flipByte(t, h, "wrapped.bin", "tampered.bin", 9)
		if out, err := h.try("", "sh", "-c", "openssl pkeyutl -decrypt "+withProvider+" -inkey "+ref+" -in tampered.bin -out x.bin"); err == nil {
			t.Fatalf("%s: a tampered wrap unwrapped:\n%s", tc.name, out)
		}
	}
}

// restCreate creates a key with the service's REST API as az does
// (POST /keys/{name}/create with a bearer token) and returns the answer.
func (s *standin) restCreate(t *testing.T, name, body string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://myhsm.managedhsm.azure.net/keys/"+name+"/create?api-version=7.6", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	return s.restDo(t, req)
}

func (s *standin) restDo(t *testing.T, req *http.Request) string {
	t.Helper()
	pemCA, err := os.ReadFile(s.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	d := &net.Dialer{Timeout: 5 * time.Second}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, s.addr)
		},
	}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, b)
	}
	if !json.Valid(b) {
		t.Fatalf("%s %s: not JSON: %s", req.Method, req.URL, b)
	}
	return string(b)
}

// restartMHSMHost stops hsmhost and starts it again with the same config,
// socket and token: a process that knows nothing of the keys.
func restartMHSMHost(t *testing.T, h *host, s *standin) {
	t.Helper()
	h.restartHost(t, []string{"--config", filepath.Join(h.dir, "hsmhost.hcl")}, mhsm.EnvStaticToken+"="+s.token)
}
