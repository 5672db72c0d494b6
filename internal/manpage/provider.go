package manpage

// The reference for hsmbridge(7), the OpenSSL provider module. provider_test.go
// reads the C sources and fails when the code reads a parameter, setting,
// variable or store scheme that is not in these tables, or when a table names
// one the code does not have.

// LoadName is one of the names the module is installed and loaded under.
type LoadName struct {
	Name, Property, Meaning string
}

// LoadNames: one object, three files; the name selects the property.
var LoadNames = []LoadName{
	{"hsmbridge", "provider=hsmbridge", "The module under its own name (also any load name that starts with neither akv nor azihsm)."},
	{"akv_provider", "provider=akv", "The Managed HSM seed's name: any load name starting with akv."},
	{"azihsm_provider", "provider=azihsm", "The Integrated HSM seed's name: any load name starting with azihsm. Only under this name are ECDH, HKDF and KBKDF on masked keys registered, and OAEP with SHA-1 refused for backend keys, as the device does."},
}

// RefForm is a key reference the store and the decoders accept.
type RefForm struct {
	Scheme  string // the OSSL_STORE scheme ("" for the key-reference file)
	Form    string
	Example string
	Meaning string
}

// RefForms lists the key reference forms.
var RefForms = []RefForm{
	{"managedhsm", "managedhsm:<hsm>:<key>[?version=<v>]", "managedhsm:MyHSM:mykey",
		"A Managed HSM key (the Managed HSM seed's form). Routed by hsmhost's configuration: to the Managed HSM plugin, or to the simulator by default."},
	{"akv", "akv:vault=<hsm>,name=<key>[,version=<v>]", "akv:vault=MyHSM,name=mykey",
		"The Key Vault style of the same reference: the same key as managedhsm:<hsm>:<key>."},
	{"hsmbridge", "hsmbridge:<namespace>:<key>[?version=<v>]", "hsmbridge:lab:mykey",
		"A key of any backend, by namespace and name."},
	{"pkcs11", "pkcs11:[token=<label>;]object=<label>[;id=<%XX...>][;type=private]", "pkcs11:token=tok1;object=web-key;type=private",
		"An RFC 7512 PKCS#11 URI, as pkcs11-provider and libp11 take it: object is the key's CKA_LABEL, id its CKA_ID (the version). Routed by hsmhost's configuration, usually to the PKCS#11 plugin (route prefix \"pkcs11:\"), which also chooses the module and the PIN: pin-value, pin-source, module-name and module-path are refused; manufacturer, model, serial, library-* and slot-* are accepted and ignored."},
	{"azihsm", "azihsm://<path>;type=ec|rsa|rsa-pss", "azihsm://./ec_p384.bin;type=ec",
		"A masked key file (the Integrated HSM seed's form), relative to the working directory or absolute; written by genpkey with azihsm.masked_key. type is required."},
	{"", "-----BEGIN PRIVATE KEY-----", "hsmhost key ref managedhsm:MyHSM:mykey > key.pem",
		"A key-reference file, the form hsmhost key ref writes by default: a PKCS#8 PrivateKeyInfo whose algorithm is hsmbridge's key-reference identifier (OID 2.25.133896219887739542807793727763915612139) and whose content is the versioned reference; it holds no secret. Programs that pick PEM blocks by label take it for a private key (Apache's SSLProxyMachineCertificateFile, Postfix's smtpd_tls_chain_files), and programs that take only a key file (nginx, curl, Python, HAProxy, stunnel) load it through the provider's decoder. It may follow other PEM blocks, such as the certificate. Loaded once the provider is activated in openssl.cnf. Such a key cannot be exported: openssl pkcs8 -topk8 and pkcs12 -export refuse it, naming the reference."},
	{"", "-----BEGIN HSMBRIDGE KEY REFERENCE-----", "hsmhost key ref --pkcs8=false managedhsm:MyHSM:mykey > key.pem",
		"The older key-reference file: a PEM block of its own label holding only the reference; still read everywhere the PKCS#8 form is, except by programs that choose PEM blocks by label."},
}

// Setting is a directive of the provider's openssl.cnf section.
type Setting struct {
	Name, Default, Meaning, Example string
}

// Settings are read once, when the provider is loaded (OSSL_provider_init).
var Settings = []Setting{
	{"hsmbridge_socket", "$HSMBRIDGE_SOCKET, else /run/hsmbridge/hsmhost.sock for root, else $XDG_RUNTIME_DIR/hsmbridge/hsmhost.sock if that folder exists and is the user's, else /tmp/hsmbridge-<uid>/hsmhost.sock",
		"The hsmhost socket. It is used only if it passes the trust checks: its folder and the socket belong to a trusted uid (root, the process's own, or one in hsmbridge_host_uid), the folder is not writable by group or others (unless sticky), and the process that answers runs as a trusted uid.",
		"hsmbridge_socket = /run/hsmbridge/hsmhost.sock"},
	{"hsmbridge_host_uid", "none",
		"Users (names or numeric uids, separated by commas or spaces, at most 8) besides root and the process's own uid whose hsmhost socket is trusted. Set it when hsmhost runs as a service user, as the Debian package's does.",
		"hsmbridge_host_uid = hsmbridge"},
	{"hsmbridge_autostart", "yes",
		"Start `hsmhost serve` when nothing listens on the socket: yes or no (also true/false, on/off, 1/0). Turn it off where hsmhost runs as a system service.",
		"hsmbridge_autostart = no"},
	{"hsmbridge_hsmhost", "$HSMBRIDGE_HSMHOST, else <module directory>/../bin/hsmhost if it exists, else hsmhost from PATH (default /usr/local/bin:/usr/bin:/bin)",
		"The binary autostart runs.",
		"hsmbridge_hsmhost = /usr/bin/hsmhost"},
	{"hsmbridge_timeout_ms", "$HSMBRIDGE_TIMEOUT_MS, else 30000",
		"How long one request (or a connection's Hello) may wait for hsmhost's answer, in milliseconds, from 1 to 3600000.",
		"hsmbridge_timeout_ms = 5000"},
	{"hsmbridge_retry_ms", "1000",
		"After hsmhost failed slowly (a request timed out, autostart did not bring a host up, its listen queue was full), requests fail at once for this long, then one request tries the host again; 0 turns this off.",
		"hsmbridge_retry_ms = 1000"},
}

// Param is a parameter the provider defines for an operation (-pkeyopt,
// -kdfopt, -macopt, context parameters).
type Param struct {
	Name    string
	Where   string // the operations and how the openssl command passes it
	Type    string
	Default string
	Meaning string
	Example string
	// Standard marks a name OpenSSL defines, to which the provider gives a
	// meaning of its own: the C code may spell it with OpenSSL's macro.
	Standard bool
}

// Params lists the provider's own parameters.
var Params = []Param{
	{Name: "azihsm.masked_key", Where: "key generation and import (genpkey -pkeyopt, req -newkey)", Type: "file path",
		Default: "none (required with any azihsm.* key generation parameter)",
		Meaning: "Makes the key in the backend, not locally, and writes its masked blob to this file (mode 0600, relative to the working directory).",
		Example: "-pkeyopt azihsm.masked_key:./ec_p384.bin"},
	{Name: "azihsm.key_usage", Where: "key generation and import", Type: "string", Default: "digitalSignature",
		Meaning: "digitalSignature, keyAgreement (EC) or keyEncipherment (RSA); one per key, enforced by the backend.",
		Example: "-pkeyopt azihsm.key_usage:keyAgreement"},
	{Name: "azihsm.session", Where: "key generation and import", Type: "boolean", Default: "false",
		Meaning: "A session key: usable while the application process keeps its connection to hsmhost (true/false, yes/no, 1/0).",
		Example: "-pkeyopt azihsm.session:true"},
	{Name: "azihsm.input_key", Where: "key import", Type: "file path", Default: "none (generate: EC only)",
		Meaning: "A DER private key to import (EC: SEC1 or PKCS#8; RSA: PKCS#1 or PKCS#8). It is wrapped with CKM_RSA_AES_KEY_WRAP under the backend's import key; never sent in clear.",
		Example: "-pkeyopt azihsm.input_key:./external_rsa.der"},
	{Name: "output_file", Where: "ECDH (pkeyutl -derive -pkeyopt), HKDF and KBKDF (kdf -kdfopt)", Type: "file path",
		Default: "ECDH: none (required); HKDF, KBKDF: the caller's buffer",
		Meaning: "Where the masked output is written (mode 0600); the caller's buffer is not filled.",
		Example: "-pkeyopt output_file:shared_secret.bin"},
	{Name: "azihsm.ikm_file", Where: "HKDF, KBKDF (kdf -kdfopt)", Type: "file path", Default: "none (or the blob itself as key)",
		Meaning: "The masked input keying material, such as an ECDH output_file.",
		Example: "-kdfopt azihsm.ikm_file:./shared_secret.bin"},
	{Name: "derived_key_type", Where: "HKDF, KBKDF", Type: "string", Default: "aes",
		Meaning: "aes or hmac: the kind of masked key derived.",
		Example: "-kdfopt derived_key_type:hmac"},
	{Name: "derived_key_bits", Where: "HKDF, KBKDF", Type: "number", Default: "256",
		Meaning: "Size of the derived key in bits: AES 128, 192 or 256; HMAC exactly the digest's size.",
		Example: "-kdfopt derived_key_bits:384"},
	{Name: "r", Where: "KBKDF (kdf -kdfopt)", Type: "number", Default: "32",
		Meaning: "OpenSSL's KBKDF counter length in bits; masked keys take 32 only (the backend's counter), and mode counter, mac HMAC, use-l and use-separator 1, no seed.",
		Example: "-kdfopt r:32", Standard: true},
	{Name: "azihsm.blob_len", Where: "HKDF, KBKDF (gettable context parameter)", Type: "size_t", Default: "",
		Meaning: "The length of the masked blob written into the caller's buffer.",
		Example: "EVP_KDF_CTX_get_params(ctx, {azihsm.blob_len})"},
	{Name: "azihsm.key_file", Where: "HMAC (mac -macopt)", Type: "file path", Default: "none",
		Meaning: "The masked HMAC key file (the key parameter naming a file does the same, as in the upstream provider).",
		Example: "-macopt azihsm.key_file:./hmac_key.bin"},
	{Name: "key", Where: "HMAC (mac -macopt), under azihsm_provider", Type: "octet string", Default: "none",
		Meaning: "When its bytes name an existing regular file, that masked key file; a blob with the HSMBMASK magic is the masked key itself; otherwise OpenSSL's HMAC key.",
		Example: "-macopt key:./hmac_key.bin", Standard: true},
	{Name: "algorithm", Where: "AES key wrap with a backend AES key (pkeyutl -encrypt/-decrypt -pkeyopt)", Type: "string",
		Default: "A128KW, A192KW or A256KW for the key's size",
		Meaning: "A128KW, A192KW, A256KW, CKM_AES_KEY_WRAP (RFC 3394) or CKM_AES_KEY_WRAP_PAD (RFC 5649); OpenSSL's cipher names (id-aes256-wrap, ...) are accepted too.",
		Example: "-pkeyopt algorithm:CKM_AES_KEY_WRAP_PAD", Standard: true},
	{Name: "hsmbridge-last-total-ns", Where: "signature and asymmetric cipher contexts (gettable)", Type: "uint64", Default: "",
		Meaning: "The last host request's round trip as measured in the provider, in nanoseconds.",
		Example: "EVP_PKEY_CTX_get_params(pctx, {hsmbridge-last-total-ns})"},
	{Name: "hsmbridge-last-host-ns", Where: "signature and asymmetric cipher contexts (gettable)", Type: "uint64", Default: "",
		Meaning: "Time the last request spent in hsmhost, from the response's timing.",
		Example: "EVP_PKEY_CTX_get_params(pctx, {hsmbridge-last-host-ns})"},
	{Name: "hsmbridge-last-backend-ns", Where: "signature and asymmetric cipher contexts (gettable)", Type: "uint64", Default: "",
		Meaning: "Time the last request spent in the backend call, from the response's timing.",
		Example: "EVP_PKEY_CTX_get_params(pctx, {hsmbridge-last-backend-ns})"},
	{Name: "hsmbridge-last-plugin-ns", Where: "signature and asymmetric cipher contexts (gettable)", Type: "uint64", Default: "",
		Meaning: "Time the last request spent in the plugin, from the response's timing.",
		Example: "EVP_PKEY_CTX_get_params(pctx, {hsmbridge-last-plugin-ns})"},
}

// EnvVar is an environment variable the provider reads.
type EnvVar struct {
	Name, Meaning string
	// OpenSSL marks a variable libcrypto reads, not the provider.
	OpenSSL bool
}

// ProviderEnv lists the variables.
var ProviderEnv = []EnvVar{
	{Name: "HSMBRIDGE_SOCKET", Meaning: "The socket when hsmbridge_socket is not set; also passed to an autostarted host."},
	{Name: "HSMBRIDGE_HSMHOST", Meaning: "The hsmhost binary when hsmbridge_hsmhost is not set."},
	{Name: "HSMBRIDGE_TIMEOUT_MS", Meaning: "The per-request timeout when hsmbridge_timeout_ms is not set (default 30000)."},
	{Name: "HSMBRIDGE_DEBUG", Meaning: "1 traces to standard error: initialisation, connections, fork resets, requests, errors."},
	{Name: "XDG_RUNTIME_DIR", Meaning: "The default socket's folder for users other than root, when it is an existing folder owned by the user."},
	{Name: "PATH", Meaning: "Searched for hsmhost by autostart when hsmbridge_hsmhost has no slash (default /usr/local/bin:/usr/bin:/bin)."},
	{Name: "OPENSSL_CONF", Meaning: "OpenSSL's: the configuration file to read instead of the system's openssl.cnf.", OpenSSL: true},
	{Name: "OPENSSL_MODULES", Meaning: "OpenSSL's: the folder provider modules are loaded from instead of MODULESDIR; not needed for an installed provider.", OpenSSL: true},
}

// CnfSnippet is the provider section the packages install as
// /etc/hsmbridge/openssl-hsmbridge.cnf (packaging/openssl-hsmbridge.cnf is
// checked against it) for hsmhost running as the service user hsmbridge.
const CnfSnippet = `[openssl_init]
providers = provider_sect

[provider_sect]
hsmbridge = hsmbridge_sect
akv_provider = hsmbridge_akv_sect
azihsm_provider = hsmbridge_azihsm_sect

[hsmbridge_sect]
hsmbridge_socket = /run/hsmbridge/hsmhost.sock
hsmbridge_host_uid = hsmbridge
hsmbridge_autostart = no

[hsmbridge_akv_sect]
hsmbridge_socket = /run/hsmbridge/hsmhost.sock
hsmbridge_host_uid = hsmbridge
hsmbridge_autostart = no

[hsmbridge_azihsm_sect]
hsmbridge_socket = /run/hsmbridge/hsmhost.sock
hsmbridge_host_uid = hsmbridge
hsmbridge_autostart = no
`
