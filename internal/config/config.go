// Package config reads hsmhost's HCL configuration: where the socket lives,
// which backend plugins to start, how key references are routed to them and
// who may use which keys (policy blocks, policy.go).
//
// Routing is a longest-prefix match on the canonical form of a reference
// (core.KeyRef.String), so akv:vault=X,name=k and managedhsm:X:k always go
// to the same backend. Every problem found is reported with the file and line
// it comes from; a file with any error is refused as a whole, so a bad edit
// followed by a reload never leaves the host half-configured.
//
// Without a file, the embedded default starts the built-in simulator and
// routes every reference to it, which is what a developer laptop needs.
package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
	"github.com/hsmbridge/hsmbridge/internal/socketpath"
	"github.com/hsmbridge/hsmbridge/internal/socketserver"
)

// DefaultPath is read when no --config flag and no HSMBRIDGE_CONFIG is given.
const DefaultPath = "/etc/hsmbridge/hsmhost.hcl"

// BuiltinPrefix marks a plugin compiled into hsmhost ("builtin:simulator").
const BuiltinPrefix = "builtin:"

// EmbeddedSource is Config.Source when no file was read.
const EmbeddedSource = "(embedded default)"

// Config is a validated configuration.
type Config struct {
	Source      string      // the file read, or EmbeddedSource
	Socket      string      // empty: not set in the file
	SocketMode  os.FileMode // 0600 unless set
	SocketGroup string
	LogLevel    string // empty: not set in the file
	// LogFormat is "text" or "json" (log_format); empty: not set in the
	// file.
	LogFormat string
	// Audit says whether key operations are logged (audit, default true),
	// at most AuditRate lines a second (audit_rate, default
	// DefaultAuditRate; 0: no limit).
	Audit     bool
	AuditRate int
	// MetricsListen is the host:port Prometheus metrics are served on
	// (metrics_listen); empty: no metrics.
	MetricsListen string
	// FrameTimeout bounds a frame from its first byte to its last
	// (frame_timeout); always set, socketserver.DefaultFrameTimeout unless
	// the file says otherwise.
	FrameTimeout time.Duration
	// MaxConnectionsPerUID bounds one peer uid's open connections
	// (max_connections_per_uid); 0 means no limit.
	MaxConnectionsPerUID int
	Backends             []Backend
	Routes               []Route // in file order
	// Access is the access policy: policy blocks (in file order),
	// admin_users and admin_groups, names resolved to numbers.
	Access hostsvc.AccessConfig
}

// Backend is one backend block.
type Backend struct {
	Name     string
	Plugin   string // "builtin:<name>" or a path to a plugin binary
	SHA256   string // lower-case hex, empty when not pinned
	PassEnv  []string
	Settings map[string]string
	Where    string // file:line of the block, for messages
}

// Builtin returns the built-in plugin's name and true for "builtin:<name>".
func (b Backend) Builtin() (string, bool) {
	return strings.CutPrefix(b.Plugin, BuiltinPrefix)
}

// Route sends references starting with Prefix to Backend.
type Route struct {
	Prefix  string
	Backend string
	Where   string
}

// DefaultAuditRate is the most audit lines a second unless audit_rate says
// otherwise.
const DefaultAuditRate = 100

// LogFormats are the values of log_format.
var LogFormats = []string{"text", "json"}

// Builtins lists the plugin names accepted after "builtin:".
var Builtins = []string{"simulator"}

// Default is the configuration used when no file exists: the built-in
// simulator serving every reference. Its state directory is left to the
// host, which knows the simulator's default.
func Default() *Config {
	return &Config{
		Source:               EmbeddedSource,
		SocketMode:           0o600,
		Audit:                true,
		AuditRate:            DefaultAuditRate,
		FrameTimeout:         socketserver.DefaultFrameTimeout,
		MaxConnectionsPerUID: socketserver.DefaultMaxConnsPerUID,
		Backends: []Backend{{
			Name: "simulator", Plugin: BuiltinPrefix + "simulator",
			Settings: map[string]string{}, Where: EmbeddedSource,
		}},
		Routes: []Route{{Prefix: "", Backend: "simulator", Where: EmbeddedSource}},
		Access: hostsvc.AccessConfig{Source: EmbeddedSource},
	}
}

// Locate picks the file to read: the explicit path if given, else
// $HSMBRIDGE_CONFIG, else DefaultPath if it exists. It returns "" for the
// embedded default. An explicit path that does not exist is an error.
func Locate(explicit string) (string, error) {
	if explicit == "" {
		explicit = os.Getenv("HSMBRIDGE_CONFIG")
	}
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("config file %s: %w", explicit, err)
		}
		return explicit, nil
	}
	if _, err := os.Stat(DefaultPath); err == nil {
		return DefaultPath, nil
	}
	return "", nil
}

// Find is Locate then Load: the configuration hsmhost uses, and the file
// it came from ("" for the embedded default).
func Find(explicit string) (*Config, string, error) {
	path, err := Locate(explicit)
	if err != nil {
		return nil, "", err
	}
	cfg, err := Load(path)
	return cfg, path, err
}

// Load reads the file at path, or returns Default() for an empty path.
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(src, path)
}

var (
	rootSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "socket"}, {Name: "socket_mode"}, {Name: "socket_group"}, {Name: "log_level"},
			{Name: "frame_timeout"}, {Name: "max_connections_per_uid"},
			{Name: "log_format"}, {Name: "audit"}, {Name: "audit_rate"}, {Name: "metrics_listen"},
			{Name: "admin_users"}, {Name: "admin_groups"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "backend", LabelNames: []string{"name"}},
			{Type: "route"},
			{Type: "policy", LabelNames: []string{"name"}},
		},
	}
	backendSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "plugin", Required: true}, {Name: "sha256"}, {Name: "pass_env"}, {Name: "settings"},
		},
	}
	routeSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "prefix", Required: true}, {Name: "backend", Required: true}},
	}
	backendNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)
	envNamePattern     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	sha256Pattern      = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	logLevels          = []string{"trace", "debug", "info", "warn", "error", "off"}
)

// problems collects errors with their positions.
type problems []string

func (p *problems) add(r hcl.Range, format string, args ...any) {
	*p = append(*p, fmt.Sprintf("%s:%d: %s", r.Filename, r.Start.Line, fmt.Sprintf(format, args...)))
}

func (p *problems) diags(d hcl.Diagnostics) {
	// hcl reports some problems (unsupported arguments) in map order: sort
	// by position, so that one file always gives the same message.
	d = slices.Clone(d)
	sort.SliceStable(d, func(i, j int) bool {
		a, b := d[i].Subject, d[j].Subject
		return a != nil && (b == nil || a.Start.Byte < b.Start.Byte)
	})
	for _, x := range d {
		if x.Severity != hcl.DiagError {
			continue
		}
		// One problem, one line: hcl's details can hold paragraphs.
		msg := strings.Join(strings.Fields(x.Summary), " ")
		if detail := strings.Join(strings.Fields(x.Detail), " "); detail != "" {
			msg += ": " + detail
		}
		if x.Subject != nil {
			p.add(*x.Subject, "%s", msg)
		} else {
			*p = append(*p, msg)
		}
	}
}

// Parse parses and validates a configuration. filename is used in messages.
func Parse(src []byte, filename string) (*Config, error) {
	var errs problems
	f, d := hclparse.NewParser().ParseHCL(src, filename)
	if d.HasErrors() {
		errs.diags(d)
		return nil, errs.err()
	}
	content, d := f.Body.Content(rootSchema)
	errs.diags(d)

	cfg := &Config{Source: filename, SocketMode: 0o600, Audit: true, AuditRate: DefaultAuditRate,
		FrameTimeout: socketserver.DefaultFrameTimeout, MaxConnectionsPerUID: socketserver.DefaultMaxConnsPerUID}
	str := func(name string) (string, hcl.Range, bool) {
		a, ok := content.Attributes[name]
		if !ok {
			return "", hcl.Range{}, false
		}
		s, ok := stringAttr(a, &errs)
		return s, a.Range, ok
	}
	if s, r, ok := str("socket"); ok {
		if !filepath.IsAbs(s) {
			errs.add(r, "socket %q must be an absolute path", s)
		}
		cfg.Socket = s
	}
	if s, r, ok := str("socket_mode"); ok {
		m, err := strconv.ParseUint(s, 8, 32)
		if err != nil || m > 0o777 {
			errs.add(r, "socket_mode %q is not an octal permission such as \"0660\"", s)
		} else {
			cfg.SocketMode = os.FileMode(m)
		}
	}
	if s, r, ok := str("socket_group"); ok {
		if s == "" {
			errs.add(r, "socket_group is empty")
		}
		cfg.SocketGroup = s
	}
	if s, r, ok := str("log_level"); ok {
		if !validLevel(s) {
			errs.add(r, "log_level %q is not one of %s", s, strings.Join(logLevels, ", "))
		}
		cfg.LogLevel = strings.ToLower(s)
	}
	if s, r, ok := str("log_format"); ok {
		if !contains(LogFormats, strings.ToLower(s)) {
			errs.add(r, "log_format %q is not one of %s", s, strings.Join(LogFormats, ", "))
		} else {
			cfg.LogFormat = strings.ToLower(s)
		}
	}
	if a, ok := content.Attributes["audit"]; ok {
		if b, ok := boolAttr(a, &errs); ok {
			cfg.Audit = b
		}
	}
	if a, ok := content.Attributes["audit_rate"]; ok {
		if n, ok := countAttr(a, &errs); ok {
			cfg.AuditRate = n
		}
	}
	if s, r, ok := str("metrics_listen"); ok {
		if msg := checkListen(s); msg != "" {
			errs.add(r, "metrics_listen %q %s", s, msg)
		} else {
			cfg.MetricsListen = s
		}
	}
	if s, r, ok := str("frame_timeout"); ok {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			errs.add(r, "frame_timeout %q is not a duration such as \"10s\"", s)
		case d <= 0:
			errs.add(r, "frame_timeout %q must be longer than 0", s)
		default:
			cfg.FrameTimeout = d
		}
	}
	if a, ok := content.Attributes["max_connections_per_uid"]; ok {
		if n, ok := countAttr(a, &errs); ok {
			cfg.MaxConnectionsPerUID = n
		}
	}

	cfg.Access.Source = filename
	if a, ok := content.Attributes["admin_users"]; ok {
		cfg.Access.AdminUsers = parseAdmins(a, false, &errs)
	}
	if a, ok := content.Attributes["admin_groups"]; ok {
		cfg.Access.AdminGroups = parseAdmins(a, true, &errs)
	}

	backendAt, policyAt := map[string]string{}, map[string]string{}
	for _, blk := range content.Blocks {
		switch blk.Type {
		case "backend":
			b := parseBackend(blk, &errs)
			if prev, dup := backendAt[b.Name]; dup {
				errs.add(blk.DefRange, "backend %q is defined twice (first at %s)", b.Name, prev)
				continue
			}
			backendAt[b.Name] = b.Where
			cfg.Backends = append(cfg.Backends, b)
		case "route":
			cfg.Routes = append(cfg.Routes, parseRoute(blk, &errs))
		case "policy":
			p := parsePolicy(blk, &errs)
			if prev, dup := policyAt[p.Name]; dup {
				errs.add(blk.DefRange, "policy %q is defined twice (first at %s)", p.Name, prev)
				continue
			}
			policyAt[p.Name] = p.Where
			cfg.Access.Rules = append(cfg.Access.Rules, p)
		}
	}

	prefixAt := map[string]string{}
	for _, r := range cfg.Routes {
		if r.Backend != "" {
			if _, ok := backendAt[r.Backend]; !ok {
				errs = append(errs, fmt.Sprintf("%s: route %q names backend %q, which is not defined%s", r.Where, r.Prefix, r.Backend, knownBackends(cfg.Backends)))
			}
		}
		if prev, dup := prefixAt[r.Prefix]; dup {
			errs = append(errs, fmt.Sprintf("%s: route prefix %q is given twice (first at %s)", r.Where, r.Prefix, prev))
		}
		prefixAt[r.Prefix] = r.Where
	}
	if len(cfg.Backends) == 0 && len(cfg.Routes) == 0 && len(errs) == 0 {
		// A file that only sets socket or logging options keeps the
		// embedded default: the simulator serving every reference.
		def := Default()
		cfg.Backends, cfg.Routes = def.Backends, def.Routes
	}
	if len(cfg.Backends) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Sprintf("%s: routes but no backend block; at least one backend is needed", filename))
	}
	if len(cfg.Routes) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Sprintf("%s: no route block; add route { prefix = \"\" backend = %q } to send every reference to it", filename, cfg.Backends[0].Name))
	}
	if len(errs) > 0 {
		return nil, errs.err()
	}
	return cfg, nil
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "\n"))
}

func knownBackends(bs []Backend) string {
	if len(bs) == 0 {
		return ""
	}
	var names []string
	for _, b := range bs {
		names = append(names, strconv.Quote(b.Name))
	}
	return " (defined: " + strings.Join(names, ", ") + ")"
}

func where(r hcl.Range) string { return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line) }

func validLevel(s string) bool {
	for _, l := range logLevels {
		if strings.EqualFold(l, s) {
			return true
		}
	}
	return false
}

func parseBackend(blk *hcl.Block, errs *problems) Backend {
	b := Backend{Name: blk.Labels[0], Where: where(blk.DefRange), Settings: map[string]string{}}
	if !backendNamePattern.MatchString(b.Name) {
		errs.add(blk.LabelRanges[0], "backend name %q must start with a letter and hold only letters, digits, '_' or '-'", b.Name)
	}
	content, d := blk.Body.Content(backendSchema)
	errs.diags(d)
	if a, ok := content.Attributes["plugin"]; ok {
		if s, ok := stringAttr(a, errs); ok {
			b.Plugin = s
			if name, builtin := b.Builtin(); builtin {
				if !contains(Builtins, name) {
					errs.add(a.Range, "unknown built-in plugin %q (built in: %s)", s, strings.Join(Builtins, ", "))
				}
			} else if s == "" {
				errs.add(a.Range, "plugin is empty; give builtin:<name> or the path of a plugin binary")
			} else if !filepath.IsAbs(s) {
				errs.add(a.Range, "plugin path %q must be absolute (or builtin:<name>)", s)
			}
		}
	}
	if a, ok := content.Attributes["sha256"]; ok {
		if s, ok := stringAttr(a, errs); ok {
			if !sha256Pattern.MatchString(s) {
				errs.add(a.Range, "sha256 %q is not 64 hexadecimal digits", s)
			} else {
				raw, _ := hex.DecodeString(s)
				b.SHA256 = hex.EncodeToString(raw)
			}
		}
	}
	if a, ok := content.Attributes["pass_env"]; ok {
		v, d := a.Expr.Value(nil)
		errs.diags(d)
		if !d.HasErrors() {
			list, err := convert.Convert(v, cty.List(cty.String))
			if err != nil || list.IsNull() || !list.IsWhollyKnown() {
				errs.add(a.Range, "pass_env must be a list of environment variable names")
			} else {
				for _, e := range list.AsValueSlice() {
					if e.IsNull() {
						errs.add(a.Range, "pass_env holds a null")
						continue
					}
					n := e.AsString()
					if !envNamePattern.MatchString(n) {
						errs.add(a.Range, "pass_env entry %q is not an environment variable name", n)
					}
					b.PassEnv = append(b.PassEnv, n)
				}
			}
		}
	}
	if a, ok := content.Attributes["settings"]; ok {
		v, d := a.Expr.Value(nil)
		errs.diags(d)
		if !d.HasErrors() {
			m, err := convert.Convert(v, cty.Map(cty.String))
			if err != nil || m.IsNull() || !m.IsWhollyKnown() {
				errs.add(a.Range, "settings must be a map of strings, e.g. { state_dir = \"/var/lib/x\" }")
			} else {
				for kv, e := range m.Elements() { // in key order
					k := kv.AsString()
					if e.IsNull() {
						errs.add(a.Range, "setting %q is null", k)
						continue
					}
					b.Settings[k] = e.AsString()
				}
			}
		}
	}
	return b
}

func parseRoute(blk *hcl.Block, errs *problems) Route {
	r := Route{Where: where(blk.DefRange)}
	content, d := blk.Body.Content(routeSchema)
	errs.diags(d)
	if a, ok := content.Attributes["prefix"]; ok {
		if s, ok := stringAttr(a, errs); ok {
			r.Prefix = s
			if msg := checkPrefix(s); msg != "" {
				errs.add(a.Range, "%s", msg)
			}
		}
	}
	if a, ok := content.Attributes["backend"]; ok {
		if s, ok := stringAttr(a, errs); ok {
			r.Backend = s
		}
	}
	return r
}

// checkPrefix catches prefixes that can never match a canonical reference.
func checkPrefix(p string) string {
	scheme, _, hasColon := strings.Cut(p, ":")
	if !hasColon {
		// A partial scheme ("managed") still matches; anything else cannot.
		for _, s := range []core.Scheme{core.SchemeManagedHSM, core.SchemeGeneric, core.SchemeAzIHSM, core.SchemePKCS11} {
			if strings.HasPrefix(string(s), p) {
				return ""
			}
		}
		return fmt.Sprintf("route prefix %q matches no reference: canonical references start with managedhsm:, hsmbridge:, azihsm:// or pkcs11:", p)
	}
	switch core.Scheme(scheme) {
	case core.SchemeManagedHSM, core.SchemeGeneric, core.SchemeAzIHSM, core.SchemePKCS11:
		return ""
	case core.SchemeAKV:
		return fmt.Sprintf("route prefix %q: akv: references are routed in their canonical form; write managedhsm:<vault>: instead", p)
	}
	if strings.EqualFold(scheme, string(core.SchemeManagedHSM)) || strings.EqualFold(scheme, string(core.SchemeGeneric)) || strings.EqualFold(scheme, string(core.SchemeAzIHSM)) || strings.EqualFold(scheme, string(core.SchemePKCS11)) {
		return fmt.Sprintf("route prefix %q: canonical schemes are lower case", p)
	}
	return fmt.Sprintf("route prefix %q: unknown scheme %q (managedhsm, hsmbridge, azihsm or pkcs11)", p, scheme)
}

func stringAttr(a *hcl.Attribute, errs *problems) (string, bool) {
	v, d := a.Expr.Value(nil)
	errs.diags(d)
	if d.HasErrors() {
		return "", false
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil || s.IsNull() || !s.IsKnown() {
		errs.add(a.Range, "%s must be a string", a.Name)
		return "", false
	}
	return s.AsString(), true
}

// boolAttr reads true or false.
func boolAttr(a *hcl.Attribute, errs *problems) (bool, bool) {
	v, d := a.Expr.Value(nil)
	errs.diags(d)
	if d.HasErrors() {
		return false, false
	}
	b, err := convert.Convert(v, cty.Bool)
	if err != nil || b.IsNull() || !b.IsKnown() {
		errs.add(a.Range, "%s must be true or false", a.Name)
		return false, false
	}
	return b.True(), true
}

// checkListen explains why addr is not a TCP host:port to listen on, or
// says nothing.
func checkListen(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "is not host:port, such as \"127.0.0.1:9464\""
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return "has no port number from 0 to 65535"
	}
	if strings.ContainsAny(host, " \t/") {
		return "has no host name or address before its port"
	}
	return ""
}

// countAttr reads a whole number from 0 up.
func countAttr(a *hcl.Attribute, errs *problems) (int, bool) {
	v, d := a.Expr.Value(nil)
	errs.diags(d)
	if d.HasErrors() {
		return 0, false
	}
	if v.Type() == cty.Number && v.IsKnown() && !v.IsNull() {
		if bf := v.AsBigFloat(); bf.IsInt() && bf.Sign() >= 0 {
			if n, acc := bf.Int64(); acc == big.Exact && n <= math.MaxInt32 {
				return int(n), true
			}
		}
	}
	errs.add(a.Range, "%s must be a whole number from 0 up (0: no limit)", a.Name)
	return 0, false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// BackendNames lists the configured backends, sorted.
func (c *Config) BackendNames() []string {
	var n []string
	for _, b := range c.Backends {
		n = append(n, b.Name)
	}
	sort.Strings(n)
	return n
}

// DefaultSocketPath follows the shared convention: $HSMBRIDGE_SOCKET, else
// /run/hsmbridge/hsmhost.sock for root, else $XDG_RUNTIME_DIR/hsmbridge/
// hsmhost.sock where that folder exists and is ours, else
// /tmp/hsmbridge-<uid>/hsmhost.sock (internal/socketpath holds the rule).
func DefaultSocketPath() string { return socketpath.Default() }

// SocketPath picks the socket hsmhost serves: the --socket flag, else
// $HSMBRIDGE_SOCKET (what clients read too), else the file's socket, else
// the default.
func SocketPath(flag string, c *Config) string {
	switch {
	case flag != "":
		return flag
	case os.Getenv("HSMBRIDGE_SOCKET") != "":
		return os.Getenv("HSMBRIDGE_SOCKET")
	case c != nil && c.Socket != "":
		return c.Socket
	}
	return DefaultSocketPath()
}
