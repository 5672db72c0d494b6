package mhsmstandin

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// keyVersion is one version of a key. It is never changed once stored:
// PATCH stores a modified copy, so a crypto operation that looked a version
// up keeps a consistent view without holding the store's lock.
type keyVersion struct {
	name       string // as first created; names are case-insensitive
	version    string // 32 lowercase hex digits
	kty        string // RSA-HSM, EC-HSM or oct-HSM
	crv        string // EC only
	ops        []string
	enabled    bool
	nbf, exp   *int64
	exportable bool
	created    int64
	updated    int64
	tags       map[string]string
	mat        *material // parsed once; shared by all copies
}

func (v *keyVersion) clone() *keyVersion {
	c := *v
	return &c
}

// keyEntry is one key name: its versions in creation order, the last being
// the current one.
type keyEntry struct {
	name        string
	seq         uint64 // creation order of the name: listings follow it
	versions    []*keyVersion
	deletedDate int64 // set while in the deleted state
}

func (e *keyEntry) latest() *keyVersion { return e.versions[len(e.versions)-1] }

func (e *keyEntry) find(version string) *keyVersion {
	for _, v := range e.versions {
		if v.version == version {
			return v
		}
	}
	return nil
}

var (
	errNoKey     = errors.New("key not found")
	errNoVersion = errors.New("key version not found")
	errDeleted   = errors.New("key is in the deleted state")
)

// store holds every key in memory behind one RWMutex. Lookups take the read
// lock only for a map access; crypto runs outside the lock.
type store struct {
	mu      sync.RWMutex
	live    map[string]*keyEntry // by lower-case name
	deleted map[string]*keyEntry
	nextSeq uint64 // next keyEntry.seq

	saveMu sync.Mutex
}

func newStore() *store {
	return &store{live: map[string]*keyEntry{}, deleted: map[string]*keyEntry{}}
}

// get returns the named version, or the current one when version is "".
func (st *store) get(name, version string) (*keyVersion, error) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	e := st.live[strings.ToLower(name)]
	if e == nil {
		return nil, errNoKey
	}
	if version == "" {
		return e.latest(), nil
	}
	if v := e.find(strings.ToLower(version)); v != nil {
		return v, nil
	}
	return nil, errNoVersion
}

// add appends a new version (creating the name if needed).
func (st *store) add(v *keyVersion) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	k := strings.ToLower(v.name)
	if st.deleted[k] != nil {
		return errDeleted
	}
	e := st.live[k]
	if e == nil {
		st.nextSeq++
		e = &keyEntry{name: v.name, seq: st.nextSeq}
		st.live[k] = e
	}
	v.name = e.name
	e.versions = append(e.versions, v)
	return nil
}

// update replaces a version by fn's modified copy and returns the copy.
func (st *store) update(name, version string, fn func(*keyVersion) error) (*keyVersion, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e := st.live[strings.ToLower(name)]
	if e == nil {
		return nil, errNoKey
	}
	i := len(e.versions) - 1
	if version != "" {
		for i = len(e.versions) - 1; i >= 0 && e.versions[i].version != strings.ToLower(version); i-- {
		}
		if i < 0 {
			return nil, errNoVersion
		}
	}
	c := e.versions[i].clone()
	if err := fn(c); err != nil {
		return nil, err
	}
	e.versions[i] = c
	return c, nil
}

// remove moves a name to the deleted state, or drops it when purge is set.
func (st *store) remove(name string, now int64, purge bool) (*keyEntry, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	k := strings.ToLower(name)
	e := st.live[k]
	if e == nil {
		return nil, errNoKey
	}
	delete(st.live, k)
	e.deletedDate = now
	if !purge {
		st.deleted[k] = e
	}
	return e, nil
}

func (st *store) getDeleted(name string) (*keyEntry, error) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if e := st.deleted[strings.ToLower(name)]; e != nil {
		return e, nil
	}
	return nil, errNoKey
}

func (st *store) purge(name string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	k := strings.ToLower(name)
	if st.deleted[k] == nil {
		return errNoKey
	}
	delete(st.deleted, k)
	return nil
}

func (st *store) recover(name string) (*keyVersion, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	k := strings.ToLower(name)
	e := st.deleted[k]
	if e == nil {
		return nil, errNoKey
	}
	delete(st.deleted, k)
	e.deletedDate = 0
	st.live[k] = e
	return e.latest(), nil
}

// byCreation returns m's entries in the order their names were created:
// the service lists keys in creation order, not by name (see the ListKeys
// recording).
func byCreation(m map[string]*keyEntry) []*keyEntry {
	out := make([]*keyEntry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// listLive returns the current version of every live key, in creation order.
func (st *store) listLive() []*keyVersion {
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := make([]*keyVersion, 0, len(st.live))
	for _, e := range byCreation(st.live) {
		out = append(out, e.latest())
	}
	return out
}

func (st *store) listVersions(name string) ([]*keyVersion, error) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	e := st.live[strings.ToLower(name)]
	if e == nil {
		return nil, errNoKey
	}
	return append([]*keyVersion(nil), e.versions...), nil
}

// deletedSnapshot is a deleted key's current version with its deletion date.
type deletedSnapshot struct {
	v           *keyVersion
	deletedDate int64
}

func (st *store) listDeleted() []deletedSnapshot {
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := make([]deletedSnapshot, 0, len(st.deleted))
	for _, e := range byCreation(st.deleted) {
		out = append(out, deletedSnapshot{e.latest(), e.deletedDate})
	}
	return out
}

// ---- optional JSON state file ----

type persistedVersion struct {
	Version    string            `json:"version"`
	Kty        string            `json:"kty"`
	Crv        string            `json:"crv,omitempty"`
	Ops        []string          `json:"key_ops"`
	Enabled    bool              `json:"enabled"`
	Nbf        *int64            `json:"nbf,omitempty"`
	Exp        *int64            `json:"exp,omitempty"`
	Exportable bool              `json:"exportable"`
	Created    int64             `json:"created"`
	Updated    int64             `json:"updated"`
	Tags       map[string]string `json:"tags,omitempty"`
	Key        json.RawMessage   `json:"key"` // private JWK
}

type persistedEntry struct {
	Name        string             `json:"name"`
	Seq         uint64             `json:"seq,omitempty"` // creation order
	DeletedDate int64              `json:"deletedDate,omitempty"`
	Versions    []persistedVersion `json:"versions"`
}

type persistedState struct {
	Keys    []persistedEntry `json:"keys"`
	Deleted []persistedEntry `json:"deleted"`
}

func (st *store) save(path string) error {
	st.saveMu.Lock()
	defer st.saveMu.Unlock()
	st.mu.RLock()
	var ps persistedState
	conv := func(m map[string]*keyEntry) []persistedEntry {
		var out []persistedEntry // in creation order: load restores it
		for _, e := range byCreation(m) {
			pe := persistedEntry{Name: e.name, Seq: e.seq, DeletedDate: e.deletedDate}
			for _, v := range e.versions {
				pe.Versions = append(pe.Versions, persistedVersion{
					Version: v.version, Kty: v.kty, Crv: v.crv, Ops: v.ops, Enabled: v.enabled,
					Nbf: v.nbf, Exp: v.exp, Exportable: v.exportable, Created: v.created,
					Updated: v.updated, Tags: v.tags, Key: v.mat.privateJWK(),
				})
			}
			out = append(out, pe)
		}
		return out
	}
	ps.Keys, ps.Deleted = conv(st.live), conv(st.deleted)
	st.mu.RUnlock()
	b, err := json.MarshalIndent(ps, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mhsm-standin-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (st *store) load(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var ps persistedState
	if err := json.Unmarshal(b, &ps); err != nil {
		return err
	}
	var loaded []*keyEntry
	conv := func(pes []persistedEntry, into map[string]*keyEntry) error {
		for _, pe := range pes {
			e := &keyEntry{name: pe.Name, deletedDate: pe.DeletedDate}
			for _, pv := range pe.Versions {
				var j reqJWK
				if err := json.Unmarshal(pv.Key, &j); err != nil {
					return err
				}
				mat, _, err := materialFromJWK(&j)
				if err != nil {
					return err
				}
				e.versions = append(e.versions, &keyVersion{
					name: pe.Name, version: pv.Version, kty: pv.Kty, crv: pv.Crv, ops: pv.Ops,
					enabled: pv.Enabled, nbf: pv.Nbf, exp: pv.Exp, exportable: pv.Exportable,
					created: pv.Created, updated: pv.Updated, tags: pv.Tags, mat: mat,
				})
			}
			if len(e.versions) > 0 {
				if pe.Seq > st.nextSeq {
					st.nextSeq = pe.Seq
				}
				e.seq = pe.Seq
				loaded = append(loaded, e)
				into[strings.ToLower(pe.Name)] = e
			}
		}
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := conv(ps.Keys, st.live); err != nil {
		return err
	}
	if err := conv(ps.Deleted, st.deleted); err != nil {
		return err
	}
	// Files written before seq was kept: the file's order (which was by
	// name) stands for the creation order.
	for _, e := range loaded {
		if e.seq == 0 {
			st.nextSeq++
			e.seq = st.nextSeq
		}
	}
	return nil
}
