package manpage

import (
	"fmt"
	"strings"
)

// Hsmbridge7 renders hsmbridge(7). version goes in the footer ("" for the
// checked-in copy, so that it does not change with every commit).
func Hsmbridge7(version string) string {
	var w Writer
	w.Header("hsmbridge", "7", version, "hsmbridge", "OpenSSL 3 provider for keys held in a hardware security module")

	w.Section("SYNOPSIS")
	w.Example(`openssl req -new -provider akv_provider -provider default \
    -key managedhsm:MyHSM:mykey -subj /CN=example.com -out server.csr
openssl dgst -sha256 -provider akv_provider -provider default \
    -sign managedhsm:MyHSM:mykey -out signature.bin data.txt
openssl genpkey -propquery "?provider=azihsm" -provider default -provider azihsm_provider \
    -algorithm EC -pkeyopt group:P-384 -pkeyopt azihsm.masked_key:./ec_p384.bin \
    -outform DER -out /dev/null`)

	w.Section("DESCRIPTION")
	w.Para("The hsmbridge provider lets any OpenSSL 3 application (the `openssl` command, nginx, curl, Python's `ssl`) sign, decrypt, wrap keys and derive with private keys that never enter the application: it holds a key reference and the public key, hashes locally, and sends the digest over a Unix socket to hsmhost(8), which routes it to a backend plugin (a software simulator, Azure Managed HSM, the Azure Integrated HSM device, a PKCS#11 token, or another). Verification and encryption are done locally by OpenSSL's default provider.")
	w.Para("The provider is installed in OpenSSL's MODULESDIR (`openssl version -m`), so `-provider NAME` finds it without `-provider-path` or `OPENSSL_MODULES`. It is one object installed under three names; the name it is loaded under selects the property of every algorithm it offers:")
	for _, n := range LoadNames {
		w.Item(Bold(n.Name+".so")+"  "+Italic(n.Property), n.Meaning)
	}
	w.Para("Provider order matters in OpenSSL 3.0: for fetches without properties the provider activated first wins. `-provider default` first avoids our keymgmt handling ordinary local keys (which it delegates to the default provider, with the same results).")

	w.Section("KEY REFERENCES")
	w.Para("Wherever OpenSSL takes a key (`-key`, `-inkey`, `-sign`, `-in`, OSSL_STORE_open, a key file for SSL_CTX_use_PrivateKey_file), the provider accepts:")
	for _, r := range RefForms {
		w.Item(Bold(r.Form), r.Meaning, "Example: `"+r.Example+"`")
	}
	w.Para("References are routed by hsmhost on their canonical form: `akv:vault=MyHSM,name=mykey` and `managedhsm:MyHSM:mykey` are the same key. A reference loaded is pinned to the key version resolved at load time.")

	w.Section("CONFIGURATION")
	w.Para("Settings go in the provider's section of openssl.cnf and are read once, when the provider is loaded. A setting that is not valid does not stop the provider from loading: every request fails with a message naming it. A provider section that is declared but not activated still supplies its settings to `-provider NAME` on the command line, so the seeds' commands work unchanged once the section is included.")
	for _, s := range Settings {
		w.Item(Bold(s.Name)+" = "+Italic("value"), s.Meaning, "Default: "+s.Default+".", "Example: `"+s.Example+"`")
	}
	w.Para("The packages install these sections, for hsmhost running as the system service of user hsmbridge, as `/etc/hsmbridge/openssl-hsmbridge.cnf`. To use them from every application, add this line at the end of `/etc/ssl/openssl.cnf` (or of the file `OPENSSL_CONF` names):")
	w.Example(".include /etc/hsmbridge/openssl-hsmbridge.cnf")
	w.Para("The file holds:")
	w.Example(CnfSnippet)
	w.Para("It declares the providers without activating them. To have programs that only take a key file (nginx, curl, Python) load key-reference files, add `activate = 1` to the section of the name they should load, and activate the default provider too (`[provider_sect] default = default_sect`, `[default_sect] activate = 1`). If your openssl.cnf names its provider section otherwise, add the three provider lines to that section instead of the first two sections above. Random bytes from the backend (`HSMBRIDGE-RAND`) are chosen with OpenSSL's own `[random]` section.")

	w.Section("PARAMETERS")
	w.Para("Parameters the provider defines for operations, beyond OpenSSL's own (group, digest, pad-mode, rsa_oaep_md, salt, info and the others keep their OpenSSL meanings):")
	for _, p := range Params {
		body := []string{p.Meaning, "Used by: " + p.Where + ". Type: " + p.Type + "."}
		if p.Default != "" {
			body = append(body, "Default: "+p.Default+".")
		}
		body = append(body, "Example: `"+p.Example+"`")
		w.Item(Bold(p.Name), body...)
	}

	w.Section("ENVIRONMENT")
	for _, e := range ProviderEnv {
		w.Item(Bold(e.Name), e.Meaning)
	}

	w.Section("FILES")
	w.Item(Italic("MODULESDIR")+Bold("/hsmbridge.so")+", "+Bold("akv_provider.so")+", "+Bold("azihsm_provider.so"),
		"The module, under its three names. MODULESDIR is what `openssl version -m` prints: /usr/lib/x86_64-linux-gnu/ossl-modules on Debian 12 amd64.")
	w.Item(Bold("/etc/hsmbridge/openssl-hsmbridge.cnf"), "The provider sections above, to include from openssl.cnf.")
	w.Item(Bold("/run/hsmbridge/hsmhost.sock"), "The socket of the hsmhost system service (mode 0660, group hsmbridge): applications that are not root connect as members of the group hsmbridge.")

	w.Section("ERRORS")
	w.Para("Every failure is put on OpenSSL's error queue under the provider's load name with a reason string; errors hsmhost reports keep its message, which names the key reference and the cause, for example:")
	w.Example(`error:40000067:akv_provider:call:key not found:...:managedhsm:MyHSM:nokey: key "MyHSM/nokey" not found in backend "simulator"`)
	w.Para("A socket that fails the trust checks is refused before anything is sent; the message names the socket, the uid found, the uids trusted and the setting to change (hsmbridge_host_uid).")

	w.Section("EXAMPLES")
	w.Para("A CSR, a self-signed certificate and a signature with a Managed HSM key, verified with its public key:")
	w.Example(`hsmhost key create managedhsm:MyHSM:mykey --kty RSA --size 3072 --ops sign,verify,decrypt
openssl req -new -provider akv_provider -provider default \
    -key managedhsm:MyHSM:mykey -subj /CN=myserver.example.com -out server.csr
openssl req -new -x509 -provider akv_provider -provider default \
    -key managedhsm:MyHSM:mykey -subj /CN=myserver.example.com -days 365 -out server.crt
hsmhost key pubkey managedhsm:MyHSM:mykey > pubkey.pem
openssl dgst -sha256 -provider akv_provider -provider default \
    -sign managedhsm:MyHSM:mykey -out signature.bin data.txt
openssl dgst -sha256 -verify pubkey.pem -signature signature.bin data.txt`)
	w.Para("A masked EC key in the backend, signing and verifying with it (the Integrated HSM seed's commands):")
	w.Example(`PROV='-propquery ?provider=azihsm -provider default -provider azihsm_provider'
openssl genpkey $PROV -algorithm EC -pkeyopt group:P-384 \
    -pkeyopt azihsm.masked_key:./ec_p384.bin -outform DER -out /dev/null
openssl dgst -sha384 $PROV -sign "azihsm://./ec_p384.bin;type=ec" -out sig.bin data.bin
openssl dgst -sha384 $PROV -verify "azihsm://./ec_p384.bin;type=ec" -signature sig.bin data.bin`)

	w.Section("SEE ALSO")
	w.Para(seeAlso("hsmhost(8)", "openssl(1)", "config(5)", "provider(7)", "openssl-req(1)", "openssl-genpkey(1)"))
	w.Para("The repository's adapters/openssl/README.md describes the provider in depth (trust checks, fork, failing fast, masked keys, ECDH, HKDF, KBKDF and HMAC).")
	return w.String()
}

func seeAlso(pages ...string) string {
	var parts []string
	for _, p := range pages {
		name, sec, _ := strings.Cut(strings.TrimSuffix(p, ")"), "(")
		parts = append(parts, fmt.Sprintf("`%s`(%s)", name, sec))
	}
	return strings.Join(parts, ", ")
}
