package main

//go:generate sh -c "go run . manpage hsmhost.8 --version '' > ../../docs/man/hsmhost.8"
//go:generate sh -c "go run . manpage hsmbridge.7 --version '' > ../../docs/man/hsmbridge.7"

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/hsmbridge/hsmbridge/internal/config"
	"github.com/hsmbridge/hsmbridge/internal/manpage"
)

// `hsmhost manpage hsmhost.8|hsmbridge.7` prints a manual page (internal,
// like `plugin`; `make man` runs it). hsmhost(8) is rendered from what the
// program itself uses: the command list of topUsage, the flag set of each
// command (each is run with --help and its flag set captured), and
// config.Directives, which the configuration parser is tested against. The
// longer descriptions are in commandText; manpage_test.go fails when a
// command has none, or when topUsage names a flag its command lacks.

// flagSetMade, when set, is given every flag set newFlagSet makes.
var flagSetMade func(*flag.FlagSet)

func manpageCommand(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("manpage", stderr, "hsmhost manpage hsmhost.8|hsmbridge.7 [--version V]")
	ver := fs.String("version", hostVersion(), "version shown in the page's footer")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("manpage needs one page: hsmhost.8 or hsmbridge.7")
	}
	switch pos[0] {
	case "hsmhost.8":
		page, err := hsmhostPage(*ver)
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, page)
		return err
	case "hsmbridge.7":
		_, err := io.WriteString(stdout, manpage.Hsmbridge7(*ver))
		return err
	}
	return usagef("unknown page %q: hsmhost.8 or hsmbridge.7", pos[0])
}

// command is one line of topUsage with the flags its flag set defines.
type command struct {
	path     string // "key create"
	synopsis string // "key create REF [--kty RSA|EC|oct] ..."
	summary  string // the indented line under it, if any
	// groupNote is a line under a run of commands of the same group (the
	// key commands), kept on the group's first command.
	groupNote string
	flags     []*flag.Flag
}

// commands parses topUsage: a command line is indented two spaces, its
// description eight. A description under a run of commands of one group
// that have none (the key commands) is the group's.
func commands() ([]command, error) {
	var cmds []command
	_, list, ok := strings.Cut(topUsage, "commands:\n")
	if !ok {
		return nil, fmt.Errorf("topUsage has no \"commands:\" line")
	}
	for _, line := range strings.Split(list, "\n") {
		switch {
		case strings.HasPrefix(line, "        "):
			if len(cmds) == 0 {
				return nil, fmt.Errorf("topUsage: a description before any command: %q", line)
			}
			last, text := len(cmds)-1, strings.TrimSpace(line)
			first := last
			for first > 0 && cmds[first-1].summary == "" && cmds[first-1].groupNote == "" &&
				group(cmds[first-1].path) == group(cmds[last].path) {
				first--
			}
			if first < last {
				cmds[first].groupNote = text
			} else {
				cmds[last].summary = text
			}
		case strings.HasPrefix(line, "  "):
			syn := strings.TrimSpace(line)
			cmds = append(cmds, command{path: commandPath(syn), synopsis: syn})
		case strings.TrimSpace(line) != "":
			return nil, fmt.Errorf("topUsage: unexpected line %q", line)
		}
	}
	for i := range cmds {
		fl, err := flagsOf(cmds[i].path)
		if err != nil {
			return nil, err
		}
		cmds[i].flags = fl
	}
	return cmds, nil
}

func group(path string) string { g, _, _ := strings.Cut(path, " "); return g }

// commandPath is the synopsis's leading words, up to the first argument
// (upper case, or an option or bracket).
func commandPath(syn string) string {
	var words []string
	for _, w := range strings.Fields(syn) {
		if strings.ToLower(w) != w || strings.ContainsAny(w, "[-<|") {
			break
		}
		words = append(words, w)
	}
	return strings.Join(words, " ")
}

// flagsOf runs the command with --help and returns the flags of the flag
// set it made, in name order.
func flagsOf(path string) ([]*flag.Flag, error) {
	var sets []*flag.FlagSet
	flagSetMade = func(fs *flag.FlagSet) { sets = append(sets, fs) }
	defer func() { flagSetMade = nil }()
	var out, errOut bytes.Buffer
	if code := run(append(strings.Fields(path), "--help"), &out, &errOut); code != exitOK {
		return nil, fmt.Errorf("hsmhost %s --help: exit %d: %s", path, code, errOut.String())
	}
	var fl []*flag.Flag
	for _, fs := range sets {
		fs.VisitAll(func(f *flag.Flag) { fl = append(fl, f) })
	}
	return fl, nil
}

var optionWithValue = regexp.MustCompile(`--([a-z][a-z0-9-]*)[ =]([^\s\[\]]+)`)

// metavar names a flag's value as the command's synopsis does (--kty
// RSA|EC|oct), else as another line of topUsage does (--socket PATH), else
// by its type; bool flags take none.
func metavar(synopsis string, f *flag.Flag) string {
	if isBoolFlag(f) {
		return ""
	}
	for _, text := range []string{synopsis, topUsage} {
		for _, m := range optionWithValue.FindAllStringSubmatch(text, -1) {
			if m[1] == f.Name && !strings.HasPrefix(m[2], "-") && strings.ContainsAny(m[2], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
				return m[2]
			}
		}
	}
	if name, _ := flag.UnquoteUsage(f); name == "int" {
		return "N"
	}
	return "VALUE"
}

// commandText is each command's description in the page, in addition to
// its topUsage summary.
var commandText = map[string][]string{
	"serve": {
		"Runs the host in the foreground: reads the configuration (see CONFIGURATION), starts the configured backend plugins, and serves the Unix socket the OpenSSL provider and the key commands connect to. SIGHUP reads the configuration again and swaps backends, routes and policy in one step (a file with an error leaves the running configuration as it is); SIGTERM and SIGINT stop it, giving running requests 10 seconds to answer.",
		"If a live hsmhost already answers on the socket, serve prints `already running` and exits with status 0. Start-up is serialised with an flock on `<socket>.lock`. A socket directory owned by another user (root excepted) or writable by everyone without the sticky bit is refused.",
		"The Debian package runs `hsmhost serve --config /etc/hsmbridge/hsmhost.hcl` as the system service hsmhost.service (user hsmbridge); started by hand, the OpenSSL provider can also start it itself when nothing answers (hsmbridge_autostart in openssl.cnf).",
	},
	"key create": {
		"Creates a key in the backend the reference routes to, in the manner of `az keyvault key create`, and prints it. Key administration is for root, hsmhost's own user, and the admin_users and admin_groups of the configuration (or a policy that grants create_key).",
	},
	"key import": {
		"Imports a private key file (PEM or DER: PKCS#8, PKCS#1 or SEC 1; not encrypted) into the backend under the reference.",
	},
	"key list": {
		"Lists the keys whose canonical reference starts with PREFIX (all keys without it): reference, type and size, allowed operations, backend, one key a line, separated by tabs.",
	},
	"key show": {
		"Prints a key's reference, version, type, size or curve, allowed operations and backend.",
	},
	"key pubkey": {
		"Prints a key's public key as a PEM SubjectPublicKeyInfo, for `openssl dgst -verify` and the like.",
	},
	"key delete": {
		"Deletes a key and all its versions from its backend.",
	},
	"key ref": {
		"Writes a key-reference file for programs that take only a key file (nginx's ssl_certificate_key, curl, Python, HAProxy, stunnel, Apache, Postfix): by default a -----BEGIN PRIVATE KEY----- block, a PKCS#8 PrivateKeyInfo of hsmbridge's key-reference algorithm (OID 2.25.133896219887739542807793727763915612139) holding the versioned reference, which programs that pick PEM blocks by label take for a private key; with --pkcs8=false the older -----BEGIN HSMBRIDGE KEY REFERENCE----- block. Either holds nothing secret, and the provider reads both (hsmbridge(7), KEY REFERENCES). Unless --offline, hsmhost is asked first whether the key exists.",
	},
	"plugin list": {
		"Reads the configuration as serve would and shows each backend's plugin: the sha256 its block pins and whether the binary on disk has it, then, having started the plugin with the backend's environment but without configuring it or routing anything to it, the go-plugin protocol version and the operations and schemes it declares. A binary that does not match its pin is not run. It fails if any plugin cannot be used as configured.",
		"Schemes that follow the backend's settings (a PKCS#11 token's mechanism list) are declared only once serve configures the plugin; the log line `plugin started` shows them then.",
	},
	"plugin verify": {
		"Prints the SHA-256 of a plugin binary, for its backend block's sha256, then starts it through the plugin handshake (pinned to that sum) and prints its protocol version, name, version and the operations it declares; nothing is configured or routed. A file that is not an hsmbridge backend plugin (a wrong handshake, another program) is refused, and the command fails.",
	},
	"doctor": {
		"Checks each namespace (such as managedhsm:MyHSM) through the running host: the backend's credentials and reachability, then every key in it, readable and usable for each operation it allows (a test signature verified here, a decryption of a local encryption, a wrap and unwrap). Without arguments it checks the namespaces the configuration's routes name. It prints a fix for every failure and fails if any did.",
	},
	"version": {
		"Prints hsmhost's version.",
	},
}

// hiddenCommands are run() commands topUsage leaves out: internal ones.
var hiddenCommands = []string{"plugin simulator", "manpage", "help"}

// hostEnv is every environment variable hsmhost and its built-in plugin
// read; manpage_test.go checks the Go sources for others.
var hostEnv = []struct{ name, meaning string }{
	{"HSMBRIDGE_CONFIG", "The configuration file when --config is not given; it must exist."},
	{"HSMBRIDGE_SOCKET", "The socket when --socket is not given; it takes precedence over the file's socket. Clients (the key commands, the OpenSSL provider) read it too."},
	{"HSMBRIDGE_LOG_LEVEL", "The log level when --log-level is not given; it takes precedence over the file's log_level. Passed to plugins."},
	{"HSMBRIDGE_LOG_FORMAT", "The log format (text or json) when --log-format is not given; it takes precedence over the file's log_format."},
	{"HSMBRIDGE_STATE_DIR", "The state directory (the built-in simulator's keys) when a backend's settings give no state_dir; default /var/lib/hsmbridge for root, else $XDG_STATE_HOME/hsmbridge or ~/.local/state/hsmbridge. Passed to plugins. The system service sets it to /var/lib/hsmbridge."},
	{"HSMBRIDGE_DATA_PATH", "grpc makes hsmhost talk to its plugins over gRPC only, without the faster data path socket."},
	{"HSMBRIDGE_CPUPROFILE", "A file to write a CPU profile of hsmhost (and, passed on, of each plugin, with its name appended) to, for benchmarks."},
	{"HSMBRIDGE_CPUPROFILE_SECONDS", "How long the CPU profile runs."},
	{"HSMBRIDGE_BACKEND_PLUGIN", "Set by hsmhost for the plugins it starts (go-plugin's handshake); a plugin started without it refuses to run."},
	{"GOMAXPROCS", "hsmhost and its plugins run with one processor unless it is set (which trades the bridge's latency for a CPU-bound backend's parallelism). Passed to plugins, as is GOGC."},
	{"TMPDIR", "Where plugins put their sockets (go-plugin's and the data path's); passed to plugins. The system service has a private /tmp."},
	{"XDG_RUNTIME_DIR", "The default socket's folder for users other than root, when it is an existing folder of theirs."},
	{"XDG_STATE_HOME", "The default state directory's parent for users other than root."},
}

// exampleConfig is the page's example; manpage_test.go parses it.
const exampleConfig = `socket       = "/run/hsmbridge/hsmhost.sock"
socket_mode  = "0660"
socket_group = "hsmbridge"

backend "sim" {
  plugin   = "builtin:simulator"
  settings = { state_dir = "/var/lib/hsmbridge" }
}

backend "mhsm" {
  plugin   = "/usr/lib/hsmbridge/plugins/hsmbridge-mhsm"
  pass_env = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"]
  settings = { hsms = "MyHSM" }
}

route {
  prefix  = "managedhsm:MyHSM:"
  backend = "mhsm"
}

route {
  prefix  = ""
  backend = "sim"
}

policy "web" {
  keys       = ["managedhsm:MyHSM:web-*"]
  groups     = ["0"]
  operations = ["sign"]
}
`

func hsmhostPage(version string) (string, error) {
	cmds, err := commands()
	if err != nil {
		return "", err
	}
	var w manpage.Writer
	w.Header("hsmhost", "8", version, "System Administration", "hsmbridge's host daemon and key administration tool")

	w.Section("SYNOPSIS")
	var syn []string
	for _, c := range cmds {
		syn = append(syn, "hsmhost "+c.synopsis)
	}
	w.Example(strings.Join(syn, "\n"))

	w.Section("DESCRIPTION")
	w.Para("hsmhost is the daemon between OpenSSL applications and the hardware security modules that hold their keys. The hsmbridge OpenSSL provider (hsmbridge(7)), loaded in each application, sends every private-key operation over a Unix socket to `hsmhost serve`, which routes the key reference to a backend plugin by prefix (the built-in simulator, Azure Managed HSM, the Azure Integrated HSM device, a PKCS#11 token, or another plugin), checks the access policy, and answers. Private keys exist only in the backends; only hsmhost and its plugins hold backend credentials.")
	w.Para("The other commands administer keys through a running host, in the manner of `az keyvault key`: they connect to --socket, else $HSMBRIDGE_SOCKET, else the socket the configuration file names, else the default socket.")

	w.Section("COMMANDS")
	for _, c := range cmds {
		if c.groupNote != "" {
			w.Para(strings.ToUpper(c.groupNote[:1]) + c.groupNote[1:] + ".")
		}
		w.Subsection("hsmhost " + c.synopsis)
		if c.summary != "" {
			w.Para(strings.ToUpper(c.summary[:1]) + c.summary[1:] + ".")
		}
		for _, p := range commandText[c.path] {
			w.Para(p)
		}
		for _, f := range c.flags {
			tag := manpage.Bold("--" + f.Name)
			if mv := metavar(c.synopsis, f); mv != "" {
				tag += " " + manpage.Italic(mv)
			}
			_, usage := flag.UnquoteUsage(f)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && !strings.Contains(usage, "(default") {
				usage += " (default " + f.DefValue + ")"
			}
			w.Item(tag, usage)
		}
	}

	w.Section("CONFIGURATION")
	w.Para("`hsmhost serve` reads one HCL file: --config FILE if given (it must exist), else $HSMBRIDGE_CONFIG if set (it must exist), else " + config.DefaultPath + " if it exists, else the embedded default: one backend simulator (the built-in simulator) that every key reference is routed to. A file with no backend and no route block keeps that default. A file with any error is refused as a whole, and every error names the file and line.")
	for _, block := range config.DirectiveBlocks {
		if block == "" {
			w.Subsection("Top-level attributes")
		} else {
			for _, d := range config.Directives {
				if d.Block == "" && d.Name == block {
					title := block + " block"
					if d.Label != "" {
						title = block + " \"<" + d.Label + ">\" blocks"
					} else {
						title = block + " blocks"
					}
					w.Subsection(title)
					w.Para(d.Meaning)
				}
			}
		}
		for _, d := range config.Directives {
			if d.Block != block || d.Kind == "block" {
				continue
			}
			body := []string{d.Meaning}
			switch {
			case d.Required:
				body = append(body, "Required.")
			case d.Default != "":
				body = append(body, "Default: "+d.Default+".")
			}
			body = append(body, "Example: `"+d.Example+"`")
			w.Item(manpage.Bold(d.Name)+" ("+manpage.Escape(d.Kind)+")", body...)
		}
	}
	w.Subsection("Example")
	w.Example(exampleConfig)
	w.Para("docs/CONFIG.md in the source (/usr/share/doc/hsmbridge/CONFIG.md in the package) explains routing, connection limits and the access policy at length.")

	w.Section("SIGNALS")
	w.Item(manpage.Bold("SIGHUP"), "Reload the configuration (`systemctl reload hsmhost`). socket, socket_mode, socket_group, frame_timeout, max_connections_per_uid, log_format and metrics_listen take effect on restart.")
	w.Item(manpage.Bold("SIGTERM")+", "+manpage.Bold("SIGINT"), "Stop: running requests get 10 seconds to answer, then the plugins are stopped and the socket removed.")

	w.Section("ENVIRONMENT")
	for _, e := range hostEnv {
		w.Item(manpage.Bold(e.name), e.meaning)
	}
	w.Para("Plugins see only PATH, HOME, TMPDIR, HSMBRIDGE_LOG_LEVEL, HSMBRIDGE_STATE_DIR, GOMAXPROCS, GOGC and the profile variables of hsmhost's environment, plus the variables their backend's pass_env names (cloud credentials).")

	w.Section("FILES")
	w.Item(manpage.Bold(config.DefaultPath), "The configuration (a conffile of the Debian package).")
	w.Item(manpage.Bold("/etc/hsmbridge/hsmhost.env"), "Environment of the system service (VAR=value lines, such as backend credentials), if it exists; keep it mode 0600.")
	w.Item(manpage.Bold("/run/hsmbridge/hsmhost.sock"), "The socket of root's or the system service's hsmhost; users' own hosts default to $XDG_RUNTIME_DIR/hsmbridge/hsmhost.sock or /tmp/hsmbridge-<uid>/hsmhost.sock.")
	w.Item(manpage.Bold("/var/lib/hsmbridge"), "The state directory of root's or the system service's hsmhost.")
	w.Item(manpage.Bold("/usr/lib/hsmbridge/plugins/"), "The backend plugins of the Debian package (hsmbridge-simulator, hsmbridge-mhsm, hsmbridge-azihsm, hsmbridge-pkcs11); make install puts them in /usr/local/lib/hsmbridge/plugins/. A backend's plugin attribute names one by its absolute path.")
	w.Item(manpage.Bold("/lib/systemd/system/hsmhost.service"), "The system service: user hsmbridge, group hsmbridge for applications, state in /var/lib/hsmbridge, socket in /run/hsmbridge, sandboxed.")

	w.Section("EXIT STATUS")
	w.Item(manpage.Bold("0"), "Success (also serve when another hsmhost already answers on the socket).")
	w.Item(manpage.Bold("1"), "The operation failed; the message on standard error names the key reference and the cause.")
	w.Item(manpage.Bold("2"), "The command line is wrong.")

	w.Section("EXAMPLES")
	w.Example(`systemctl enable --now hsmhost
hsmhost key create managedhsm:MyHSM:mykey --kty RSA --size 3072 --ops sign,verify,decrypt
hsmhost key list managedhsm:MyHSM:
hsmhost key pubkey managedhsm:MyHSM:mykey > pubkey.pem
hsmhost key ref managedhsm:MyHSM:mykey --out /etc/nginx/mykey.pem
hsmhost doctor managedhsm:MyHSM`)

	w.Section("SEE ALSO")
	w.Para("`hsmbridge`(7), `openssl`(1), `systemctl`(1), `systemd.exec`(5)")
	return w.String(), nil
}
