package hostsvc

// Access policy: who may do what with which keys.
//
// The socket server learns a connection's caller once, at accept (the
// kernel's SO_PEERCRED uid, gid and pid, then the supplementary groups and
// the executable from /proc), and puts it in the context of every request
// on that connection (WithCaller). begin, which every keyed operation passes
// through, meets that caller with the parsed, canonical reference and asks
// the current table's Access. That is the one place the policy is checked.
//
// An Access is compiled once, when the configuration is loaded: patterns are
// split at their '*'s, names are resolved to ids, operations become bits.
// A check walks the rules with no allocation and no regular expression;
// only a refusal builds a message. The Access lives in the routing table, so
// a reload replaces routes, backends and policy in one swap.
//
// The semantics (docs/CONFIG.md, "policy blocks"):
//   - with no policy rule, every caller may use every key, as before policies
//     existed; with at least one, a key operation is allowed only when some
//     rule matches the key, the caller and the operation (default deny);
//   - a rule that grants any operation on a key also grants get_key (the
//     public key and metadata) on it, which loading a key needs;
//   - key administration (create_key, import_key, delete_key) is allowed to
//     root, to hsmhost's own user, to admin_users and admin_groups, and to
//     rules that name the operation, whether or not there are rules; these
//     administrators may also get_key (and list) every key, but using a
//     private key needs a rule like anyone else's;
//   - root is not special for key use: in a container every client is root,
//     and an exemption would make every policy there void.
//   - a context without a caller is an in-process call and is not checked;
//     a connection whose credentials the kernel did not give is a caller
//     that no rule and no admin list matches.

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/hsmbridge/hsmbridge/core"
)

// Caller is the process at the other end of a connection.
type Caller struct {
	Known  bool     // false: the kernel gave no peer credentials
	UID    uint32   // effective uid at connect (SO_PEERCRED)
	GID    uint32   // effective gid at connect (SO_PEERCRED)
	PID    int32    // 0 when unknown
	Groups []uint32 // supplementary groups (/proc/<pid>/status), nil when unknown
	Exe    string   // /proc/<pid>/exe, "" when unknown
}

// InGroup reports whether gid is the caller's primary or a supplementary group.
func (c *Caller) InGroup(gid uint32) bool {
	if c.GID == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// String names the caller for messages: uid, user name, pid, executable.
func (c *Caller) String() string {
	if c == nil || !c.Known {
		return "a caller whose credentials the kernel did not give"
	}
	s := "uid " + strconv.FormatUint(uint64(c.UID), 10)
	if u, err := user.LookupId(strconv.FormatUint(uint64(c.UID), 10)); err == nil {
		s += " (" + u.Username + ")"
	}
	if c.PID > 0 {
		s += ", pid " + strconv.FormatInt(int64(c.PID), 10)
	}
	if c.Exe != "" {
		s += ", " + c.Exe
	}
	return s
}

type callerKey struct{}

// WithCaller returns a context whose requests are made by c. The socket
// server sets it once per connection.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller WithCaller recorded, or nil.
func CallerFrom(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}

// ID is a user or a group: its number and, for messages, the name the
// configuration gave.
type ID struct {
	Num  uint32
	Name string // as written ("www-data" or "33")
}

// Rule is one policy block as the configuration hands it over.
type Rule struct {
	Name  string
	Where string // file:line, for messages
	// Keys are patterns on the canonical reference without its version:
	// '*' stands for any run of characters; a pattern without '*' names
	// one key.
	Keys       []string
	AnyUser    bool // users = ["*"]
	Users      []ID
	Groups     []ID
	Executable string // "" for any
	Operations []core.Operation
}

// AccessConfig is the whole policy of one configuration.
type AccessConfig struct {
	Source      string // the configuration file, for messages
	Rules       []Rule
	AdminUsers  []ID
	AdminGroups []ID
}

// UseOperations are the key operations a rule can grant.
var UseOperations = []core.Operation{core.OpGetKey, core.OpSign, core.OpDecrypt, core.OpWrapKey, core.OpUnwrapKey,
	core.OpAgree, core.OpDerive, core.OpMAC, core.OpUnmask, core.OpGenerateMasked, core.OpImportMasked}

// AdminOperations are key administration: allowed to admins, or granted
// per key by a rule that names them.
var AdminOperations = []core.Operation{core.OpCreateKey, core.OpImportKey, core.OpDeleteKey}

type opSet uint32

// opBit is op's bit; 0 for requests the policy does not govern (random
// bytes, which use no key).
func opBit(op core.Operation) opSet {
	switch op {
	case core.OpGetKey:
		return 1 << 0
	case core.OpSign:
		return 1 << 1
	case core.OpDecrypt:
		return 1 << 2
	case core.OpWrapKey:
		return 1 << 3
	case core.OpUnwrapKey:
		return 1 << 4
	case core.OpAgree:
		return 1 << 5
	case core.OpDerive:
		return 1 << 6
	case core.OpMAC:
		return 1 << 7
	case core.OpUnmask:
		return 1 << 8
	case core.OpGenerateMasked:
		return 1 << 9
	case core.OpImportMasked:
		return 1 << 10
	case core.OpCreateKey:
		return 1 << 11
	case core.OpImportKey:
		return 1 << 12
	case core.OpDeleteKey:
		return 1 << 13
	}
	return 0
}

const (
	getKey   opSet = 1 << 0
	adminOps opSet = 1<<11 | 1<<12 | 1<<13
)

// Access is a compiled policy; nil is "no rules, default administrators".
type Access struct {
	source    string
	rules     []rule
	hostUID   uint32
	adminUIDs []uint32
	adminGIDs []uint32
}

type rule struct {
	Rule
	keys []pattern
	uids []uint32
	gids []uint32
	ops  opSet
}

// pattern is a key pattern split at its '*'s: parts[0] must begin the
// reference, the last part must end it, the others appear in order between.
type pattern []string

func (p pattern) match(s string) bool {
	if len(p) == 1 {
		return s == p[0]
	}
	if !strings.HasPrefix(s, p[0]) {
		return false
	}
	s = s[len(p[0]):]
	for _, mid := range p[1 : len(p)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, p[len(p)-1])
}

// NewAccess compiles a policy.
func NewAccess(cfg AccessConfig) (*Access, error) {
	a := &Access{source: cfg.Source, hostUID: uint32(os.Geteuid())}
	for _, u := range cfg.AdminUsers {
		a.adminUIDs = append(a.adminUIDs, u.Num)
	}
	for _, g := range cfg.AdminGroups {
		a.adminGIDs = append(a.adminGIDs, g.Num)
	}
	for _, r := range cfg.Rules {
		cr := rule{Rule: r}
		if len(r.Keys) == 0 {
			return nil, fmt.Errorf("policy %q (%s) names no keys", r.Name, r.Where)
		}
		if !r.AnyUser && len(r.Users) == 0 && len(r.Groups) == 0 {
			return nil, fmt.Errorf("policy %q (%s) names no users and no groups", r.Name, r.Where)
		}
		for _, k := range r.Keys {
			cr.keys = append(cr.keys, pattern(strings.Split(k, "*")))
		}
		for _, u := range r.Users {
			cr.uids = append(cr.uids, u.Num)
		}
		for _, g := range r.Groups {
			cr.gids = append(cr.gids, g.Num)
		}
		for _, op := range r.Operations {
			b := opBit(op)
			if b == 0 {
				return nil, fmt.Errorf("policy %q (%s): %q is not an operation a policy grants", r.Name, r.Where, op)
			}
			cr.ops |= b
		}
		if cr.ops == 0 {
			return nil, fmt.Errorf("policy %q (%s) grants no operation", r.Name, r.Where)
		}
		cr.ops |= opBit(core.OpGetKey) // whoever may use a key may load it
		a.rules = append(a.rules, cr)
	}
	return a, nil
}

// Rules reports how many policy rules there are.
func (a *Access) Rules() int {
	if a == nil {
		return 0
	}
	return len(a.rules)
}

func (r *rule) admitsCaller(c *Caller) bool {
	return r.admitsPerson(c) && (r.Executable == "" || c.Exe == r.Executable)
}

func (r *rule) admitsPerson(c *Caller) bool {
	if r.AnyUser {
		return true
	}
	for _, u := range r.uids {
		if u == c.UID {
			return true
		}
	}
	for _, g := range r.gids {
		if c.InGroup(g) {
			return true
		}
	}
	return false
}

func (r *rule) coversKey(key string) bool {
	for _, p := range r.keys {
		if p.match(key) {
			return true
		}
	}
	return false
}

func (a *Access) isAdmin(c *Caller) bool {
	if c.UID == 0 || c.UID == a.hostUIDOr() {
		return true
	}
	if a == nil {
		return false
	}
	for _, u := range a.adminUIDs {
		if u == c.UID {
			return true
		}
	}
	for _, g := range a.adminGIDs {
		if c.InGroup(g) {
			return true
		}
	}
	return false
}

// Allowed reports whether c may do op on key, the canonical reference
// without its version. It allocates nothing.
func (a *Access) Allowed(c *Caller, op core.Operation, key string) bool {
	bit := opBit(op)
	if bit == 0 || c == nil {
		return true
	}
	// Administrators may also read what they administer (get_key, and so
	// the listing); the private key's use still needs a rule.
	if bit&(adminOps|getKey) != 0 && c.Known && a.isAdmin(c) {
		return true
	}
	if bit&adminOps == 0 && a.Rules() == 0 {
		return true
	}
	if !c.Known || a == nil {
		return false
	}
	for i := range a.rules {
		r := &a.rules[i]
		if r.ops&bit != 0 && r.coversKey(key) && r.admitsCaller(c) {
			return true
		}
	}
	return false
}

// check returns nil or the permission_denied error that says why.
func (a *Access) check(c *Caller, op core.Operation, key string) error {
	if a.Allowed(c, op, key) {
		return nil
	}
	return &core.Error{Kind: core.KindPermissionDenied, Message: a.refusal(c, op, key)}
}

// refusal words a refusal: the key, the operation, the caller and the rule
// that came nearest to admitting it, or that none covers the key.
func (a *Access) refusal(c *Caller, op core.Operation, key string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: permission denied: %s by %s", key, op, c)
	src := "hsmhost's configuration"
	if a != nil && a.source != "" {
		src = a.source
	}
	if !c.Known {
		fmt.Fprintf(&b, " is refused by the access policy in %s", src)
		return b.String()
	}
	bit := opBit(op)
	if bit&adminOps != 0 {
		fmt.Fprintf(&b, ": key administration is for root, hsmhost's own user (uid %d) and admin_users or admin_groups in %s",
			a.hostUIDOr(), src)
		if a.Rules() == 0 {
			return b.String()
		}
		b.WriteString(", or a policy that grants " + string(op) + " on the key")
	}
	fmt.Fprintf(&b, "; %s", a.nearest(c, op, key))
	return b.String()
}

func (a *Access) hostUIDOr() uint32 {
	if a == nil {
		return uint32(os.Geteuid())
	}
	return a.hostUID
}

// nearest explains a refusal by the rules that came closest. The rules
// that grant the operation on this key say whom they admit (and why this
// caller is not it); failing those, a rule that admits this caller for the
// key says for what; failing that, no rule covers the key, and the nearest
// one (admitting this caller for this operation, if any) shows its keys.
func (a *Access) nearest(c *Caller, op core.Operation, key string) string {
	if a.Rules() == 0 {
		return "no policy grants " + string(op)
	}
	bit := opBit(op)
	const most = 3
	var granting []string
	more, covered, forCaller := 0, -1, -1
	for i := range a.rules {
		r := &a.rules[i]
		if !r.coversKey(key) {
			continue
		}
		if covered < 0 {
			covered = i
		}
		if forCaller < 0 && r.admitsCaller(c) {
			forCaller = i
		}
		if r.ops&bit == 0 {
			continue
		}
		if len(granting) == most {
			more++
			continue
		}
		if !r.admitsPerson(c) {
			granting = append(granting, fmt.Sprintf("%s grants %s on this key only to %s", r.title(), op, r.whom()))
		} else {
			exe := c.Exe
			if exe == "" {
				exe = "unknown"
			}
			granting = append(granting, fmt.Sprintf("%s grants %s on this key to this user only running %s (the caller runs %s)", r.title(), op, r.Executable, exe))
		}
	}
	switch {
	case len(granting) > 0:
		s := strings.Join(granting, "; ")
		if more > 0 {
			s += fmt.Sprintf("; and %d more", more)
		}
		return s
	case forCaller >= 0:
		r := &a.rules[forCaller]
		return fmt.Sprintf("no policy grants %s on this key; %s admits this caller for it only for %s", op, r.title(), r.opList())
	case covered >= 0:
		return "no policy grants " + string(op) + " on this key"
	}
	best := 0
	for i := range a.rules {
		if r := &a.rules[i]; r.ops&bit != 0 && r.admitsCaller(c) {
			best = i
			break
		}
	}
	r := &a.rules[best]
	return fmt.Sprintf("no policy covers this key (nearest: %s, for keys %s)", r.title(), strings.Join(r.Keys, ", "))
}

func (r *rule) title() string { return fmt.Sprintf("policy %q (%s)", r.Name, r.Where) }

func (r *rule) whom() string {
	var parts []string
	if r.AnyUser {
		parts = append(parts, "every user")
	}
	if len(r.Users) > 0 {
		parts = append(parts, "users "+idList(r.Users))
	}
	if len(r.Groups) > 0 {
		parts = append(parts, "groups "+idList(r.Groups))
	}
	s := strings.Join(parts, " and ")
	if r.Executable != "" {
		s += " running " + r.Executable
	}
	return s
}

func idList(ids []ID) string {
	var s []string
	for _, id := range ids {
		if id.Name != "" && id.Name != strconv.FormatUint(uint64(id.Num), 10) {
			s = append(s, fmt.Sprintf("%s (%d)", id.Name, id.Num))
		} else {
			s = append(s, strconv.FormatUint(uint64(id.Num), 10))
		}
	}
	return strings.Join(s, ", ")
}

func (r *rule) opList() string {
	var s []string
	for _, op := range append(append([]core.Operation{}, UseOperations...), AdminOperations...) {
		if r.ops&opBit(op) != 0 {
			s = append(s, string(op))
		}
	}
	return strings.Join(s, ", ")
}

// keyOf is the canonical reference without its version, a prefix of
// canonical (both ?version= and ;version= are 9 bytes).
func keyOf(r core.KeyRef, canonical string) string {
	if r.Version == "" {
		return canonical
	}
	return canonical[:len(canonical)-len(r.Version)-len("?version=")]
}

// WithAccess gives a new table its access policy; without it the table has
// none (every caller may use every key; administration is for root and
// hsmhost's own user).
func WithAccess(a *Access) Option {
	return func(t *table) { t.access = a }
}

// Option configures a table built by New or Swap.
type Option func(*table)
