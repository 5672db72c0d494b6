package e2e

// The seed conformance table's rows for the Managed HSM seed
// (conformance_test.go).

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// managedHSMRows: the Managed HSM seed's commands on mykey, once an RSA-3072
// key as its myrsakey and once a P-256 key as its myeckey; its security
// domain certificates; and issue 3's variants (decryption, AES key wrap,
// version pinning, RSA-PSS parameters).
// mhsmSignRows are the Managed HSM seed's CSR, self-signed certificate,
// sign and verify commands, verbatim, with managedhsm:MyHSM:mykey made by
// `hsmhost key create` with args (the seed's `az keyvault key create`), and
// the akv: form; rows are named prefix+<command>-<name>.
func mhsmSignRows(prefix, name string, args []string) []seedRow {
	key := mhsmKey("mykey", "mykey.pub", args...)
	return []seedRow{
		{name: prefix + "csr-" + name, seed: true, setup: key,
			cmd: `openssl req -new \
    -provider akv_provider -provider default \
    -key "managedhsm:MyHSM:mykey" \
    -subj "/CN=myserver.example.com" \
    -out server.csr`,
			check: selfSigned("server.csr", "mykey.pub")},
		{name: prefix + "x509-self-signed-" + name, seed: true, setup: key, stdin: newlines,
			cmd: `openssl req -new -x509 \
    -provider akv_provider -provider default \
    -key "managedhsm:MyHSM:mykey" \
    -days 365 \
    -out server.crt`,
			check: selfSigned("server.crt", "mykey.pub")},
		{name: prefix + "dgst-sign-" + name, seed: true, setup: setups(dataFiles, key),
			cmd: `openssl dgst -sha256 \
    -provider akv_provider -provider default \
    -sign "managedhsm:MyHSM:mykey" \
    -out signature.bin data.txt`,
			check: verifiesWith("mykey.pub", "")},
		{name: prefix + "dgst-verify-pubkey-" + name, seed: true, requires: []string{prefix + "dgst-sign-" + name},
			setup: func(t *testing.T, h *host) { h.write("pubkey.pem", h.read("mykey.pub")) },
			cmd:   `openssl dgst -sha256 -verify pubkey.pem -signature signature.bin data.txt`,
			check: verifyOK("Verified OK", "signature.bin")},
		{name: prefix + "akv-uri-sign-" + name, setup: setups(dataFiles, key),
			cmd:   `openssl dgst -sha256 -provider akv_provider -provider default -sign "akv:vault=MyHSM,name=mykey" -out signature.bin data.txt`,
			check: verifiesWith("mykey.pub", "")},
	}
}

// mhsmDecryptRows decrypt, with Key Vault's three algorithms, ciphertexts
// the default provider made with the public key of managedhsm:MyHSM:myrsakey
// (made with args); rows are named prefix+decrypt-<algorithm>+suffix.
func mhsmDecryptRows(prefix, suffix string, args []string) []seedRow {
	var rows []seedRow
	rsaKey := mhsmKey("myrsakey", "myrsakey.pub", args...)
	for _, v := range []struct{ name, opts string }{
		{"rsa-oaep", "-pkeyopt rsa_padding_mode:oaep"},
		{"rsa-oaep-256", "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256"},
		{"rsa1_5", "-pkeyopt rsa_padding_mode:pkcs1"},
	} {
		rows = append(rows, seedRow{name: prefix + "decrypt-" + v.name + suffix,
			setup: setups(rsaKey, randomPlaintext, shellSetup("openssl pkeyutl -encrypt -pubin -inkey myrsakey.pub "+v.opts+" -in plaintext.bin -out ciphertext.bin")),
			cmd:   `openssl pkeyutl -decrypt -provider akv_provider -provider default -inkey managedhsm:MyHSM:myrsakey ` + v.opts + ` -in ciphertext.bin -out decrypted.bin`,
			check: sameFiles("decrypted.bin", "plaintext.bin")})
	}
	return rows
}

// mhsmAESRows wrap and unwrap with oct keys of 128, 192 and 256 bits (the
// last is the seed's myaeskey): the backend's wrap equals the default
// provider's with the key's bytes (which secret reads from the backend's
// test store), and the backend unwraps the default provider's wrap.
func mhsmAESRows(prefix string, secret func(t *testing.T, h *host, name string) []byte) []seedRow {
	var rows []seedRow
	for _, bits := range []int{128, 192, 256} {
		name := fmt.Sprintf("aes%d", bits)
		if bits == 256 {
			name = "myaeskey" // the seed's
		}
		ref := "managedhsm:MyHSM:" + name
		create := func(t *testing.T, h *host) {
			h.hsmhost("key", "create", ref, "--kty", "oct", "--size", fmt.Sprint(bits), "--ops", "wrapKey,unwrapKey")
			randomFile(t, h, "key.bin", 32)
		}
		cipher := fmt.Sprintf("id-aes%d-wrap", bits)
		rows = append(rows,
			seedRow{name: fmt.Sprintf("%saes-wrap-%d", prefix, bits), setup: create,
				cmd: `openssl pkeyutl -encrypt -provider akv_provider -provider default -inkey ` + ref + ` -in key.bin -out wrapped.bin`,
				check: func(t *testing.T, h *host, _ *seedRow, _ string) {
					if want := defaultProviderWrap(t, h, cipher, secret(t, h, name), "key.bin", false); !bytes.Equal(readBytes(t, h, "wrapped.bin"), want) {
						t.Fatalf("the backend's wrap differs from the default provider's %s", cipher)
					}
				}},
			seedRow{name: fmt.Sprintf("%saes-unwrap-%d", prefix, bits),
				setup: setups(create, func(t *testing.T, h *host) {
					w := defaultProviderWrap(t, h, cipher, secret(t, h, name), "key.bin", false)
					if err := os.WriteFile(h.path("wrapped.bin"), w, 0o644); err != nil {
						t.Fatal(err)
					}
				}),
				cmd:   `openssl pkeyutl -decrypt -provider akv_provider -provider default -inkey ` + ref + ` -in wrapped.bin -out unwrapped.bin`,
				check: sameFiles("unwrapped.bin", "key.bin")},
		)
	}
	return rows
}

func managedHSMRows() []seedRow {
	var rows []seedRow
	for _, k := range []struct {
		name string
		args []string
	}{
		{"rsa3072", []string{"--kty", "RSA-HSM", "--size", "3072", "--ops", "sign,decrypt"}},
		{"ec-p256", []string{"--kty", "EC-HSM", "--curve", "P-256", "--ops", "sign"}},
		{"ec-p256k", []string{"--kty", "EC-HSM", "--curve", "P-256K", "--ops", "sign"}}, // secp256k1, ES256K
	} {
		rows = append(rows, mhsmSignRows("mhsm/", k.name, k.args)...)
	}
	for i := 1; i <= 3; i++ {
		n := fmt.Sprint(i)
		rows = append(rows, seedRow{name: "mhsm/security-domain-cert-" + n, seed: true, stdin: newlines,
			cmd: `openssl req -newkey rsa:2048 -nodes -keyout cert_` + n + `.key -x509 -days 365 -out cert_` + n + `.cer`,
			check: func(t *testing.T, h *host, r *seedRow, out string) {
				h.shell("openssl pkey -in cert_" + n + ".key -pubout -out cert.pub")
				selfSigned("cert_"+n+".cer", "cert.pub")(t, h, r, out)
			}})
	}
	rows = append(rows, mhsmDecryptRows("mhsm/", "", []string{"--kty", "RSA-HSM", "--size", "3072", "--ops", "sign,decrypt"})...)
	rows = append(rows, mhsmAESRows("mhsm/", func(t *testing.T, h *host, name string) []byte {
		return simulatorSecret(t, h, "MyHSM", name)
	})...)

	// ?version= pins the version for every operation.
	ecVersions := setups(dataFiles, twoVersions("mykey", "--kty", "EC", "--curve", "P-256", "--ops", "sign"))
	rsaVersions := setups(randomPlaintext, twoVersions("myrsakey", "--kty", "RSA", "--size", "2048", "--ops", "sign,decrypt"),
		shellSetup("openssl pkeyutl -encrypt -pubin -inkey v1.pub -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in plaintext.bin -out ciphertext.bin"))
	rows = append(rows,
		seedRow{name: "mhsm/version-pinned-sign", setup: ecVersions,
			cmd:   `openssl dgst -sha256 -provider akv_provider -provider default -sign "managedhsm:MyHSM:mykey?version=$(cat v1.txt)" -out signature.bin data.txt`,
			check: verifiesWith("v1.pub", "v2.pub")},
		seedRow{name: "mhsm/version-pinned-sign-akv-form", setup: ecVersions,
			cmd:   `openssl dgst -sha256 -provider akv_provider -provider default -sign "akv:vault=MyHSM,name=mykey,version=$(cat v1.txt)" -out signature.bin data.txt`,
			check: verifiesWith("v1.pub", "v2.pub")},
		seedRow{name: "mhsm/unversioned-means-latest", setup: ecVersions,
			cmd:   `openssl dgst -sha256 -provider akv_provider -provider default -sign "managedhsm:MyHSM:mykey" -out signature.bin data.txt`,
			check: verifiesWith("v2.pub", "v1.pub")},
		seedRow{name: "mhsm/version-pinned-csr", setup: ecVersions,
			cmd:   `openssl req -new -provider akv_provider -provider default -key "managedhsm:MyHSM:mykey?version=$(cat v1.txt)" -subj "/CN=myserver.example.com" -out server.csr`,
			check: selfSigned("server.csr", "v1.pub")},
		seedRow{name: "mhsm/version-pinned-decrypt", setup: rsaVersions,
			cmd:   `openssl pkeyutl -decrypt -provider akv_provider -provider default -inkey "managedhsm:MyHSM:myrsakey?version=$(cat v1.txt)" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in ciphertext.bin -out decrypted.bin`,
			check: sameFiles("decrypted.bin", "plaintext.bin")},
		seedRow{name: "mhsm/refuse-decrypt-other-version", setup: rsaVersions,
			cmd:   `openssl pkeyutl -decrypt -provider akv_provider -provider default -inkey "managedhsm:MyHSM:myrsakey" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in ciphertext.bin -out decrypted.bin`,
			fails: []string{"managedhsm:MyHSM:myrsakey", "decryption with key"}, check: noFile("decrypted.bin")},
	)

	// A wrap made with version 1 unwraps with version 1 pinned, and not with
	// the latest version.
	aesVersions := setups(func(t *testing.T, h *host) { randomFile(t, h, "key.bin", 32) },
		twoVersions("myaeskey", "--kty", "oct", "--size", "256", "--ops", "wrapKey,unwrapKey"),
		shellSetup(`openssl pkeyutl -encrypt -provider akv_provider -provider default -inkey "managedhsm:MyHSM:myaeskey?version=$(cat v1.txt)" -in key.bin -out wrapped.bin`))
	rows = append(rows,
		seedRow{name: "mhsm/version-pinned-aes-unwrap", setup: aesVersions,
			cmd:   `openssl pkeyutl -decrypt -provider akv_provider -provider default -inkey "managedhsm:MyHSM:myaeskey?version=$(cat v1.txt)" -in wrapped.bin -out unwrapped.bin`,
			check: sameFiles("unwrapped.bin", "key.bin")},
		seedRow{name: "mhsm/refuse-aes-unwrap-other-version", setup: aesVersions,
			cmd:   `openssl pkeyutl -decrypt -provider akv_provider -provider default -inkey "managedhsm:MyHSM:myaeskey" -in wrapped.bin -out unwrapped.bin`,
			fails: []string{"managedhsm:MyHSM:myaeskey", "AES key unwrap"}, check: noFile("unwrapped.bin")},
	)

	// PS256 (the seed's table): PSS over SHA-256 with an RSA key.
	rows = append(rows, seedRow{name: "mhsm/dgst-sign-ps256", setup: setups(dataFiles, mhsmKey("mykey", "mykey.pub", "--kty", "RSA-HSM", "--size", "3072", "--ops", "sign,decrypt")),
		cmd: `openssl dgst -sha256 -provider akv_provider -provider default -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -sign "managedhsm:MyHSM:mykey" -out signature.bin data.txt`,
		check: func(t *testing.T, h *host, _ *seedRow, _ string) {
			opts := " -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest"
			if out := h.shell("openssl dgst -sha256" + opts + " -verify mykey.pub -signature signature.bin data.txt"); !strings.Contains(out, "Verified OK") {
				t.Fatalf("default provider: %s", out)
			}
			// Not a PKCS#1 v1.5 signature.
			h.fails("openssl dgst -sha256 -verify mykey.pub -signature signature.bin data.txt", "Verification failure")
		}})

	// RSA-PSS in CSRs and certificates carries RFC 4055 parameters.
	pssKey := mhsmKey("mykey", "mykey.pub", "--kty", "RSA-HSM", "--size", "3072", "--ops", "sign")
	pss := ` -sha384 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest`
	rows = append(rows,
		seedRow{name: "mhsm/pss-csr-rfc4055", setup: pssKey,
			cmd:   `openssl req -new -provider akv_provider -provider default -key "managedhsm:MyHSM:mykey" -subj "/CN=myserver.example.com"` + pss + ` -out server.csr`,
			check: checks(selfSigned("server.csr", "mykey.pub"), rfc4055("server.csr"))},
		seedRow{name: "mhsm/pss-x509-rfc4055", setup: pssKey,
			cmd:   `openssl req -new -x509 -provider akv_provider -provider default -key "managedhsm:MyHSM:mykey" -subj "/CN=myserver.example.com" -days 365` + pss + ` -out server.crt`,
			check: checks(selfSigned("server.crt", "mykey.pub"), rfc4055("server.crt"))},
		seedRow{name: "mhsm/refuse-unknown-key", setup: dataFiles,
			cmd:   `openssl dgst -sha256 -provider akv_provider -provider default -sign "managedhsm:MyHSM:nokey" -out signature.bin data.txt`,
			fails: []string{"managedhsm:MyHSM:nokey", "not found"}, check: noFile("signature.bin")},
	)
	return rows
}
