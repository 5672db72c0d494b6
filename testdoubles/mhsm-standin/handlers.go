package mhsmstandin

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	recoverableDays = 7
	recoveryLevel   = "CustomizedRecoverable+Purgeable"
	maxPageSize     = 25
	maxRandomBytes  = 128
)

// keyOpSpec describes one POST /keys/{name}[/{version}]/{op}.
type keyOpSpec struct {
	permission string // the key_ops word (and the word in error messages)
	action     string // the Managed HSM RBAC data action
	private    bool   // needs the private key: refused on a disabled key
}

// keyOps is keyed by the lower-cased path segment: the service matches the
// operation case-insensitively (.NET sends "wrapKey", Go "wrapkey").
var keyOps = map[string]keyOpSpec{
	"sign":      {"sign", "sign", true},
	"verify":    {"verify", "verify", false},
	"encrypt":   {"encrypt", "encrypt", false},
	"decrypt":   {"decrypt", "decrypt", true},
	"wrapkey":   {"wrapKey", "wrap", false},
	"unwrapkey": {"unwrapKey", "unwrap", true},
}

// Default and allowed key_ops per key type, as a create without key_ops
// returns them in the recordings.
var (
	defaultOps = map[string][]string{
		ktyRSA: {"wrapKey", "decrypt", "encrypt", "unwrapKey", "sign", "verify"},
		ktyEC:  {"verify", "deriveKey", "sign"},
		ktyOct: {"deriveKey", "wrapKey", "verify", "sign", "unwrapKey", "encrypt", "decrypt"},
	}
	allowedOps = map[string][]string{
		ktyRSA: {"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"},
		ktyEC:  {"sign", "verify", "deriveKey"},
		ktyOct: {"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "deriveKey"},
	}
)

var (
	nameRE    = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	versionRE = regexp.MustCompile(`^[0-9A-Fa-f]{32}$`)
)

// splitPath splits "/keys/a/" into ["keys","a",""]: a trailing slash is a
// segment of its own because azkeys sends "/keys/{name}/" for "latest".
func splitPath(p string) []string {
	return strings.Split(strings.TrimPrefix(p, "/"), "/")
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	segs := splitPath(r.URL.Path)
	switch strings.ToLower(segs[0]) {
	case "keys":
		s.routeKeys(w, r, segs[1:], body)
	case "deletedkeys":
		s.routeDeleted(w, r, segs[1:])
	case "rng":
		if len(segs) != 1 {
			notFound(w, r)
			return
		}
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r)
			return
		}
		s.rng(w, body)
	default:
		notFound(w, r)
	}
}

func (s *Server) routeKeys(w http.ResponseWriter, r *http.Request, segs []string, body []byte) {
	if len(segs) == 0 || (len(segs) == 1 && segs[0] == "") {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r)
			return
		}
		s.listKeys(w, r)
		return
	}
	name := segs[0]
	if !nameRE.MatchString(name) {
		writeError(w, http.StatusBadRequest, "BadParameter", "The request URI contains an invalid name: "+name, "")
		return
	}
	switch len(segs) {
	case 1:
		switch r.Method {
		case http.MethodPut:
			s.importKey(w, r, name, body)
		case http.MethodGet:
			s.getKey(w, r, name, "")
		case http.MethodPatch:
			s.updateKey(w, r, name, "", body)
		case http.MethodDelete:
			s.deleteKey(w, r, name)
		default:
			methodNotAllowed(w, r)
		}
		return
	case 2:
		seg := strings.ToLower(segs[1])
		if spec, ok := keyOps[seg]; ok {
			s.keyOp(w, r, name, "", spec, body)
			return
		}
		switch {
		case seg == "create":
			if r.Method != http.MethodPost {
				methodNotAllowed(w, r)
				return
			}
			s.createKey(w, r, name, body)
		case seg == "versions":
			if r.Method != http.MethodGet {
				methodNotAllowed(w, r)
				return
			}
			s.listVersions(w, r, name)
		case seg == "" || versionRE.MatchString(seg):
			switch r.Method {
			case http.MethodGet:
				s.getKey(w, r, name, seg)
			case http.MethodPatch:
				s.updateKey(w, r, name, seg, body)
			default:
				methodNotAllowed(w, r)
			}
		case seg == "rotate" || seg == "rotationpolicy" || seg == "backup" || seg == "release" || seg == "attestation":
			notModelled(w, seg)
		default:
			keyNotFound(w, r, "keys", name+"/"+segs[1])
		}
		return
	case 3:
		version, op := strings.ToLower(segs[1]), strings.ToLower(segs[2])
		spec, ok := keyOps[op]
		switch {
		case ok:
			if version != "" && !versionRE.MatchString(version) {
				keyNotFound(w, r, "keys", name+"/"+segs[1])
				return
			}
			s.keyOp(w, r, name, version, spec, body)
		case op == "release" || op == "attestation":
			notModelled(w, op)
		default:
			notFound(w, r)
		}
		return
	}
	notFound(w, r)
}

func (s *Server) routeDeleted(w http.ResponseWriter, r *http.Request, segs []string) {
	if len(segs) == 0 || (len(segs) == 1 && segs[0] == "") {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r)
			return
		}
		s.listDeleted(w, r)
		return
	}
	name := segs[0]
	if !nameRE.MatchString(name) {
		writeError(w, http.StatusBadRequest, "BadParameter", "The request URI contains an invalid name: "+name, "")
		return
	}
	switch {
	case len(segs) == 1 && r.Method == http.MethodGet:
		e, err := s.store.getDeleted(name)
		if err != nil {
			keyNotFound(w, r, "deletedkeys", name)
			return
		}
		writeJSON(w, http.StatusOK, s.bundle(r, e.latest(), e.deletedDate))
	case len(segs) == 1 && r.Method == http.MethodDelete:
		if err := s.store.purge(name); err != nil {
			keyNotFound(w, r, "deletedkeys", name)
			return
		}
		s.persist()
		w.Header().Set("Content-Type", contentTypeJSON)
		w.WriteHeader(http.StatusNoContent)
	case len(segs) == 2 && strings.EqualFold(segs[1], "recover") && r.Method == http.MethodPost:
		v, err := s.store.recover(name)
		if err != nil {
			keyNotFound(w, r, "deletedkeys", name)
			return
		}
		s.persist()
		writeJSON(w, http.StatusOK, s.bundle(r, v, 0))
	case len(segs) <= 2:
		methodNotAllowed(w, r)
	default:
		notFound(w, r)
	}
}

// ---- errors the routes share ----

// keyNotFound answers as the recordings show:
// "Key not found: https://<host>/keys/<name> (Activity ID: <uuid>)".
func keyNotFound(w http.ResponseWriter, r *http.Request, coll, name string) {
	msg := fmt.Sprintf("Key not found: https://%s/%s/%s (Activity ID: %s)", r.Host, coll, name, w.Header().Get("x-ms-request-id"))
	writeError(w, http.StatusNotFound, "KeyNotFound", msg, "")
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "NotFound", "The requested path "+r.URL.Path+" does not exist.", "")
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The method "+r.Method+" is not allowed on "+r.URL.Path+".", "")
}

func notModelled(w http.ResponseWriter, what string) {
	writeError(w, http.StatusBadRequest, "BadParameter", "The '"+what+"' operation is not modelled by the mhsm-standin.", "")
}

func writeAPIError(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae.status, ae.code, ae.msg, ae.inner)
		return
	}
	writeError(w, http.StatusInternalServerError, "InternalServerError", err.Error(), "")
}

func badJSON(w http.ResponseWriter, err error) {
	writeError(w, http.StatusBadRequest, "BadParameter", "The request body is not valid: "+err.Error(), "")
}

func (s *Server) persist() {
	if s.opts.StateFile == "" {
		return
	}
	if err := s.store.save(s.opts.StateFile); err != nil && s.opts.Logf != nil {
		s.opts.Logf("saving state to %s: %v", s.opts.StateFile, err)
	}
}

// ---- answers ----

func (s *Server) kid(r *http.Request, v *keyVersion) string {
	return "https://" + r.Host + "/keys/" + v.name + "/" + v.version
}

func attributesOf(v *keyVersion) wireAttributes {
	return wireAttributes{
		Created: v.created, Enabled: v.enabled, Exp: v.exp, Exportable: v.exportable, Nbf: v.nbf,
		RecoverableDays: recoverableDays, RecoveryLevel: recoveryLevel, Updated: v.updated,
	}
}

// bundle is a key's answer; deletedDate != 0 adds the deleted-key fields.
func (s *Server) bundle(r *http.Request, v *keyVersion, deletedDate int64) wireBundle {
	b := wireBundle{
		Attributes: attributesOf(v),
		Key:        wireJWK{KeyOps: v.ops, Kid: s.kid(r, v), Kty: v.kty},
		Tags:       v.tags,
	}
	v.mat.publicJWK(&b.Key)
	if deletedDate != 0 {
		purge := deletedDate + recoverableDays*24*3600
		b.DeletedDate, b.ScheduledPurgeDate = &deletedDate, &purge
		b.RecoveryID = "https://" + r.Host + "/deletedkeys/" + v.name
	}
	return b
}

func newVersion() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkOps validates requested key_ops against the key type, with the
// wording Key Vault uses for this 400.
func checkOps(kty string, ops []string) error {
	allowed := allowedOps[kty]
	var bad []string
	for _, op := range ops {
		if !slices.Contains(allowed, op) {
			bad = append(bad, strconv.Quote(op))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	return badParam("Unsupported key operation(s): %s. Supported values are %s.", strings.Join(bad, ", "), strings.Join(quoted, ", "))
}

// importRank is the order in which the service answers the key_ops of an
// import (PUT /keys/{name}): the .NET LocalSignVerifyRoundTrip(PS256) and
// (RS256) recordings send "encrypt, decrypt, sign, verify, wrapKey,
// unwrapKey" and are answered "decrypt, encrypt, unwrapKey, sign, verify,
// wrapKey". Where deriveKey goes is not recorded (we put it last). A create
// (POST /keys/{name}/create) answers the requested key_ops in request order
// in every recording (Go TestEncryptDecrypt "encrypt, decrypt",
// TestSignVerify "sign, verify", TestWrapUnwrap "wrapKey, unwrapKey"), so
// createKey keeps them as sent.
var importRank = map[string]int{"decrypt": 0, "encrypt": 1, "unwrapKey": 2, "sign": 3, "verify": 4, "wrapKey": 5, "deriveKey": 6}

// importOrder returns the requested key_ops of an import in the service's
// order (see importRank). An empty list stays empty (the defaults apply).
func importOrder(ops []string) []string {
	if len(ops) == 0 {
		return ops
	}
	out := slices.Clone(ops)
	rank := func(op string) int {
		if r, ok := importRank[op]; ok {
			return r
		}
		return len(importRank) // unknown words: refused by checkOps anyway
	}
	slices.SortStableFunc(out, func(a, b string) int { return rank(a) - rank(b) })
	return out
}

// newKeyVersion builds a version from the common create/import fields.
func (s *Server) newKeyVersion(name, kty, crv string, mat *material, ops []string, attrs *reqAttributes, tags map[string]string, releasePolicy json.RawMessage) (*keyVersion, error) {
	if len(releasePolicy) > 0 && string(releasePolicy) != "null" {
		return nil, badParam("Key release policies are not modelled by the mhsm-standin.")
	}
	if len(ops) == 0 {
		ops = defaultOps[kty]
	}
	if err := checkOps(kty, ops); err != nil {
		return nil, err
	}
	now := time.Now().Unix()
	v := &keyVersion{
		name: name, version: newVersion(), kty: kty, crv: crv, ops: slices.Clone(ops),
		enabled: true, created: now, updated: now, tags: tags, mat: mat,
	}
	if attrs != nil {
		if attrs.Exportable != nil && *attrs.Exportable {
			return nil, badParam("Exportable keys must have a release policy; release policies are not modelled by the mhsm-standin.")
		}
		if attrs.Enabled != nil {
			v.enabled = *attrs.Enabled
		}
		v.nbf, v.exp = attrs.Nbf, attrs.Exp
	}
	return v, nil
}

func (s *Server) storeNew(w http.ResponseWriter, r *http.Request, v *keyVersion) {
	if err := s.store.add(v); err != nil {
		writeError(w, http.StatusConflict, "Conflict", fmt.Sprintf("Key %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.", v.name), "")
		return
	}
	s.persist()
	writeJSON(w, http.StatusOK, s.bundle(r, v, 0))
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	var req createRequest
	if err := json.Unmarshal(body, &req); err != nil {
		badJSON(w, err)
		return
	}
	mat, kty, crv, err := generate(&req)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	v, err := s.newKeyVersion(name, kty, crv, mat, req.KeyOps, req.Attributes, req.Tags, req.ReleasePolicy)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	s.storeNew(w, r, v)
}

func (s *Server) importKey(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	var req importRequest
	if err := json.Unmarshal(body, &req); err != nil {
		badJSON(w, err)
		return
	}
	if req.Key == nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "The key to import (key) is required.", "")
		return
	}
	mat, kty, err := materialFromJWK(req.Key)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	v, err := s.newKeyVersion(name, kty, mat.curve(), mat, importOrder(req.Key.KeyOps), req.Attributes, req.Tags, req.ReleasePolicy)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	s.storeNew(w, r, v)
}

func (s *Server) getKey(w http.ResponseWriter, r *http.Request, name, version string) {
	v, err := s.store.get(name, version)
	if err != nil {
		keyNotFound(w, r, "keys", strings.TrimSuffix(name+"/"+version, "/"))
		return
	}
	writeJSON(w, http.StatusOK, s.bundle(r, v, 0))
}

func (s *Server) updateKey(w http.ResponseWriter, r *http.Request, name, version string, body []byte) {
	var req updateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		badJSON(w, err)
		return
	}
	if len(req.ReleasePolicy) > 0 && string(req.ReleasePolicy) != "null" {
		writeAPIError(w, badParam("Key release policies are not modelled by the mhsm-standin."))
		return
	}
	v, err := s.store.update(name, version, func(v *keyVersion) error {
		if req.KeyOps != nil {
			if err := checkOps(v.kty, req.KeyOps); err != nil {
				return err
			}
			v.ops = slices.Clone(req.KeyOps)
		}
		if a := req.Attributes; a != nil {
			if a.Exportable != nil && *a.Exportable != v.exportable {
				return badParam("The exportable attribute cannot be changed.")
			}
			if a.Enabled != nil {
				v.enabled = *a.Enabled
			}
			if a.Nbf != nil {
				v.nbf = a.Nbf
			}
			if a.Exp != nil {
				v.exp = a.Exp
			}
		}
		if req.Tags != nil {
			v.tags = req.Tags
		}
		v.updated = time.Now().Unix()
		return nil
	})
	switch {
	case errors.Is(err, errNoKey), errors.Is(err, errNoVersion):
		keyNotFound(w, r, "keys", strings.TrimSuffix(name+"/"+version, "/"))
		return
	case err != nil:
		writeAPIError(w, err)
		return
	}
	s.persist()
	writeJSON(w, http.StatusOK, s.bundle(r, v, 0))
}

func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request, name string) {
	e, err := s.store.remove(name, time.Now().Unix(), s.opts.PurgeOnDelete)
	if err != nil {
		keyNotFound(w, r, "keys", name)
		return
	}
	s.persist()
	writeJSON(w, http.StatusOK, s.bundle(r, e.latest(), e.deletedDate))
}

// ---- listings ----

// page cuts one page out of n items. The skiptoken is the offset, opaque to
// clients; the nextLink, like the service's, repeats maxresults when the
// client sent it and carries no api-version.
func (s *Server) page(w http.ResponseWriter, r *http.Request, n int) (lo, hi int, next *string, ok bool) {
	q := r.URL.Query()
	size := s.pageSize
	if m := q.Get("maxresults"); m != "" {
		v, err := strconv.Atoi(m)
		if err != nil || v < 1 || v > maxPageSize {
			writeError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("The value of maxresults must be an integer between 1 and %d.", maxPageSize), "")
			return 0, 0, nil, false
		}
		size = v
	}
	if t := q.Get("$skiptoken"); t != "" {
		raw, err := base64.RawURLEncoding.DecodeString(t)
		off, err2 := strconv.Atoi(strings.TrimPrefix(string(raw), "offset:"))
		if err != nil || err2 != nil || off < 0 {
			writeError(w, http.StatusBadRequest, "BadParameter", "The $skiptoken is not valid.", "")
			return 0, 0, nil, false
		}
		lo = off
	}
	lo = min(lo, n)
	hi = min(lo+size, n)
	if hi < n {
		link := "https://" + r.Host + r.URL.Path + "?"
		if m := q.Get("maxresults"); m != "" {
			link += "maxresults=" + m + "&"
		}
		link += "$skiptoken=" + base64.RawURLEncoding.EncodeToString([]byte("offset:"+strconv.Itoa(hi)))
		next = &link
	}
	return lo, hi, next, true
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	all := s.store.listLive()
	lo, hi, next, ok := s.page(w, r, len(all))
	if !ok {
		return
	}
	out := wirePage{NextLink: next, Value: []wireItem{}}
	for _, v := range all[lo:hi] {
		out.Value = append(out.Value, wireItem{Attributes: attributesOf(v), Kid: "https://" + r.Host + "/keys/" + v.name, Tags: v.tags})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request, name string) {
	all, err := s.store.listVersions(name)
	if err != nil {
		keyNotFound(w, r, "keys", name)
		return
	}
	lo, hi, next, ok := s.page(w, r, len(all))
	if !ok {
		return
	}
	out := wirePage{NextLink: next, Value: []wireItem{}}
	for _, v := range all[lo:hi] {
		out.Value = append(out.Value, wireItem{Attributes: attributesOf(v), Kid: s.kid(r, v), Tags: v.tags})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listDeleted(w http.ResponseWriter, r *http.Request) {
	all := s.store.listDeleted()
	lo, hi, next, ok := s.page(w, r, len(all))
	if !ok {
		return
	}
	out := wirePage{NextLink: next, Value: []wireItem{}}
	for _, d := range all[lo:hi] {
		dd, purge := d.deletedDate, d.deletedDate+recoverableDays*24*3600
		out.Value = append(out.Value, wireItem{
			Attributes: attributesOf(d.v), DeletedDate: &dd, Kid: "https://" + r.Host + "/keys/" + d.v.name,
			RecoveryID: "https://" + r.Host + "/deletedkeys/" + d.v.name, ScheduledPurgeDate: &purge, Tags: d.v.tags,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// ---- cryptographic operations ----

func (s *Server) keyOp(w http.ResponseWriter, r *http.Request, name, version string, spec keyOpSpec, body []byte) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r)
		return
	}
	v, err := s.store.get(name, version)
	if err != nil {
		keyNotFound(w, r, "keys", strings.TrimSuffix(name+"/"+version, "/"))
		return
	}
	var req opRequest
	if err := json.Unmarshal(body, &req); err != nil {
		badJSON(w, err)
		return
	}
	// Key Vault refuses the private-key operations on a disabled or
	// out-of-validity key and still allows the public ones (encrypt, verify,
	// wrapKey with RSA); an oct key has no public half, so all are refused.
	guarded := spec.private || v.kty == ktyOct
	now := time.Now().Unix()
	switch {
	case guarded && !v.enabled:
		writeError(w, http.StatusForbidden, "Forbidden", "Operation "+spec.permission+" is not allowed on a disabled key.", "KeyDisabled")
		return
	case guarded && v.nbf != nil && now < *v.nbf:
		writeError(w, http.StatusForbidden, "Forbidden", "Operation "+spec.permission+" is not allowed on a key that is not yet valid (nbf).", "KeyNotYetValid")
		return
	case guarded && v.exp != nil && now >= *v.exp:
		writeError(w, http.StatusForbidden, "Forbidden", "Operation "+spec.permission+" is not allowed on an expired key (exp).", "KeyExpired")
		return
	case !slices.Contains(v.ops, spec.permission):
		writeError(w, http.StatusForbidden, "Forbidden", "Operation "+spec.permission+" is not permitted on this key.", "KeyOperationForbidden")
		return
	case req.Alg == "":
		writeError(w, http.StatusBadRequest, "BadParameter", "The algorithm (alg) is required.", "")
		return
	}
	kid := s.kid(r, v)
	var out []byte
	switch spec.permission {
	case "sign":
		out, err = v.mat.sign(req.Alg, req.Value)
	case "verify":
		var ok bool
		if ok, err = v.mat.verify(req.Alg, req.Digest, req.Value); err == nil {
			writeJSON(w, http.StatusOK, verifyResult{Alg: req.Alg, Kid: kid, Value: ok})
			return
		}
	case "encrypt":
		out, err = v.mat.encrypt(req.Alg, req.Value)
	case "decrypt":
		out, err = v.mat.decrypt(req.Alg, req.Value)
	case "wrapKey":
		out, err = v.mat.wrap(req.Alg, req.Value)
	case "unwrapKey":
		out, err = v.mat.unwrap(req.Alg, req.Value)
	}
	if err != nil {
		writeAPIError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, opResult{Alg: req.Alg, Kid: kid, Value: out})
}

func (s *Server) rng(w http.ResponseWriter, body []byte) {
	var req struct {
		Count *int `json:"count"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		badJSON(w, err)
		return
	}
	if req.Count == nil || *req.Count < 1 || *req.Count > maxRandomBytes {
		writeError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("The count of random bytes must be between 1 and %d.", maxRandomBytes), "")
		return
	}
	b := make([]byte, *req.Count)
	_, _ = rand.Read(b)
	writeJSON(w, http.StatusOK, struct {
		Value bytesField `json:"value"`
	}{b})
}
