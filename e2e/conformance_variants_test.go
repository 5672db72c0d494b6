package e2e

// The seed conformance table's variants that issue 3 lists beyond the
// seeds' own commands: signatures, encryption, derivation, stores and
// encoders (conformance_test.go).

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// signatureVariants: "any combination of curve and hash", streaming and
// one-shot; RSA PKCS#1 v1.5 and PSS with every salt-length form, MGF1, and
// one-shot RSA (which the seed's provider refuses or never verifies).
func signatureVariants() []seedRow {
	var rows []seedRow
	for _, curve := range []string{"P-256", "P-384", "P-521"} {
		uri := "azihsm://./" + curveFile[curve] + ";type=ec"
		c := strings.ToLower(strings.ReplaceAll(curve, "-", ""))
		for _, md := range []string{"sha1", "sha256", "sha384", "sha512"} {
			if curve == "P-384" && md == "sha384" {
				continue // the seed's own rows
			}
			rows = append(rows, seedRow{name: "azihsm/ecdsa-sign-streaming-" + c + "-" + md, requires: []string{curveRow[curve]}, setup: dataFiles,
				cmd:   `openssl dgst -` + md + ` ${PROV} -sign "` + uri + `" -out signature.sig data.bin`,
				check: streamingVerified(md, fromURI(uri), "signature.sig", "")})
			rows = append(rows, seedRow{name: "azihsm/ecdsa-sign-oneshot-" + c + "-" + md, requires: []string{curveRow[curve]}, setup: prehash(md),
				cmd:   `openssl pkeyutl -sign ${PROV} -inkey "` + uri + `" -in data.hash -out data.sig`,
				check: oneShotVerified(md, fromURI(uri), "")})
		}
	}
	ext := fromExternal("external_rsa.der")
	pss := "-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:"
	for _, v := range []struct{ name, md, opts, verify, gap string }{
		{"pkcs1-sha1", "sha1", "", "", ""},
		{"pkcs1-sha384", "sha384", "", "", ""},
		{"pkcs1-sha512", "sha512", "", "", ""},
		{"pss-digest", "sha256", pss + "digest", pss + "digest", ""},
		{"pss-saltlen-20", "sha256", pss + "20", pss + "20", ""},
		{"pss-auto", "sha256", pss + "auto", pss + "auto", ""},
		{"pss-max-sha512", "sha512", pss + "max", pss + "max", ""},
		{"pss-mgf1-sha256", "sha256", pss + "digest -sigopt rsa_mgf1_md:sha256", pss + "digest -sigopt rsa_mgf1_md:sha256", ""},
		{"pss-mgf1-sha1", "sha256", pss + "digest -sigopt rsa_mgf1_md:sha1", pss + "digest -sigopt rsa_mgf1_md:sha1", ""},
	} {
		rows = append(rows, seedRow{name: "azihsm/rsa-sign-" + v.name, requires: []string{"azihsm/rsa-import-2048-sign"},
			cmd:   `openssl dgst -` + v.md + ` ${PROV} ` + v.opts + ` -sign "` + rsaSign + `" -out rsa_sig.bin data.bin`,
			check: streamingVerified(v.md, ext, "rsa_sig.bin", v.verify), knownGap: v.gap})
	}
	rows = append(rows,
		seedRow{name: "azihsm/rsa-verify-pss-saltlen-20", requires: []string{"azihsm/rsa-sign-pss-saltlen-20"},
			cmd:   `openssl dgst -sha256 ${PROV} ` + pss + `20 -verify "` + rsaSign + `" -signature rsa_sig.bin data.bin`,
			check: verifyOK("Verified OK", "rsa_sig.bin")},
		seedRow{name: "azihsm/rsa-sign-oneshot-pkcs1-sha256", requires: []string{"azihsm/rsa-import-2048-sign"}, setup: prehash("sha256"),
			cmd:   `openssl pkeyutl -sign ${PROV} -inkey "` + rsaSign + `" -pkeyopt digest:sha256 -in data.hash -out data.sig`,
			check: oneShotVerified("sha256", ext, "-pkeyopt digest:sha256")},
		seedRow{name: "azihsm/rsa-verify-oneshot-pkcs1-sha256", requires: []string{"azihsm/rsa-sign-oneshot-pkcs1-sha256"},
			cmd:   `openssl pkeyutl -verify ${PROV} -inkey "` + rsaSign + `" -pkeyopt digest:sha256 -in data.hash -sigfile data.sig`,
			check: verifyOK("Signature Verified Successfully", "data.sig")},
		seedRow{name: "azihsm/rsa-sign-oneshot-pss-sha384", requires: []string{"azihsm/rsa-import-2048-sign"}, setup: prehash("sha384"),
			cmd:   `openssl pkeyutl -sign ${PROV} -inkey "` + rsaSign + `" -pkeyopt digest:sha384 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest -in data.hash -out data.sig`,
			check: oneShotVerified("sha384", ext, "-pkeyopt digest:sha384 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest")},
		seedRow{name: "azihsm/rsa-verify-oneshot-pss-sha384", requires: []string{"azihsm/rsa-sign-oneshot-pss-sha384"},
			cmd:   `openssl pkeyutl -verify ${PROV} -inkey "` + rsaSign + `" -pkeyopt digest:sha384 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest -in data.hash -sigfile data.sig`,
			check: verifyOK("Signature Verified Successfully", "data.sig")},
		// An RSA-PSS key (type=rsa-pss) signs PSS without options.
		seedRow{name: "azihsm/rsapss-sign-streaming", requires: []string{"azihsm/rsapss-import"},
			cmd:   `openssl dgst -sha256 ${PROV} -sign "azihsm://./rsa_pss_key.bin;type=rsa-pss" -out pss.sig data.bin`,
			check: streamingVerified("sha256", fromExternal("external_pss.der"), "pss.sig", "")},
		seedRow{name: "azihsm/refuse-rsa-oneshot-pkcs1-digest-mismatch", requires: []string{"azihsm/rsa-import-2048-sign"}, setup: prehash("sha384"),
			cmd:   `openssl pkeyutl -sign ${PROV} -inkey "` + rsaSign + `" -pkeyopt digest:sha256 -in data.hash -out data.sig`,
			fails: []string{"input is 48 bytes but a SHA2-256 digest is 32 bytes"}, check: noFile("data.sig")},
	)
	return rows
}

// encryptionVariants: OAEP digests, MGF1 and labels, decrypting ciphertexts
// the default provider made with the external public key; SHA-1 refusals.
func encryptionVariants() []seedRow {
	var rows []seedRow
	for _, v := range []struct{ name, opts string }{
		{"oaep-sha384", "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha384"},
		{"oaep-sha512", "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha512 -pkeyopt rsa_mgf1_md:sha512"},
		{"oaep-sha256-mgf1-sha384", "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha384"},
		{"oaep-sha256-label", "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_oaep_label:68736d627269646765"},
		{"pkcs1-local-ciphertext", "-pkeyopt rsa_padding_mode:pkcs1"},
	} {
		local := "openssl pkey -inform DER -in external_rsa_4096.der -pubout -out external_pub.pem && " +
			"openssl pkeyutl -encrypt -pubin -inkey external_pub.pem " + v.opts + " -in plaintext.bin -out local.bin"
		rows = append(rows, seedRow{name: "azihsm/rsa-decrypt-" + v.name, requires: []string{"azihsm/rsa-import-4096-enc"},
			setup: setups(randomPlaintext, shellSetup(local)),
			cmd:   `openssl pkeyutl -decrypt ${PROV} -inkey "` + rsaEnc + `" ` + v.opts + ` -in local.bin -out decrypted.bin`,
			check: sameFiles("decrypted.bin", "plaintext.bin")})
	}
	sha1Local := "openssl pkey -inform DER -in external_rsa_4096.der -pubout -out external_pub.pem && " +
		"openssl pkeyutl -encrypt -pubin -inkey external_pub.pem -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -in plaintext.bin -out local.bin"
	sigLocal := "openssl pkey -inform DER -in external_rsa.der -pubout -out external_pub.pem && " +
		"openssl pkeyutl -encrypt -pubin -inkey external_pub.pem -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in plaintext.bin -out local.bin"
	rows = append(rows,
		seedRow{name: "azihsm/refuse-oaep-sha1-decrypt", requires: []string{"azihsm/rsa-import-4096-enc"}, setup: setups(randomPlaintext, shellSetup(sha1Local)),
			cmd:   `openssl pkeyutl -decrypt ${PROV} -inkey "` + rsaEnc + `" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -in local.bin -out decrypted.bin`,
			fails: []string{rsaEnc, "RSA-OAEP with SHA-1 is refused by azihsm_provider"}, check: noFile("decrypted.bin")},
		seedRow{name: "azihsm/refuse-decrypt-with-signing-key", requires: []string{"azihsm/rsa-import-2048-sign"}, setup: setups(randomPlaintext, shellSetup(sigLocal)),
			cmd:   `openssl pkeyutl -decrypt ${PROV} -inkey "` + rsaSign + `" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in local.bin -out decrypted.bin`,
			fails: []string{rsaSign, "does not allow decrypt"}, check: noFile("decrypted.bin")},
	)
	return rows
}

// derivationVariants: ECDH on the other curves; HKDF with every digest,
// AES sizes, salt and info, into the caller's buffer, from key octets; HMAC
// with each digest, and with the upstream provider's key:<masked key file>;
// KBKDF; and the refusals.
func derivationVariants() []seedRow {
	var rows []seedRow
	for _, c := range []struct{ curve, key, row string }{
		{"P-256", "ec_p256_ecdh.bin", "azihsm/genpkey-ec-p256-keyagreement"},
		{"P-521", "ec_p521_ecdh.bin", "azihsm/genpkey-ec-p521-keyagreement"},
	} {
		peer := "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:" + c.curve + " -out peer_priv.pem && openssl pkey -in peer_priv.pem -pubout -out peer_pub.pem"
		rows = append(rows, seedRow{name: "azihsm/ecdh-derive-" + strings.ToLower(strings.ReplaceAll(c.curve, "-", "")),
			requires: []string{c.row}, setup: setups(dataFiles, shellSetup(peer)),
			cmd:   `openssl pkeyutl -derive ${PROV} -inkey "azihsm://./` + c.key + `;type=ec" -peerkey peer_pub.pem -pkeyopt output_file:shared_secret.bin`,
			check: ecdhChecked(ecdhSide{c.key, "peer_priv.pem"}, "shared_secret.bin")})
	}
	hkdfCmd := func(p hkdfParams, typ, out string) string {
		s := `openssl kdf ${PROV} -keylen 4096 -kdfopt digest:` + p.digest + ` -kdfopt azihsm.ikm_file:./shared_secret.bin -kdfopt output_file:./` + out +
			` -kdfopt derived_key_type:` + typ + fmt.Sprintf(` -kdfopt derived_key_bits:%d`, p.bits)
		if p.salt != "" {
			s += ` -kdfopt hexsalt:` + p.salt
		}
		if p.info != "" {
			s += ` -kdfopt hexinfo:` + p.info
		}
		return s + ` -binary -out /dev/null HKDF`
	}
	ecdh := []string{"azihsm/ecdh-derive-p384"}
	for _, p := range []hkdfParams{{"SHA256", "0a0b", "0c0d", 256}, {"SHA512", "", "f0f1", 512}} {
		file := "hmac_" + strings.ToLower(p.digest) + ".bin"
		rows = append(rows, seedRow{name: "azihsm/hkdf-hmac-" + strings.ToLower(p.digest), requires: ecdh,
			cmd: hkdfCmd(p, "hmac", file), check: hkdfHMACChecked(seedECDH, file, p)})
	}
	for _, p := range []hkdfParams{{"SHA256", "", "", 128}, {"SHA384", "", "", 192}, {"SHA512", "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 256}} {
		file := fmt.Sprintf("aes%d.bin", p.bits)
		rows = append(rows, seedRow{name: fmt.Sprintf("azihsm/hkdf-aes%d-%s", p.bits, strings.ToLower(p.digest)), requires: ecdh,
			cmd: hkdfCmd(p, "aes", file), check: hkdfAESChecked(seedECDH, file, p)})
	}
	aes256 := hkdfParams{"SHA256", "", "", 256}
	rows = append(rows,
		// Into the caller's buffer: -keylen of exactly the blob's size (that
		// of the seed's output_file derivation) writes the blob itself.
		seedRow{name: "azihsm/hkdf-aes-into-buffer", requires: []string{"azihsm/hkdf-aes-sha256"},
			cmd:   `openssl kdf ${PROV} -keylen $(wc -c < derived_aes_key.bin) -kdfopt digest:SHA256 -kdfopt azihsm.ikm_file:./shared_secret.bin -kdfopt derived_key_type:aes -kdfopt derived_key_bits:256 -binary -out buffer_aes_key.bin HKDF`,
			check: hkdfAESChecked(seedECDH, "buffer_aes_key.bin", aes256)},
		// The masked secret given as the key octets instead of a file.
		seedRow{name: "azihsm/hkdf-aes-from-key-octets", requires: []string{"azihsm/ecdh-derive-p384"},
			cmd:   `openssl kdf ${PROV} -keylen 4096 -kdfopt digest:SHA256 -kdfopt hexkey:$(od -An -v -tx1 shared_secret.bin | tr -d ' \n') -kdfopt output_file:./octets_aes_key.bin -kdfopt derived_key_type:aes -kdfopt derived_key_bits:256 -binary -out /dev/null HKDF`,
			check: hkdfAESChecked(seedECDH, "octets_aes_key.bin", aes256)},
		seedRow{name: "azihsm/refuse-hkdf-output-buffer-too-small", requires: ecdh,
			cmd:   `openssl kdf ${PROV} -keylen 64 -kdfopt azihsm.ikm_file:./shared_secret.bin -binary -out /dev/null HKDF`,
			fails: []string{"output buffer too small", "-keylen"}},
		seedRow{name: "azihsm/refuse-hkdf-hmac-bits-not-digest-size", requires: ecdh,
			cmd:   hkdfCmd(hkdfParams{"SHA384", "", "", 256}, "hmac", "x.bin"),
			fails: []string{"shared_secret.bin", "an HMAC-sha384 key has 384 bits, not 256"}, check: noFile("x.bin")},
		seedRow{name: "azihsm/refuse-hkdf-bits-not-multiple-of-8", requires: ecdh,
			cmd:   hkdfCmd(hkdfParams{"SHA256", "", "", 100}, "aes", "x.bin"),
			fails: []string{"derived_key_bits must be a positive multiple of 8"}, check: noFile("x.bin")},
		seedRow{name: "azihsm/refuse-hkdf-without-ikm",
			cmd:   `openssl kdf ${PROV} -keylen 4096 -kdfopt output_file:./x.bin HKDF`,
			fails: []string{"HKDF needs its input keying material", "azihsm.ikm_file"}, check: noFile("x.bin")},
		seedRow{name: "azihsm/refuse-hkdf-from-aes-key", requires: []string{"azihsm/hkdf-aes-sha256"},
			cmd:   `openssl kdf ${PROV} -keylen 4096 -kdfopt azihsm.ikm_file:./derived_aes_key.bin -kdfopt output_file:./x.bin HKDF`,
			fails: []string{"derived_aes_key.bin", "does not allow key derivation"}, check: noFile("x.bin")},
	)
	// HMAC with the masked keys (data.bin is 84 000 bytes: no 1024-byte cap).
	for _, m := range []struct {
		row, file string
		p         hkdfParams
	}{
		{"azihsm/hkdf-hmac-sha384", "derived_hmac_key.bin", hkdfParams{"SHA384", "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 384}},
		{"azihsm/hkdf-hmac-sha256", "hmac_sha256.bin", hkdfParams{"SHA256", "0a0b", "0c0d", 256}},
		{"azihsm/hkdf-hmac-sha512", "hmac_sha512.bin", hkdfParams{"SHA512", "", "f0f1", 512}},
	} {
		rows = append(rows, seedRow{name: "azihsm/hmac-" + strings.ToLower(m.p.digest), requires: []string{m.row}, setup: dataFiles,
			cmd:   `openssl mac ${PROV} -macopt digest:` + m.p.digest + ` -macopt azihsm.key_file:./` + m.file + ` -in data.bin HMAC`,
			check: macOutput(seedECDH, m.p)})
	}
	rows = append(rows, seedRow{name: "azihsm/refuse-hmac-digest-mismatch", requires: []string{"azihsm/hkdf-hmac-sha384"}, setup: dataFiles,
		cmd:   `openssl mac ${PROV} -macopt digest:SHA256 -macopt azihsm.key_file:./derived_hmac_key.bin -in data.bin HMAC`,
		fails: []string{"derived_hmac_key.bin", "the MAC digest must be sha384, not sha256"}})

	// The upstream provider's HMAC command (azihsm_ossl_mac.c: key names the
	// masked key file), verbatim: the message is stdin, empty here. Not the
	// HMAC keyed with the file's name, which the provider printed before.
	hmac384 := hkdfParams{"SHA384", "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 384}
	rows = append(rows,
		seedRow{name: "azihsm/hmac-upstream-key-file", requires: []string{"azihsm/hkdf-hmac-sha384"},
			cmd: upstreamHMAC,
			check: func(t *testing.T, h *host, _ *seedRow, out string) {
				if got := macLine(out); got == hmacHex([]byte("./derived_hmac_key.bin"), nil) {
					t.Fatalf("printed the HMAC keyed with the file's name: %s", got)
				} else if want := hmacHex(hmac384.key(t, seedECDH.secret(t, h)), nil); got != want {
					t.Fatalf("openssl mac printed %s, from the peer's side %s", got, want)
				}
			}},
		seedRow{name: "azihsm/hmac-key-file-sha512", requires: []string{"azihsm/hkdf-hmac-sha512"}, setup: dataFiles,
			cmd:   `openssl mac ${PROV} -macopt digest:SHA512 -macopt key:./hmac_sha512.bin -in data.bin HMAC`,
			check: macOutput(seedECDH, hkdfParams{"SHA512", "", "f0f1", 512})},
		seedRow{name: "azihsm/refuse-hmac-key-file-missing", setup: dataFiles,
			cmd:   `openssl mac ${PROV} -macopt digest:SHA384 -macopt key:./derived_hmac_key.bin -in data.bin HMAC`,
			fails: []string{"masked key file ./derived_hmac_key.bin does not exist"}},
		seedRow{name: "azihsm/refuse-hmac-key-file-under-hsmbridge", requires: []string{"azihsm/hkdf-hmac-sha384"}, setup: dataFiles,
			cmd:   `openssl mac -propquery "?provider=hsmbridge" -provider default -provider hsmbridge -macopt digest:SHA384 -macopt key:./derived_hmac_key.bin -in data.bin HMAC`,
			fails: []string{"HMAC key ./derived_hmac_key.bin names a file", "azihsm_provider"}},
	)

	// KBKDF (SP 800-108 counter mode, HMAC PRF) with the seed's HKDF
	// parameter names; checked as HKDF is, with the test's KBKDF.
	for _, k := range []struct {
		p   kbkdfParams
		typ string
	}{
		{kbkdfParams{"SHA256", "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 256}, "hmac"},
		{kbkdfParams{"SHA384", "", "", 384}, "hmac"},
		{kbkdfParams{"SHA512", "0a0b", "0c0d", 256}, "aes"},
	} {
		file := "kbkdf_" + k.typ + "_" + strings.ToLower(k.p.digest) + ".bin"
		check := kbkdfHMACChecked(seedECDH, file, k.p)
		if k.typ == "aes" {
			check = kbkdfAESChecked(seedECDH, file, k.p)
		}
		rows = append(rows, seedRow{name: "azihsm/kbkdf-" + k.typ + "-" + strings.ToLower(k.p.digest), requires: ecdh, setup: dataFiles,
			cmd: kbkdfCmd(k.p, k.typ, file, ""), check: check})
	}
	kb := kbkdfParams{"SHA256", "01", "02", 256}
	rows = append(rows,
		seedRow{name: "azihsm/refuse-kbkdf-feedback-mode", requires: ecdh,
			cmd:   kbkdfCmd(kb, "hmac", "x.bin", " -kdfopt mode:feedback"),
			fails: []string{"KBKDF from a masked key", "mode feedback is not supported"}, check: noFile("x.bin")},
		seedRow{name: "azihsm/refuse-kbkdf-cmac", requires: ecdh,
			cmd:   kbkdfCmd(kb, "aes", "x.bin", " -kdfopt mac:CMAC -kdfopt cipher:AES-256-CBC"),
			fails: []string{"KBKDF from a masked key", "mac CMAC is not supported"}, check: noFile("x.bin")},
		seedRow{name: "azihsm/refuse-kbkdf-without-l", requires: ecdh,
			cmd:   kbkdfCmd(kb, "hmac", "x.bin", " -kdfopt use-l:0"),
			fails: []string{"KBKDF from a masked key", "use-l:0 is not supported"}, check: noFile("x.bin")},
	)
	return rows
}

// kbkdfHMACChecked: the masked HMAC key KBKDF derived MACs data.bin in the
// backend as the key the test's KBKDF derives from the peer's side.
func kbkdfHMACChecked(s ecdhSide, file string, p kbkdfParams) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		checkBlobFile(t, h, file)
		if got, want := backendMAC(t, h, p.digest, file), localMAC(t, h, p.digest, p.key(t, h, s.secret(t, h))); got != want {
			t.Fatalf("HMAC-%s with the KBKDF key in the backend %s, from the peer's side %s", p.digest, got, want)
		}
	}
}

// kbkdfAESChecked: the masked AES key KBKDF derived wraps a known key in the
// backend, and OpenSSL's default provider unwraps it with the peer side's.
func kbkdfAESChecked(s ecdhSide, file string, p kbkdfParams) func(*testing.T, *host, *seedRow, string) {
	return func(t *testing.T, h *host, _ *seedRow, _ string) {
		t.Helper()
		checkBlobFile(t, h, file)
		wrapUnwrapCheck(t, h, file, p.key(t, h, s.secret(t, h)))
	}
}

// storeAndEncoderVariants: URI forms and refusals, digests, encoders and the
// RAND.
func storeAndEncoderVariants() []seedRow {
	p384 := []string{"azihsm/genpkey-ec-p384"}
	storeFails := func(name, uri string, setup func(*testing.T, *host), want ...string) seedRow {
		return seedRow{name: "azihsm/refuse-store-" + name, requires: p384, setup: setup,
			cmd: `openssl storeutl -noout ${PROV} "` + uri + `"`, fails: want}
	}
	damaged := func(t *testing.T, h *host) {
		b := readBytes(t, h, "ec_p384.bin")
		if err := os.WriteFile(h.path("truncated.bin"), b[:40], 0o600); err != nil {
			t.Fatal(err)
		}
		flipByte(t, h, "ec_p384.bin", "altered.bin", len(b)-5)
	}
	foreign := func(t *testing.T, h *host) {
		other := h.another(t)
		other.shell(seedCmd(`openssl genpkey ${PROV} -algorithm EC -pkeyopt group:P-384 -pkeyopt azihsm.masked_key:./foreign.bin -outform DER -out /dev/null`))
		if err := os.WriteFile(h.path("foreign.bin"), readBytes(t, other, "foreign.bin"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	imp := []string{"azihsm/ec-import-p384"}
	impURI := "azihsm://./ec_imported.bin;type=ec"
	rows := []seedRow{
		{name: "azihsm/store-type-uppercase", requires: p384, setup: dataFiles,
			cmd:   `openssl dgst -sha384 ${PROV} -sign "azihsm://./ec_p384.bin;type=EC" -out signature.sig data.bin`,
			check: streamingVerified("sha384", fromURI(ecP384), "signature.sig", "")},
		{name: "azihsm/store-absolute-path", requires: p384, setup: dataFiles,
			cmd:   `openssl dgst -sha384 ${PROV} -sign "azihsm://$PWD/ec_p384.bin;type=ec" -out signature.sig data.bin`,
			check: streamingVerified("sha384", fromURI(ecP384), "signature.sig", "")},
		storeFails("missing-type", "azihsm://./ec_p384.bin", nil, "the key type is missing"),
		storeFails("unknown-type", "azihsm://./ec_p384.bin;type=dsa", nil, "unknown key type"),
		storeFails("type-mismatch", "azihsm://./ec_p384.bin;type=rsa", nil, "./ec_p384.bin", "an EC key, but the URI says type=rsa"),
		storeFails("missing-file", "azihsm://./missing.bin;type=ec", nil, "masked key file ./missing.bin does not exist"),
		storeFails("truncated-blob", "azihsm://./truncated.bin;type=ec", damaged, "./truncated.bin: ", "truncated"),
		storeFails("altered-blob", "azihsm://./altered.bin;type=ec", damaged, "./altered.bin: ", "altered"),
		storeFails("foreign-blob", "azihsm://./foreign.bin;type=ec", foreign, "./foreign.bin: ", "another backend instance"),
		{name: "azihsm/refuse-store-session-ended", requires: []string{"azihsm/genpkey-ec-p256-session"}, setup: dataFiles,
			cmd:   `openssl dgst -sha256 ${PROV} -sign "azihsm://./ec_p256_session.bin;type=ec" -out x.sig data.bin`,
			fails: []string{"./ec_p256_session.bin", "session has ended"}, check: noFile("x.sig")},

		// Encoders: the public key as the default provider writes the
		// external key's; text shows the public parts and where the private
		// half lives.
		{name: "azihsm/pubout-pem", requires: imp,
			cmd: `openssl pkey ${PROV} -in "` + impURI + `" -pubout -out pub.pem`,
			check: func(t *testing.T, h *host, _ *seedRow, _ string) {
				if got, want := h.read("pub.pem"), h.read(externalPub(t, h, "external_ec.der", "want.pem")); got != want {
					t.Fatalf("pub.pem:\n%s\nwant\n%s", got, want)
				}
			}},
		{name: "azihsm/pubout-der", requires: imp,
			cmd: `openssl pkey ${PROV} -in "` + impURI + `" -pubout -outform DER -out pub.der`,
			check: func(t *testing.T, h *host, _ *seedRow, _ string) {
				h.shell("openssl pkey -inform DER -in external_ec.der -pubout -outform DER -out want.der")
				sameFiles("pub.der", "want.der")(t, h, nil, "")
			}},
		{name: "azihsm/pkey-text", requires: imp,
			cmd: `openssl pkey ${PROV} -in "` + impURI + `" -text -noout`,
			check: func(t *testing.T, h *host, _ *seedRow, out string) {
				pubText := h.shell("openssl pkey -inform DER -in external_ec.der -text_pub -noout")
				for _, want := range []string{`held by backend "` + h.backend + `", not in this process`, "Key reference: " + impURI + ";version=", "Allowed operations: sign verify", pubText} {
					if !strings.Contains(out, want) {
						t.Fatalf("-text lacks %q:\n%s", want, out)
					}
				}
			}},

		// The RAND: -propquery after the -provider flags (the order the seed
		// warns about) still works, and random bytes come from the backend
		// when asked for by configuration.
		{name: "azihsm/propquery-after-provider-flags", setup: dataFiles,
			cmd:   `openssl dgst -sha256 -provider default -provider azihsm_provider -propquery "?provider=azihsm" data.bin`,
			check: digestOutput("sha256")},
		{name: "azihsm/rand-from-backend", setup: func(t *testing.T, h *host) { h.write("rand.cnf", randConf("random", "no")) },
			cmd: `OPENSSL_CONF=./rand.cnf openssl rand -hex 32`,
			check: func(t *testing.T, h *host, r *seedRow, out string) {
				if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).MatchString(out) {
					t.Fatalf("openssl rand -hex 32 printed %q", out)
				}
				// The bytes are the backend's: with no host the same command fails.
				if out, err := h.try("", "sh", "-c", "HSMBRIDGE_SOCKET=./nohost.sock "+r.cmd); err == nil || !strings.Contains(out, "cannot reach hsmhost") {
					t.Fatalf("without a host, openssl rand did not fail for want of the backend: %v\n%s", err, out)
				}
			}},
	}
	// With a mandatory property query and our provider alone, only our
	// digest can answer.
	rows = append(rows, seedRow{name: "azihsm/dgst-sha256-provider-property-mandatory", setup: dataFiles,
		cmd: `openssl dgst -sha256 -provider azihsm_provider -propquery provider=azihsm data.bin`, check: digestOutput("sha256")})
	for _, md := range []string{"sha1", "sha384", "sha512"} {
		rows = append(rows, seedRow{name: "azihsm/dgst-" + md, setup: dataFiles,
			cmd: `openssl dgst -` + md + ` ${PROV} data.bin`, check: digestOutput(md)})
	}
	return rows
}
