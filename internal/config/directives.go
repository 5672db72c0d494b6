package config

// Directives documents every attribute and block the configuration file
// accepts: the reference that hsmhost(8) is rendered from (cmd/hsmhost
// manpage.go). directives_test.go checks that the parser's schemas accept
// exactly these names, with the same required ones, and that docs/CONFIG.md
// mentions each; so a directive added to the parser without a line here
// fails the tests, and so does one documented here that the parser refuses.

// Directive is one attribute or block of the configuration file.
type Directive struct {
	// Block is where the directive goes: "" at the top level, else the
	// type of the block that holds it ("backend", "route", "policy").
	Block string
	Name  string
	// Label names the block's label ("name" for backend "<name>"); empty
	// for attributes and unlabelled blocks.
	Label string
	// Kind is "string", "number", "bool", "list of strings", "map of
	// strings" or "block".
	Kind     string
	Required bool
	// Default is what applies when the directive is absent ("" when there
	// is none to state: required directives, blocks).
	Default string
	Meaning string
	// Example is one line of HCL (a block's opening line for blocks).
	Example string
}

// Directives lists the top-level attributes first, then each block type
// and its attributes, in the order the pages show them.
var Directives = []Directive{
	{Name: "socket", Kind: "string", Default: "$HSMBRIDGE_SOCKET, else /run/hsmbridge/hsmhost.sock for root, else $XDG_RUNTIME_DIR/hsmbridge/hsmhost.sock, else /tmp/hsmbridge-<uid>/hsmhost.sock",
		Meaning: "Absolute path of the Unix socket hsmhost serves. --socket and $HSMBRIDGE_SOCKET take precedence. Clients (the OpenSSL provider, hsmhost key) read $HSMBRIDGE_SOCKET and the same defaults, so a socket set here must also be given to them (hsmbridge_socket in openssl.cnf). Takes effect on restart.",
		Example: `socket = "/run/hsmbridge/hsmhost.sock"`},
	{Name: "socket_mode", Kind: "string", Default: `"0600"`,
		Meaning: "Octal permissions of the socket, as a string. Takes effect on restart.",
		Example: `socket_mode = "0660"`},
	{Name: "socket_group", Kind: "string", Default: "none (hsmhost's primary group)",
		Meaning: "Group (name or number) given the socket and, when hsmhost creates it, the socket's directory (then mode 0750 instead of 0700). Applications in this group may connect when socket_mode allows it. Takes effect on restart.",
		Example: `socket_group = "hsmbridge"`},
	{Name: "log_level", Kind: "string", Default: "info",
		Meaning: "trace, debug, info, warn, error or off. --log-level and $HSMBRIDGE_LOG_LEVEL take precedence; otherwise a reload applies a change at once.",
		Example: `log_level = "info"`},
	{Name: "frame_timeout", Kind: "string", Default: `"10s"`,
		Meaning: "How long one frame may take from its first byte to its last, in either direction (a Go duration). A connection may stay idle between requests as long as it likes. Takes effect on restart.",
		Example: `frame_timeout = "10s"`},
	{Name: "max_connections_per_uid", Kind: "number", Default: "256",
		Meaning: "Open connections one client uid may hold at once; 0 means no limit. Root is not exempt. Takes effect on restart.",
		Example: `max_connections_per_uid = 256`},
	{Name: "log_format", Kind: "string", Default: "text",
		Meaning: "text (hclog's lines) or json (one JSON object a line, with @timestamp, @level, @module and @message). Plugins' log lines, which hsmhost relays, come out in the same format. --log-format and $HSMBRIDGE_LOG_FORMAT take precedence. Takes effect on restart.",
		Example: `log_format = "json"`},
	{Name: "audit", Kind: "bool", Default: "true",
		Meaning: "Log one line \"key operation\" at info level per key operation (sign, decrypt, wrap_key, unwrap_key, agree, derive, mac, unmask, key creation, import and deletion) with its reference, op, algorithm, result (ok or the error kind), bytes, latency_us, backend and caller (uid, pid, exe); never data, keys or tokens. A log level above info hides these lines too. A reload applies a change.",
		Example: `audit = false`},
	{Name: "audit_rate", Kind: "number", Default: "100",
		Meaning: "The most audit lines a second (one second's worth may come at once); the lines beyond are counted, and a line \"audit lines suppressed\" with the count follows a second later. 0 means no limit. A reload applies a change.",
		Example: `audit_rate = 100`},
	{Name: "metrics_listen", Kind: "string", Default: "none (no metrics)",
		Meaning: "host:port where hsmhost serves Prometheus metrics at /metrics, over plain HTTP without authentication: key operations by backend, op, algorithm and result, their latency, plugin restarts, client connections and sessions, and what the plugins count of their own work (Managed HSM retries, throttled answers, token requests). No key references or data are exported, but keep it on loopback or a monitoring network. Takes effect on restart.",
		Example: `metrics_listen = "127.0.0.1:9464"`},
	{Name: "admin_users", Kind: "list of strings", Default: "none",
		Meaning: "Users (names or uids) who may administer keys (key create, import, delete) besides root and hsmhost's own user.",
		Example: `admin_users = ["alice"]`},
	{Name: "admin_groups", Kind: "list of strings", Default: "none",
		Meaning: "Groups (names or gids, primary or supplementary) whose members may administer keys.",
		Example: `admin_groups = ["hsm-admins"]`},

	{Name: "backend", Label: "name", Kind: "block",
		Meaning: "A backend plugin to start. The name (letters, digits, _ and -, starting with a letter) is what routes refer to and what messages show. Without any backend and route block the embedded default applies: the built-in simulator serving every reference.",
		Example: `backend "sim" {`},
	{Block: "backend", Name: "plugin", Kind: "string", Required: true,
		Meaning: "builtin:simulator, or the absolute path of a plugin binary (installed plugins are in the lib/hsmbridge/plugins directory of hsmhost's prefix: /usr/lib/hsmbridge/plugins from the Debian package, /usr/local/lib/hsmbridge/plugins from make install).",
		Example: `plugin = "/usr/lib/hsmbridge/plugins/hsmbridge-mhsm"`},
	{Block: "backend", Name: "sha256", Kind: "string", Default: "not pinned",
		Meaning: "Hex SHA-256 of the plugin binary, as `hsmhost plugin verify FILE` prints it; a binary that does not match is not started (checked again at every restart of the plugin). `hsmhost plugin list` shows whether each configured binary matches.",
		Example: `sha256 = "<64 hex digits: hsmhost plugin verify FILE prints them>"`},
	{Block: "backend", Name: "pass_env", Kind: "list of strings", Default: "none",
		Meaning: "Names of hsmhost's environment variables the plugin receives. Plugins get only a minimal environment (PATH, HOME, TMPDIR, HSMBRIDGE_LOG_LEVEL, HSMBRIDGE_STATE_DIR, GOMAXPROCS, GOGC) plus these.",
		Example: `pass_env = ["AZURE_CLIENT_ID", "AZURE_TENANT_ID"]`},
	{Block: "backend", Name: "settings", Kind: "map of strings", Default: "none",
		Meaning: "Sent to the plugin's Configure before any other call; numbers and booleans become strings. The built-in simulator knows state_dir (default: the state directory, $HSMBRIDGE_STATE_DIR or /var/lib/hsmbridge for root); the Managed HSM and Integrated HSM plugins' settings are in docs/MANAGED_HSM.md and docs/INTEGRATED_HSM.md.",
		Example: `settings = { state_dir = "/var/lib/hsmbridge/sim" }`},

	{Name: "route", Kind: "block",
		Meaning: "Sends the key references that start with prefix to a backend. References are routed on their canonical form (akv:vault=V,name=k is managedhsm:V:k); among the routes whose prefix matches, the longest wins; a reference no route matches fails with no_route.",
		Example: `route {`},
	{Block: "route", Name: "prefix", Kind: "string", Required: true,
		Meaning: `A prefix of canonical key references, whose schemes are managedhsm:, hsmbridge:, azihsm:// and pkcs11: (an RFC 7512 URI, e.g. "pkcs11:" for the PKCS#11 plugin); "" matches every reference. Prefixes must be unique; akv: prefixes and unknown schemes are refused.`,
		Example: `prefix = "managedhsm:MyHSM:"`},
	{Block: "route", Name: "backend", Kind: "string", Required: true,
		Meaning: "The name of the backend block that serves these references.",
		Example: `backend = "sim"`},

	{Name: "policy", Label: "name", Kind: "block",
		Meaning: "An access rule. Without any policy block every process that can open the socket may use every key; with one or more, a key operation is allowed only when some policy matches the key, the caller and the operation (default deny). Root is not exempt.",
		Example: `policy "web" {`},
	{Block: "policy", Name: "keys", Kind: "list of strings", Required: true,
		Meaning: `Patterns on the canonical reference without its version; * stands for any run of characters; "*" is every key.`,
		Example: `keys = ["managedhsm:MyHSM:web-*"]`},
	{Block: "policy", Name: "users", Kind: "list of strings", Default: "none (one of users and groups is required)",
		Meaning: `User names or uids the policy admits; "*" is every user.`,
		Example: `users = ["www-data"]`},
	{Block: "policy", Name: "groups", Kind: "list of strings", Default: "none (one of users and groups is required)",
		Meaning: "Group names or gids the policy admits, as the caller's primary or a supplementary group.",
		Example: `groups = ["ssl-cert"]`},
	{Block: "policy", Name: "executable", Kind: "string", Default: "any program",
		Meaning: "Absolute path of the program the caller must be running (resolved through symbolic links). Reading another user's /proc/<pid>/exe needs hsmhost to run as root or with CAP_SYS_PTRACE; otherwise a policy with executable does not match.",
		Example: `executable = "/usr/sbin/nginx"`},
	{Block: "policy", Name: "operations", Kind: "list of strings", Required: true,
		Meaning: `What the policy grants: get_key, sign, decrypt, wrap_key, unwrap_key, agree, derive, mac, unmask, generate_masked, import_masked, or "*" for all of these; create_key, import_key and delete_key grant key administration on the keys.`,
		Example: `operations = ["sign"]`},
}

// DirectiveBlocks lists the block types in the order the pages show them.
var DirectiveBlocks = []string{"", "backend", "route", "policy"}
