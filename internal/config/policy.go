package config

// The access policy: policy blocks and the admin_users and admin_groups
// attributes. Names of users and groups are resolved here, when the file is
// read (a user created later needs a reload), and the result is handed to
// hostsvc.NewAccess, which compiles it. See docs/CONFIG.md, "Access policy".

import (
	"fmt"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/hostsvc"
)

var policySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "keys", Required: true}, {Name: "users"}, {Name: "groups"},
		{Name: "executable"}, {Name: "operations", Required: true},
	},
}

// lookupUser and lookupGroup resolve names; tests replace them.
var (
	lookupUser = func(name string) (uint32, error) {
		u, err := user.Lookup(name)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseUint(u.Uid, 10, 32)
		return uint32(n), err
	}
	lookupGroup = func(name string) (uint32, error) {
		g, err := user.LookupGroup(name)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseUint(g.Gid, 10, 32)
		return uint32(n), err
	}
)

// AllOperationsWord in a policy's operations stands for every key
// operation (not administration).
const AllOperationsWord = "*"

func parsePolicy(blk *hcl.Block, errs *problems) hostsvc.Rule {
	r := hostsvc.Rule{Name: blk.Labels[0], Where: where(blk.DefRange)}
	if !backendNamePattern.MatchString(r.Name) {
		errs.add(blk.LabelRanges[0], "policy name %q must start with a letter and hold only letters, digits, '_' or '-'", r.Name)
	}
	content, d := blk.Body.Content(policySchema)
	errs.diags(d)
	if a, ok := content.Attributes["keys"]; ok {
		if list, ok := stringList(a, errs, "key patterns such as \"managedhsm:MyHSM:web-*\""); ok {
			if len(list) == 0 {
				errs.add(a.Range, "policy %q: keys is empty; give at least one key pattern", r.Name)
			}
			for _, k := range list {
				if msg := checkKeyPattern(k); msg != "" {
					errs.add(a.Range, "policy %q: %s", r.Name, msg)
					continue
				}
				r.Keys = append(r.Keys, k)
			}
		}
	}
	users, hasUsers := content.Attributes["users"]
	groups, hasGroups := content.Attributes["groups"]
	if hasUsers {
		if list, ok := stringList(users, errs, "user names or uids"); ok {
			for _, s := range list {
				if s == "*" {
					r.AnyUser = true
					continue
				}
				if id, ok := resolveID(s, lookupUser, "user", users.Range, errs); ok {
					r.Users = append(r.Users, id)
				}
			}
			if len(list) == 0 {
				errs.add(users.Range, "policy %q: users is empty", r.Name)
			}
		}
	}
	if hasGroups {
		if list, ok := stringList(groups, errs, "group names or gids"); ok {
			for _, s := range list {
				if id, ok := resolveID(s, lookupGroup, "group", groups.Range, errs); ok {
					r.Groups = append(r.Groups, id)
				}
			}
			if len(list) == 0 {
				errs.add(groups.Range, "policy %q: groups is empty", r.Name)
			}
		}
	}
	if !hasUsers && !hasGroups {
		errs.add(blk.DefRange, "policy %q admits nobody: give users, groups or both (users = [\"*\"] for every user)", r.Name)
	}
	if a, ok := content.Attributes["executable"]; ok {
		if s, ok := stringAttr(a, errs); ok {
			switch {
			case !filepath.IsAbs(s):
				errs.add(a.Range, "policy %q: executable %q must be an absolute path", r.Name, s)
			default:
				s = filepath.Clean(s)
				// The kernel reports the resolved path (/proc/<pid>/exe).
				if real, err := filepath.EvalSymlinks(s); err == nil {
					s = real
				}
				r.Executable = s
			}
		}
	}
	if a, ok := content.Attributes["operations"]; ok {
		if list, ok := stringList(a, errs, "operation names such as \"sign\""); ok {
			if len(list) == 0 {
				errs.add(a.Range, "policy %q: operations is empty", r.Name)
			}
			for _, s := range list {
				ops, ok := policyOperation(s)
				if !ok {
					errs.add(a.Range, "policy %q: unknown operation %q (%s)", r.Name, s, policyOperationWords())
					continue
				}
				r.Operations = append(r.Operations, ops...)
			}
		}
	}
	return r
}

// parseAdmins reads admin_users or admin_groups.
func parseAdmins(a *hcl.Attribute, group bool, errs *problems) []hostsvc.ID {
	what, look := "user", lookupUser
	if group {
		what, look = "group", lookupGroup
	}
	list, ok := stringList(a, errs, what+" names or numbers")
	if !ok {
		return nil
	}
	var ids []hostsvc.ID
	for _, s := range list {
		if id, ok := resolveID(s, look, what, a.Range, errs); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// resolveID takes a number as it is (a uid needs no passwd entry, as in
// containers) and looks a name up.
func resolveID(s string, look func(string) (uint32, error), what string, r hcl.Range, errs *problems) (hostsvc.ID, bool) {
	if s == "" {
		errs.add(r, "an empty %s name", what)
		return hostsvc.ID{}, false
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return hostsvc.ID{Num: uint32(n), Name: s}, true
	}
	n, err := look(s)
	if err != nil {
		errs.add(r, "no %s %q on this system", what, s)
		return hostsvc.ID{}, false
	}
	return hostsvc.ID{Num: n, Name: s}, true
}

func policyOperation(s string) ([]core.Operation, bool) {
	if s == AllOperationsWord {
		return hostsvc.UseOperations, true
	}
	for _, op := range append(append([]core.Operation{}, hostsvc.UseOperations...), hostsvc.AdminOperations...) {
		if string(op) == s {
			return []core.Operation{op}, true
		}
	}
	return nil, false
}

func policyOperationWords() string {
	var w []string
	for _, op := range append(append([]core.Operation{}, hostsvc.UseOperations...), hostsvc.AdminOperations...) {
		w = append(w, string(op))
	}
	return strings.Join(w, ", ") + `, or "*" for every operation but create_key, import_key and delete_key`
}

// checkKeyPattern catches patterns that can never match a canonical
// reference without its version.
func checkKeyPattern(p string) string {
	if p == "" {
		return "an empty key pattern matches no reference (\"*\" matches every one)"
	}
	if strings.Contains(p, "?version=") || strings.Contains(p, ";version=") {
		return fmt.Sprintf("key pattern %q names a version; patterns match references without their version", p)
	}
	head, _, _ := strings.Cut(p, "*")
	if msg := checkPrefix(head); msg != "" {
		return strings.Replace(msg, fmt.Sprintf("route prefix %q", head), fmt.Sprintf("key pattern %q", p), 1)
	}
	return ""
}

// stringList reads a list of strings (numbers are taken as their text).
func stringList(a *hcl.Attribute, errs *problems, what string) ([]string, bool) {
	v, d := a.Expr.Value(nil)
	errs.diags(d)
	if d.HasErrors() {
		return nil, false
	}
	list, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || list.IsNull() || !list.IsWhollyKnown() {
		errs.add(a.Range, "%s must be a list of %s", a.Name, what)
		return nil, false
	}
	var out []string
	for _, e := range list.AsValueSlice() {
		if e.IsNull() {
			errs.add(a.Range, "%s holds a null", a.Name)
			return nil, false
		}
		out = append(out, e.AsString())
	}
	return out, true
}
