package e2e

// The seed conformance table's set-ups (files and keys a row assumes) and
// its independent checks of each row's result (conformance_test.go).

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

// dataFiles writes the files the seeds sign but never create: data.bin for
// the Integrated HSM seed (over 1024 bytes, for HMAC), data.txt for the
// Managed HSM seed, and other data for the negative checks.
func dataFiles(t *testing.T, h *host) {
	h.write("data.bin", strings.Repeat("data signed by a masked key ", 3000))
	h.write("other.bin", "other data")
	h.write("data.txt", "hello from hsmbridge\n")
}

func setups(fs ...func(t *testing.T, h *host)) func(t *testing.T, h *host) {
	return func(t *testing.T, h *host) {
		t.Helper()
		for _, f := range fs {
			f(t, h)
		}
	}
}

// shellSetup runs setup command lines (the default provider's, or ours with
// ${PROV}).
func shellSetup(lines ...string) func(t *testing.T, h *host) {
	return func(t *testing.T, h *host) {
		t.Helper()
		for _, l := range lines {
			h.shell(seedCmd(l))
		}
	}
}

// External RSA keys the seed assumes (external_rsa_4096.der is used but never
// made by it) are made once per test run by the default provider: they are
// not backend state, and a 4096-bit key costs seconds.
var (
	externalKeysMu sync.Mutex
	externalKeys   = map[string][]byte{}
)

func externalKey(file, algorithm string, bits int) func(t *testing.T, h *host) {
	return func(t *testing.T, h *host) {
		t.Helper()
		id := fmt.Sprintf("%s-%d", algorithm, bits)
		externalKeysMu.Lock()
		der, ok := externalKeys[id]
		if !ok {
			out, err := exec.Command("openssl", "genpkey", "-algorithm", algorithm,
				"-pkeyopt", fmt.Sprintf("rsa_keygen_bits:%d", bits), "-outform", "DER").Output()
			if err != nil {
				externalKeysMu.Unlock()
				t.Fatalf("openssl genpkey %s %d: %v", algorithm, bits, err)
			}
			der, externalKeys[id] = out, out
		}
		externalKeysMu.Unlock()
		if err := os.WriteFile(h.path(file), der, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// randomPlaintext writes plaintext.bin (190 bytes: fits OAEP-SHA512 with a
// 4096-bit key and PKCS#1 v1.5 with 2048 bits).
func randomPlaintext(t *testing.T, h *host) { randomFile(t, h, "plaintext.bin", 190) }

// mhsmKey mirrors the seed's `az keyvault key create`: the key as
// managedhsm:MyHSM:<name>, its public key in pub (from hsmhost, which reads
// it from the backend).
func mhsmKey(name, pub string, args ...string) func(t *testing.T, h *host) {
	return func(t *testing.T, h *host) {
		t.Helper()
		h.hsmhost(append([]string{"key", "create", "managedhsm:MyHSM:" + name}, args...)...)
		h.write(pub, h.hsmhost("key", "pubkey", "managedhsm:MyHSM:"+name))
	}
}

// twoVersions makes two versions of managedhsm:MyHSM:<name>; v1.txt holds
// the first version, v1.pub and v2.pub the public keys (not for oct keys).
func twoVersions(name string, args ...string) func(t *testing.T, h *host) {
	symmetric := slices.Contains(args, "oct")
	return func(t *testing.T, h *host) {
		t.Helper()
		ref := "managedhsm:MyHSM:" + name
		var versions []string
		for i := 1; i <= 2; i++ {
			out := h.hsmhost(append([]string{"key", "create", ref}, args...)...)
			_, v, ok := strings.Cut(strings.SplitN(out, "\n", 2)[0], "?version=")
			if !ok {
				t.Fatalf("hsmhost key create printed no versioned reference: %q", out)
			}
			versions = append(versions, strings.TrimSpace(v))
			if !symmetric {
				h.write(fmt.Sprintf("v%d.pub", i), h.hsmhost("key", "pubkey", ref+"?version="+versions[i-1]))
			}
		}
		if versions[0] == versions[1] || !symmetric && h.read("v1.pub") == h.read("v2.pub") {
			t.Fatal("the second key create made no new version")
		}
		h.write("v1.txt", versions[0])
	}
}

// ---- checks ---------------------------------------------------------------

// exportPub writes the public key of uri, as the provider exports it.
func exportPub(t *testing.T, h *host, uri, file string) string {
	t.Helper()
	h.shell(seedCmd(`openssl pkey ${PROV} -in "` + uri + `" -pubout -out ` + file))
	return file
}

// externalPub writes the public key of an external DER private key, by the
// default provider alone.
func externalPub(t *testing.T, h *host, der, file string) string {
	t.Helper()
	h.shell("openssl pkey -inform DER -in " + der + " -pubout -out " + file)
	return file
}

// pubSource names where a row's independent public key comes from: an
// external key file (imports) or the export of the masked key.
type pubSource func(t *testing.T, h *host) string

func fromURI(uri string) pubSource {
	return func(t *testing.T, h *host) string { return exportPub(t, h, uri, "check_pub.pem") }
}

func fromExternal(der string) pubSource {
	return func(t *testing.T, h *host) string { return externalPub(t, h, der, "check_pub.pem") }
}

func fromFile(pub string) pubSource {
	return func(*testing.T, *host) string { return pub }
}

// streamingVerified: sig over data.bin verifies with the default provider
// (and not over other data).
func streamingVerified(md string, pub pubSource, sig, verifyOpts string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		verifiedByDefault(t, h, md, pub(t, h), sig, verifyOpts)
	}
}

// oneShotVerified: data.sig over data.hash verifies with the default
// provider's pkeyutl, and not over the hash of other data.
func oneShotVerified(md string, pub pubSource, opts string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		p := pub(t, h)
		if out := h.shell("openssl pkeyutl -verify -pubin -inkey " + p + " " + opts + " -in data.hash -sigfile data.sig"); !strings.Contains(out, "Signature Verified Successfully") {
			t.Fatalf("default provider: %s", out)
		}
		h.shell("openssl dgst -" + md + " -binary -out other.hash other.bin")
		h.fails("openssl pkeyutl -verify -pubin -inkey "+p+" "+opts+" -in other.hash -sigfile data.sig", "Signature Verification Failure")
	}
}

// verifyOK: the verify command said so; with the signature file altered the
// same command fails (so the check can fail).
func verifyOK(want, sigFile string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, r *seedRow, out string) {
		t.Helper()
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
		sig := readBytes(t, h, sigFile)
		sig[len(sig)/2] ^= 0x01
		if err := os.WriteFile(h.path(sigFile), sig, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := h.try("", "sh", "-c", seedCmd(r.cmd)); err == nil {
			t.Fatalf("an altered signature verified:\n%s", out)
		}
	}
}

func sameFiles(a, b string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		if x, y := readBytes(t, h, a), readBytes(t, h, b); !bytes.Equal(x, y) {
			t.Fatalf("%s (%d bytes) differs from %s (%d bytes)", a, len(x), b, len(y))
		}
	}
}

// defaultDecrypts: the default provider decrypts ciphertext.bin with the
// external private key and gets plaintext.bin back.
func defaultDecrypts(der, opts string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, r *seedRow, out string) {
		t.Helper()
		h.shell("openssl pkeyutl -decrypt -keyform DER -inkey " + der + " " + opts + " -in ciphertext.bin -out check_plain.bin")
		sameFiles("check_plain.bin", "plaintext.bin")(t, h, r, out)
	}
}

// maskedKey: file is a masked blob of mode 0600 for an EC key on curve
// (session: marked as a session key, and no longer usable now that the
// process that made it has ended).
func maskedKey(file, curve string, session bool) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		checkBlobFile(t, h, file)
		if got := readBytes(t, h, file)[h.blobSessionFlag]&1 == 1; got != session {
			t.Fatalf("%s: session flag %v, want %v", file, got, session)
		}
		uri := "azihsm://./" + file + ";type=ec"
		if session {
			h.fails(seedCmd(`openssl storeutl -noout ${PROV} "`+uri+`"`), file, "session has ended")
			return
		}
		exportPub(t, h, uri, "check_pub.pem")
		if out := h.shell("openssl pkey -pubin -in check_pub.pem -noout -text"); !strings.Contains(out, "NIST CURVE: "+curve) {
			t.Fatalf("%s: the public key is not on %s:\n%s", file, curve, out)
		}
	}
}

// allowedOps: the provider's text output lists the operations the backend
// reports for the key.
func allowedOps(uri, ops string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		if out := h.shell(seedCmd(`openssl pkey ${PROV} -in "` + uri + `" -text -noout`)); !strings.Contains(out, "Allowed operations: "+ops+"\n") {
			t.Fatalf("%s: want allowed operations %q:\n%s", uri, ops, out)
		}
	}
}

// imported: the masked key's public key is the external key's, and it
// signs (verified with the external public key).
func imported(uri, der, md, sigopts string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		checkBlobFile(t, h, strings.TrimPrefix(strings.SplitN(uri, ";", 2)[0], "azihsm://./"))
		want := h.read(externalPub(t, h, der, "external_pub.pem"))
		if got := h.read(exportPub(t, h, uri, "check_pub.pem")); !samePEM(got, want) {
			t.Fatalf("the imported key's public key differs from %s's:\n%s\nwant\n%s", der, got, want)
		}
		if md == "" {
			return
		}
		h.shell(seedCmd(`openssl dgst -` + md + ` ${PROV} ` + sigopts + ` -sign "` + uri + `" -out check.sig data.bin`))
		verifiedByDefault(t, h, md, "external_pub.pem", "check.sig", sigopts)
	}
}

func checks(cs ...func(*testing.T, *host, *seedRow, string)) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, r *seedRow, out string) {
		t.Helper()
		for _, c := range cs {
			c(t, h, r, out)
		}
	}
}

func noFile(name string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		if b, err := os.ReadFile(h.path(name)); err == nil && len(b) > 0 {
			t.Fatalf("a refused command wrote %s (%d bytes)", name, len(b))
		}
	}
}

// ecdhSide is an ECDH in the backend seen from the peer: the masked
// keyAgreement key file and the peer's private key (PEM, default provider).
type ecdhSide struct{ key, peer string }

var (
	seedECDH  = ecdhSide{"ec_p384_ecdh.bin", "peer_priv.pem"}
	chainECDH = ecdhSide{"ecdh_key.bin", "peer.pem"}
)

// secret is the ECDH shared secret as the peer computes it (Go's
// crypto/ecdh) with the masked key's exported public key.
func (s ecdhSide) secret(t *testing.T, h *host) []byte {
	t.Helper()
	block, _ := pem.Decode(readBytes(t, h, s.peer))
	if block == nil {
		t.Fatalf("%s holds no PEM block", s.peer)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := k.(*ecdsa.PrivateKey).ECDH()
	if err != nil {
		t.Fatal(err)
	}
	mineDER, _ := pem.Decode(readBytes(t, h, exportPub(t, h, "azihsm://./"+s.key+";type=ec", "ecdh_pub.pem")))
	pub, err := x509.ParsePKIXPublicKey(mineDER.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := pub.(*ecdsa.PublicKey).ECDH()
	if err != nil {
		t.Fatal(err)
	}
	z, err := peer.ECDH(mine)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// hkdfParams are one HKDF derivation's inputs besides the secret.
type hkdfParams struct {
	digest     string // SHA256, SHA384, SHA512
	salt, info string // hex
	bits       int
}

func (p hkdfParams) key(t *testing.T, z []byte) []byte {
	t.Helper()
	salt, _ := hex.DecodeString(p.salt)
	info, _ := hex.DecodeString(p.info)
	k, err := hkdf.Key(chainHash(p.digest), z, salt, string(info), p.bits/8)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// localMAC is HMAC over data.bin with key, computed by Go.
func localMAC(t *testing.T, h *host, digest string, key []byte) string {
	t.Helper()
	m := hmac.New(chainHash(digest), key)
	m.Write(readBytes(t, h, "data.bin"))
	return hex.EncodeToString(m.Sum(nil))
}

// backendMAC is `openssl mac` with the masked HMAC key file over data.bin.
func backendMAC(t *testing.T, h *host, digest, file string) string {
	t.Helper()
	return strings.ToLower(strings.TrimSpace(h.shell(seedCmd("openssl mac ${PROV} -macopt digest:" + digest + " -macopt azihsm.key_file:./" + file + " -in data.bin HMAC"))))
}

// ecdhChecked: the command printed nothing (secret length 0), wrote a masked
// secret, and that secret is the peer's: an HMAC key derived from it in the
// backend MACs data.bin as the same key derived by Go from the peer's side.
func ecdhChecked(s ecdhSide, secretFile string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, out string) {
		t.Helper()
		if out != "" {
			t.Fatalf("pkeyutl -derive wrote %d bytes of output, want none: %q", len(out), out)
		}
		checkBlobFile(t, h, secretFile)
		p := hkdfParams{"SHA256", "", "636865636b", 256}
		h.shell(seedCmd("openssl kdf ${PROV} -keylen 4096 -kdfopt digest:SHA256 -kdfopt azihsm.ikm_file:./" + secretFile +
			" -kdfopt output_file:./check_hmac.bin -kdfopt derived_key_type:hmac -kdfopt derived_key_bits:256 -kdfopt hexinfo:" + p.info + " -binary -out /dev/null HKDF"))
		if got, want := backendMAC(t, h, "SHA256", "check_hmac.bin"), localMAC(t, h, "SHA256", p.key(t, s.secret(t, h))); got != want {
			t.Fatalf("MAC with a key derived from the masked secret %s, from the peer's side %s", got, want)
		}
	}
}

// hkdfAESChecked: the derived masked AES key wraps a known key in the
// backend, and OpenSSL's default provider unwraps it with the key Go derives
// from the peer's side.
func hkdfAESChecked(s ecdhSide, file string, p hkdfParams) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		checkMasked(t, h, file)
		wrapUnwrapCheck(t, h, file, p.key(t, s.secret(t, h)))
	}
}

// hkdfHMACChecked: the derived masked HMAC key MACs data.bin in the backend
// as the key Go derives from the peer's side.
func hkdfHMACChecked(s ecdhSide, file string, p hkdfParams) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		checkMasked(t, h, file)
		if got, want := backendMAC(t, h, p.digest, file), localMAC(t, h, p.digest, p.key(t, s.secret(t, h))); got != want {
			t.Fatalf("HMAC-%s in the backend %s, from the peer's side %s", p.digest, got, want)
		}
	}
}

// macOutput: the MAC the command printed is Go's over data.bin.
func macOutput(s ecdhSide, p hkdfParams) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, out string) {
		t.Helper()
		if got, want := strings.ToLower(strings.TrimSpace(out)), localMAC(t, h, p.digest, p.key(t, s.secret(t, h))); got != want {
			t.Fatalf("openssl mac printed %s, from the peer's side %s", got, want)
		}
	}
}

// digestOutput: `openssl dgst` printed Go's digest of data.bin.
func digestOutput(md string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, out string) {
		t.Helper()
		data := readBytes(t, h, "data.bin")
		var sum []byte
		switch md {
		case "sha1":
			s := sha1.Sum(data)
			sum = s[:]
		case "sha256":
			s := sha256.Sum256(data)
			sum = s[:]
		case "sha384":
			s := sha512.Sum384(data)
			sum = s[:]
		case "sha512":
			s := sha512.Sum512(data)
			sum = s[:]
		}
		if want := hex.EncodeToString(sum); !strings.HasSuffix(strings.TrimSpace(out), "= "+want) {
			t.Fatalf("openssl dgst -%s printed %q, want the digest %s", md, out, want)
		}
	}
}

// selfSigned: a self-signed certificate (or CSR) the default provider
// verifies, carrying the public key in pub.
func selfSigned(file, pub string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		if strings.HasSuffix(file, ".csr") {
			if out := h.run("", "openssl", "req", "-verify", "-in", file, "-noout"); !strings.Contains(out, "verify OK") {
				t.Fatalf("openssl req -verify: %s", out)
			}
			if got := h.run("", "openssl", "req", "-in", file, "-noout", "-pubkey"); !samePEM(got, h.read(pub)) {
				t.Fatalf("%s carries another public key than %s", file, pub)
			}
			return
		}
		if out := h.run("", "openssl", "verify", "-CAfile", file, file); !strings.Contains(out, file+": OK") {
			t.Fatalf("openssl verify: %s", out)
		}
		if got := h.run("", "openssl", "x509", "-in", file, "-noout", "-pubkey"); !samePEM(got, h.read(pub)) {
			t.Fatalf("%s carries another public key than %s", file, pub)
		}
	}
}

// rfc4055: the CSR or certificate is signed with RSA-PSS and states its
// parameters (SHA-384, MGF1 SHA-384, salt 48).
func rfc4055(file string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		kind := "x509"
		if strings.HasSuffix(file, ".csr") {
			kind = "req"
		}
		text := h.run("", "openssl", kind, "-in", file, "-noout", "-text")
		for _, want := range []string{"Signature Algorithm: rsassaPss", "Hash Algorithm: sha384", "Mask Algorithm: mgf1 with sha384", "Salt Length: 0x30"} {
			if !strings.Contains(text, want) {
				t.Fatalf("%s lacks %q:\n%s", file, want, text)
			}
		}
	}
}

// verifiesWith: signature.bin over data.txt verifies with pub and not with
// notPub (another version's key), by the default provider.
func verifiesWith(pub, notPub string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		if out := h.shell("openssl dgst -sha256 -verify " + pub + " -signature signature.bin data.txt"); !strings.Contains(out, "Verified OK") {
			t.Fatalf("with %s: %s", pub, out)
		}
		if notPub != "" {
			h.fails("openssl dgst -sha256 -verify "+notPub+" -signature signature.bin data.txt", "Verification failure")
		}
		h.write("data.txt", "hello from hsmbridge!\n")
		h.fails("openssl dgst -sha256 -verify "+pub+" -signature signature.bin data.txt", "Verification failure")
	}
}

func peerKey(file, curve string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		block, _ := pem.Decode(readBytes(t, h, file))
		if block == nil {
			t.Fatalf("%s holds no PEM", file)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if ec, ok := k.(*ecdsa.PrivateKey); err != nil || !ok || ec.Curve.Params().Name != curve {
			t.Fatalf("%s is not a %s key: %v", file, curve, err)
		}
	}
}

func peerPub(priv, pub string) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		b1, _ := pem.Decode(readBytes(t, h, priv))
		b2, _ := pem.Decode(readBytes(t, h, pub))
		if b1 == nil || b2 == nil {
			t.Fatal("no PEM")
		}
		k, err1 := x509.ParsePKCS8PrivateKey(b1.Bytes)
		p, err2 := x509.ParsePKIXPublicKey(b2.Bytes)
		if err1 != nil || err2 != nil || !k.(*ecdsa.PrivateKey).PublicKey.Equal(p) {
			t.Fatalf("%s is not the public key of %s (%v, %v)", pub, priv, err1, err2)
		}
	}
}

var curveFile = map[string]string{"P-256": "ec_p256.bin", "P-384": "ec_p384.bin", "P-521": "ec_p521.bin"}
var curveRow = map[string]string{"P-256": "azihsm/genpkey-ec-p256", "P-384": "azihsm/genpkey-ec-p384", "P-521": "azihsm/genpkey-ec-p521"}

// prehash writes data.hash (and other.hash) with the default provider.
func prehash(md string) func(t *testing.T, h *host) {
	return setups(dataFiles, shellSetup("openssl dgst -"+md+" -binary -out data.hash data.bin"))
}
