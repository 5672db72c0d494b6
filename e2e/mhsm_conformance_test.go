package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// The Managed HSM seed's flows against the stand-in, for every key type
// the service offers that the seed's commands use: RSA 2048, 3072 and 4096
// (CSR, self-signed certificate, dgst sign and verify, the akv: form, and
// decryption with RSA-OAEP, RSA-OAEP-256 and RSA1_5), EC P-256 and P-256K
// (secp256k1, which the service signs as ES256K) with the same signing
// commands, and AES 128, 192 and 256 (key wrap and unwrap). The rows are
// TestSeedConformance's Managed HSM rows (mhsmSignRows, mhsmDecryptRows,
// mhsmAESRows), with managedhsm: routed by config to the Managed HSM
// backend and a fresh stand-in for each row; every result is checked with
// OpenSSL's default provider alone, and AES wraps against the key bytes
// the stand-in keeps in its test store.
func TestMHSMSeedConformance(t *testing.T) {
	requireTool(t, "openssl")
	requireMHSMBuild(t)
	runSeedRows(t, mhsmStandinRows(), func(t *testing.T) *host {
		h, s := startMHSMHost(t, "")
		standins.Store(h, s)
		t.Cleanup(func() { standins.Delete(h) })
		return h
	})
}

// standins maps each row's host to its stand-in, for the AES checks.
var standins sync.Map // *host -> *standin

func mhsmStandinRows() []seedRow {
	const prefix = "mhsm-standin/"
	var rows []seedRow
	for _, bits := range []int{2048, 3072, 4096} {
		args := []string{"--kty", "RSA-HSM", "--size", fmt.Sprint(bits), "--ops", "sign,decrypt"}
		name := fmt.Sprintf("rsa%d", bits)
		rows = append(rows, mhsmSignRows(prefix, name, args)...)
		rows = append(rows, mhsmDecryptRows(prefix, "-"+name, args)...)
	}
	rows = append(rows, mhsmSignRows(prefix, "ec-p256", []string{"--kty", "EC-HSM", "--curve", "P-256", "--ops", "sign"})...)
	k1 := []string{"--kty", "EC-HSM", "--curve", "P-256K", "--ops", "sign"}
	rows = append(rows, mhsmSignRows(prefix, "ec-p256k", k1)...)
	rows = append(rows,
		// As az accepts the curve: any case.
		seedRow{name: prefix + "dgst-sign-ec-p256k-lowercase-curve", setup: setups(dataFiles, mhsmKey("mykey", "mykey.pub", "--kty", "EC", "--curve", "p-256k", "--ops", "sign")),
			cmd:   `openssl dgst -sha256 -provider akv_provider -provider default -sign "managedhsm:MyHSM:mykey" -out signature.bin data.txt`,
			check: verifiesWith("mykey.pub", "")},
		// The service signs with a P-256K key over SHA-256 only (ES256K).
		seedRow{name: prefix + "refuse-dgst-sign-sha384-ec-p256k", setup: setups(dataFiles, mhsmKey("mykey", "mykey.pub", k1...)),
			cmd:   `openssl dgst -sha384 -provider akv_provider -provider default -sign "managedhsm:MyHSM:mykey" -out signature.bin data.txt`,
			fails: []string{"managedhsm:MyHSM:mykey", "P-256K keys using sha256 only"}},
	)
	rows = append(rows, mhsmAESRows(prefix, func(t *testing.T, h *host, name string) []byte {
		s, ok := standins.Load(h)
		if !ok {
			t.Fatal("no stand-in for this host")
		}
		return standinSecret(t, s.(*standin), name)
	})...)
	return rows
}

// A P-256K key serves TLS 1.2 from s_server through the provider, in both
// activation orders: the group secp256k1 can be named (-groups) although
// our EC key management is fetched first, the handshake's ECDHE is on it,
// and a client with the default provider alone verifies the certificate
// (made by the seed's x509 command) and the handshake signature.
func TestP256KServesTLS12(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:k1", "--kty", "EC", "--curve", "P-256K", "--ops", "sign")
	h.run("", "openssl", "req", "-new", "-x509", "-provider", "akv_provider", "-provider", "default",
		"-key", "managedhsm:MyHSM:k1", "-subj", "/CN=localhost", "-days", "2", "-out", "server.crt")
	if text := h.run("", "openssl", "x509", "-in", "server.crt", "-noout", "-text"); !strings.Contains(text, "ASN1 OID: secp256k1") {
		t.Fatalf("the certificate's key is not on secp256k1:\n%s", text)
	}
	for _, order := range providerOrders {
		port := freePort(t)
		args := append(strings.Fields(order), "-accept", fmt.Sprint(port), "-cert", "server.crt",
			"-key", "managedhsm:MyHSM:k1", "-tls1_2", "-groups", "secp256k1", "-www")
		srv := exec.Command("openssl", append([]string{"s_server"}, args...)...)
		srv.Dir, srv.Env = h.dir, h.env()
		var log bytes.Buffer
		srv.Stdout, srv.Stderr = &log, &log
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		waitPort(t, port, &log)
		out, _ := h.try("GET / HTTP/1.0\r\n\r\n", "openssl", "s_client", "-connect", fmt.Sprintf("127.0.0.1:%d", port),
			"-tls1_2", "-groups", "secp256k1", "-CAfile", "server.crt", "-verify_return_error", "-ign_eof")
		srv.Process.Kill()
		srv.Wait()
		for _, want := range []string{"Server Temp Key: ECDH, secp256k1", "Peer signature type: ECDSA", "Verify return code: 0 (ok)", "HTTP/1.0 200 ok"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: the handshake output lacks %q:\n%s\nserver:\n%s", order, want, out, log.String())
			}
		}
	}
}

// The provider's other paths with a P-256K key: one-shot `pkeyutl -sign`
// of a SHA-256 digest (verified by the default provider alone), `pkey
// -text` naming the group, and verification through the provider in both
// activation orders, with the public key file (a local key of ours when the
// provider comes first) and with the reference itself.
func TestP256KProviderPaths(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:k1", "--kty", "EC", "--curve", "secp256k1", "--ops", "sign,verify")
	h.write("pub.pem", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:k1"))
	h.write("data.txt", "P-256K through the provider\n")
	if text := h.shell("openssl pkey -provider akv_provider -provider default -in managedhsm:MyHSM:k1 -noout -text"); !strings.Contains(text, "ASN1 OID: secp256k1") || !strings.Contains(text, "managedhsm:MyHSM:k1") {
		t.Fatalf("pkey -text:\n%s", text)
	}
	h.shell("openssl dgst -sha256 -binary -out data.hash data.txt")
	h.shell("openssl pkeyutl -sign -provider akv_provider -provider default -inkey managedhsm:MyHSM:k1 -in data.hash -out data.sig")
	if out := h.shell("openssl pkeyutl -verify -pubin -inkey pub.pem -in data.hash -sigfile data.sig"); !strings.Contains(out, "Signature Verified Successfully") {
		t.Fatalf("default provider: %s", out)
	}
	h.shell("openssl dgst -sha256 -provider akv_provider -provider default -sign managedhsm:MyHSM:k1 -out sig.bin data.txt")
	for _, order := range providerOrders {
		for _, key := range []string{"pub.pem", "managedhsm:MyHSM:k1"} {
			if out := h.shell("openssl dgst -sha256 " + order + " -verify " + key + " -signature sig.bin data.txt"); !strings.Contains(out, "Verified OK") {
				t.Fatalf("verify with %s (%s): %s", key, order, out)
			}
		}
	}
	h.write("data.txt", "P-256K through the provider!\n")
	h.fails("openssl dgst -sha256 -provider akv_provider -provider default -verify pub.pem -signature sig.bin data.txt", "Verification failure")
}
