package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RSA decryption in the backend and encryption with the public key: the
// Managed HSM seed's `openssl pkeyutl -decrypt -inkey managedhsm:V:K` for
// Key Vault's RSA-OAEP (SHA-1), RSA-OAEP-256 and RSA1_5 and the OAEP
// variants the Integrated HSM seed documents. Ciphertexts are made by
// OpenSSL's default provider alone (or by Go's crypto/rsa), never by our
// code path, and the plaintext that comes back is compared byte for byte.

// providerOrders are both activation orders; OpenSSL must pick our asym
// cipher for a backend key in each.
var providerOrders = []string{
	"-provider akv_provider -provider default",
	"-provider default -provider akv_provider",
}

var encryptionSchemes = []struct{ name, opts string }{
	{"RSA-OAEP (SHA-1 by default)", "-pkeyopt rsa_padding_mode:oaep"},
	{"RSA-OAEP sha1", "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1"},
	{"RSA-OAEP-256", "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256"},
	{"OAEP sha384", "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha384 -pkeyopt rsa_mgf1_md:sha384"},
	{"OAEP sha512", "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha512"},
	{"OAEP sha256, MGF1 sha1", "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha1"},
	{"OAEP sha256 with label", "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_oaep_label:68736d627269646765"},
	{"RSA1_5", "-pkeyopt rsa_padding_mode:pkcs1"},
	{"default padding (PKCS#1 v1.5)", ""},
}

func randomFile(t *testing.T, h *host, name string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.path(name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func readBytes(t *testing.T, h *host, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(h.path(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecryptManagedHSMSeed(t *testing.T) {
	requireTool(t, "openssl")
	decryptSeedFlows(t, startHost(t, ""), encryptionSchemes, "go label")
}

// decryptSeedFlows creates two RSA keys (3072 and 2048 bits) in h's backend,
// encrypts with each of schemes using the default provider alone, and
// decrypts with `openssl pkeyutl -decrypt -inkey managedhsm:MyHSM:<key>` in
// both provider orders; it also decrypts a Go crypto/rsa OAEP-SHA256
// ciphertext made with goLabel ("" for none).
func decryptSeedFlows(t *testing.T, h *host, schemes []struct{ name, opts string }, goLabel string) {
	t.Helper()
	keys := map[string]string{"myrsakey": "3072", "rsa2048": "2048"}
	for name, size := range keys {
		h.hsmhost("key", "create", "managedhsm:MyHSM:"+name, "--kty", "RSA", "--size", size, "--ops", "sign,decrypt")
		h.write(name+".pub", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:"+name))
	}
	plain := randomFile(t, h, "plaintext.bin", 32)

	for name := range keys {
		for _, s := range schemes {
			h.shell(fmt.Sprintf("openssl pkeyutl -encrypt -pubin -inkey %s.pub %s -in plaintext.bin -out ciphertext.bin", name, s.opts))
			for _, order := range providerOrders {
				os.Remove(h.path("decrypted.bin"))
				h.shell(fmt.Sprintf("openssl pkeyutl -decrypt %s -inkey managedhsm:MyHSM:%s %s -in ciphertext.bin -out decrypted.bin", order, name, s.opts))
				if got := readBytes(t, h, "decrypted.bin"); !bytes.Equal(got, plain) {
					t.Errorf("%s, %s, %s: decrypted %x, want %x", name, s.name, order, got, plain)
				}
			}
		}
	}

	// The check can fail: a ciphertext decrypted with another OAEP digest
	// than it was made with is refused, not turned into garbage.
	h.shell("openssl pkeyutl -encrypt -pubin -inkey myrsakey.pub -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in plaintext.bin -out ciphertext.bin")
	if out, err := h.try("", "sh", "-c", "openssl pkeyutl -decrypt "+withProvider+" -inkey managedhsm:MyHSM:myrsakey -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -in ciphertext.bin -out decrypted.bin"); err == nil {
		t.Errorf("an OAEP-SHA256 ciphertext decrypted as OAEP-SHA1: %s", out)
	}

	// A ciphertext made by Go's crypto/rsa, not by OpenSSL at all.
	block, _ := pem.Decode([]byte(h.read("myrsakey.pub")))
	if block == nil {
		t.Fatal("hsmhost key pubkey did not print PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.(*rsa.PublicKey), plain, []byte(goLabel))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.path("go.bin"), ct, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"pkeyutl", "-decrypt", "-provider", "akv_provider", "-provider", "default",
		"-inkey", "managedhsm:MyHSM:myrsakey", "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256"}
	if goLabel != "" {
		args = append(args, "-pkeyopt", "rsa_oaep_label:"+fmt.Sprintf("%x", goLabel))
	}
	got := h.run("", "openssl", append(args, "-in", "go.bin")...)
	if got != string(plain) {
		t.Errorf("Go's OAEP-SHA256 ciphertext decrypted to %x, want %x", got, plain)
	}
}

// Encryption through the provider with a backend key runs locally on the
// public key (no host request), is randomized, and the backend decrypts it.
// With an imported key the default provider also decrypts it, with the
// private key it never saw through us.
func TestDecryptRoundTripEncryptThroughProvider(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.shell("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out local.pem")
	h.hsmhost("key", "import", "managedhsm:MyHSM:imported", "--in", h.path("local.pem"), "--ops", "encrypt,decrypt")
	h.hsmhost("key", "create", "managedhsm:MyHSM:myrsakey", "--kty", "RSA", "--size", "3072", "--ops", "sign,decrypt")
	plain := randomFile(t, h, "plaintext.bin", 48)

	for _, key := range []string{"myrsakey", "imported"} {
		for _, s := range encryptionSchemes {
			for _, order := range providerOrders {
				var cts [][]byte
				for i := 0; i < 2; i++ {
					out := h.run("", "sh", "-c", fmt.Sprintf("HSMBRIDGE_DEBUG=1 openssl pkeyutl -encrypt %s -inkey managedhsm:MyHSM:%s %s -in plaintext.bin -out ct%d.bin", order, key, s.opts, i))
					if !strings.Contains(out, "encrypt locally with the public key of managedhsm:MyHSM:"+key) || strings.Contains(out, "decrypt managedhsm:") {
						t.Errorf("%s %s: encryption was not local:\n%s", key, s.name, out)
					}
					cts = append(cts, readBytes(t, h, fmt.Sprintf("ct%d.bin", i)))
				}
				if bytes.Equal(cts[0], cts[1]) {
					t.Errorf("%s %s: two encryptions gave the same ciphertext", key, s.name)
				}
				os.Remove(h.path("decrypted.bin"))
				h.shell(fmt.Sprintf("openssl pkeyutl -decrypt %s -inkey managedhsm:MyHSM:%s %s -in ct1.bin -out decrypted.bin", order, key, s.opts))
				if got := readBytes(t, h, "decrypted.bin"); !bytes.Equal(got, plain) {
					t.Errorf("%s %s %s: HSM decrypted %x, want %x", key, s.name, order, got, plain)
				}
				if key == "imported" {
					got := h.run("", "sh", "-c", fmt.Sprintf("openssl pkeyutl -decrypt -inkey local.pem %s -in ct0.bin", s.opts))
					if got != string(plain) {
						t.Errorf("%s: default provider decrypted our ciphertext to %x, want %x", s.name, got, plain)
					}
				}
			}
		}
	}
}

// errorLine is the first line of out that mentions want, from ":error:" on
// (the prefix is a thread id).
func errorLine(out, want string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, want) {
			if i := strings.Index(l, ":error:"); i >= 0 {
				return l[i:]
			}
			return l
		}
	}
	return ""
}

func TestDecryptRefusals(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:myrsakey", "--kty", "RSA", "--size", "3072", "--ops", "sign,decrypt")
	h.hsmhost("key", "create", "managedhsm:MyHSM:signonly", "--kty", "RSA", "--size", "2048", "--ops", "sign")
	h.write("myrsakey.pub", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:myrsakey"))
	h.write("signonly.pub", h.hsmhost("key", "pubkey", "managedhsm:MyHSM:signonly"))
	randomFile(t, h, "plaintext.bin", 32)
	mustFail := func(what, line, want string) string {
		t.Helper()
		out, err := h.try("", "sh", "-c", line)
		if err == nil {
			t.Errorf("%s succeeded:\n%s", what, out)
			return ""
		}
		if !strings.Contains(out, want) {
			t.Errorf("%s: the error does not say %q:\n%s", what, want, out)
		}
		return out
	}

	// A key whose operations do not include decrypt; the message names it.
	h.shell("openssl pkeyutl -encrypt -pubin -inkey signonly.pub -in plaintext.bin -out so.bin")
	out := mustFail("decrypt with a sign-only key",
		"openssl pkeyutl -decrypt "+withProvider+" -inkey managedhsm:MyHSM:signonly -in so.bin", "does not allow decrypt")
	if !strings.Contains(out, "managedhsm:MyHSM:signonly") {
		t.Errorf("the refusal does not name the key reference:\n%s", out)
	}

	// Any decryption failure gets one and the same message: a flipped bit
	// under OAEP or PKCS#1 v1.5, a wrong label, a wrong padding mode.
	h.shell("openssl pkeyutl -encrypt -pubin -inkey myrsakey.pub -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_oaep_label:0102 -in plaintext.bin -out oaep.bin")
	h.shell("openssl pkeyutl -encrypt -pubin -inkey myrsakey.pub -pkeyopt rsa_padding_mode:pkcs1 -in plaintext.bin -out pkcs1.bin")
	for _, f := range []string{"oaep", "pkcs1"} {
		ct := readBytes(t, h, f+".bin")
		ct[len(ct)/2] ^= 0x01
		if f == "pkcs1" {
			// A flipped bit under PKCS#1 v1.5 still passes its loose checks
			// about once in 400 tries; a block of the signature type (01)
			// never does.
			ct = wrongTypePKCS1Block(t, h, "myrsakey.pub")
		}
		if err := os.WriteFile(h.path(f+"-tampered.bin"), ct, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h.path(f+"-short.bin"), ct[:len(ct)-1], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const dec = "openssl pkeyutl -decrypt " + withProvider + " -inkey managedhsm:MyHSM:myrsakey "
	const oaep256 = "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 "
	failures := map[string]string{
		"tampered OAEP":    dec + oaep256 + "-pkeyopt rsa_oaep_label:0102 -in oaep-tampered.bin",
		"tampered PKCS#1":  dec + "-pkeyopt rsa_padding_mode:pkcs1 -in pkcs1-tampered.bin",
		"wrong OAEP label": dec + oaep256 + "-pkeyopt rsa_oaep_label:0103 -in oaep.bin",
		// A PKCS#1 v1.5 ciphertext read as OAEP fails for certain; the other
		// way round passes PKCS#1's loose checks about once in 400 tries.
		"wrong padding mode": dec + oaep256 + "-in pkcs1.bin",
		"wrong MGF1 digest":  dec + oaep256 + "-pkeyopt rsa_oaep_label:0102 -pkeyopt rsa_mgf1_md:sha1 -in oaep.bin",
	}
	var first string
	for what, line := range failures {
		out := mustFail(what, line, "decryption with key")
		msg := errorLine(out, "decryption with key")
		if !strings.Contains(msg, "managedhsm:MyHSM:myrsakey") {
			t.Errorf("%s: the message does not name the reference: %s", what, msg)
		}
		if first == "" {
			first = msg
		} else if msg != first {
			t.Errorf("%s: decryption failures must all read the same (no padding oracle):\n%s\n%s", what, msg, first)
		}
	}

	// The ciphertext length is public: a wrong one is named as such.
	mustFail("truncated ciphertext", dec+oaep256+"-in oaep-short.bin", "ciphertext is 383 bytes, a 3072-bit RSA key needs exactly 384")
	// Raw RSA is not something a backend decrypts.
	mustFail("raw RSA decryption", dec+"-pkeyopt rsa_padding_mode:none -in pkcs1.bin", "padding none")

	// Under the azihsm name, OAEP with SHA-1 is refused both ways, as the
	// Integrated HSM seed documents; SHA-256 works (the seed's options).
	const azihsm = "-propquery \"?provider=azihsm\" -provider default -provider azihsm_provider"
	h.shell("openssl pkeyutl -encrypt -pubin -inkey myrsakey.pub -pkeyopt rsa_padding_mode:oaep -in plaintext.bin -out sha1.bin")
	for what, line := range map[string]string{
		"azihsm decrypt, rsa_oaep_md:sha1": "openssl pkeyutl -decrypt " + azihsm + " -inkey managedhsm:MyHSM:myrsakey -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -in sha1.bin",
		"azihsm decrypt, default digest":   "openssl pkeyutl -decrypt " + azihsm + " -inkey managedhsm:MyHSM:myrsakey -pkeyopt rsa_padding_mode:oaep -in sha1.bin",
		"azihsm encrypt, rsa_oaep_md:sha1": "openssl pkeyutl -encrypt " + azihsm + " -inkey managedhsm:MyHSM:myrsakey -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -in plaintext.bin -out x.bin",
	} {
		out := mustFail(what, line, "RSA-OAEP with SHA-1 is refused by azihsm_provider")
		if !strings.Contains(out, "managedhsm:MyHSM:myrsakey") {
			t.Errorf("%s: the refusal does not name the key reference:\n%s", what, out)
		}
	}
	opts := "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256"
	h.shell("openssl pkeyutl -encrypt " + azihsm + " -inkey managedhsm:MyHSM:myrsakey " + opts + " -in plaintext.bin -out ciphertext.bin")
	h.shell("openssl pkeyutl -decrypt " + azihsm + " -inkey managedhsm:MyHSM:myrsakey " + opts + " -in ciphertext.bin -out decrypted.bin")
	if !bytes.Equal(readBytes(t, h, "decrypted.bin"), readBytes(t, h, "plaintext.bin")) {
		t.Error("OAEP-SHA256 round trip under azihsm_provider gave another plaintext")
	}
	// The same SHA-1 ciphertext decrypts under the akv name (Key Vault's RSA-OAEP).
	h.shell("openssl pkeyutl -decrypt " + withProvider + " -inkey managedhsm:MyHSM:myrsakey -pkeyopt rsa_padding_mode:oaep -in sha1.bin -out decrypted.bin")
	if !bytes.Equal(readBytes(t, h, "decrypted.bin"), readBytes(t, h, "plaintext.bin")) {
		t.Error("RSA-OAEP (SHA-1) under akv_provider gave another plaintext")
	}
}

// TLS 1.2 RSA key exchange: the server's premaster-secret decryption
// (RSA_PKCS1_WITH_TLS_PADDING) runs in the backend; the client has only
// the default provider.
func TestDecryptTLSRSAKeyExchange(t *testing.T) {
	requireTool(t, "openssl")
	h := startHost(t, "")
	h.hsmhost("key", "create", "managedhsm:MyHSM:tlsrsa", "--kty", "RSA", "--size", "2048", "--ops", "sign,decrypt")
	h.run("", "openssl", "req", "-new", "-x509", "-provider", "akv_provider", "-provider", "default",
		"-key", "managedhsm:MyHSM:tlsrsa", "-subj", "/CN=localhost", "-days", "2", "-out", "server.crt")
	for _, order := range providerOrders {
		port := freePort(t)
		args := append(strings.Fields(order), "-accept", fmt.Sprint(port), "-cert", "server.crt",
			"-key", "managedhsm:MyHSM:tlsrsa", "-cipher", "AES128-SHA256", "-tls1_2", "-www")
		srv := exec.Command("openssl", append([]string{"s_server"}, args...)...)
		srv.Dir, srv.Env = h.dir, h.env()
		var log bytes.Buffer
		srv.Stdout, srv.Stderr = &log, &log
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		waitPort(t, port, &log)
		out, _ := h.try("GET / HTTP/1.0\r\n\r\n", "openssl", "s_client", "-connect", fmt.Sprintf("127.0.0.1:%d", port),
			"-tls1_2", "-cipher", "AES128-SHA256", "-CAfile", "server.crt", "-verify_return_error", "-ign_eof")
		srv.Process.Kill()
		srv.Wait()
		if !strings.Contains(out, "Cipher is AES128-SHA256") || !strings.Contains(out, "HTTP/1.0 200 ok") {
			t.Errorf("TLS 1.2 RSA key exchange with %s failed:\n%s\nserver:\n%s", order, out, log.String())
		}
	}
}

// wrongTypePKCS1Block encrypts, with the raw RSA public operation, a block
// of PKCS#1 v1.5 type 01 (00 01 FF…FF 00 data): its decryption always fails
// the type-02 check of encryption padding.
func wrongTypePKCS1Block(t *testing.T, h *host, pubFile string) []byte {
	t.Helper()
	block, _ := pem.Decode([]byte(h.read(pubFile)))
	if block == nil {
		t.Fatalf("%s is not PEM", pubFile)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	k := pub.(*rsa.PublicKey)
	em := make([]byte, k.Size())
	em[1] = 0x01
	for i := 2; i < len(em)-17; i++ {
		em[i] = 0xff
	}
	copy(em[len(em)-16:], "sixteen bytes!!!")
	c := new(big.Int).Exp(new(big.Int).SetBytes(em), big.NewInt(int64(k.E)), k.N)
	return c.FillBytes(make([]byte, k.Size()))
}
