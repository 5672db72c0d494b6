package simulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hsmbridge/hsmbridge/core"
)

// recordFormat tags every key file so that a future layout can be told apart.
const recordFormat = "hsmbridge-simulator-key-v1"

// record is one key version on disk: <keys>/<ns>/<name>/<version>.json.
// The public key is stored next to the private one so that metadata lookups
// never parse private material.
type record struct {
	Format    string          `json:"format"`
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	Version   string          `json:"version"`
	Seq       uint64          `json:"seq"` // creation order within the key
	Type      core.KeyType    `json:"type"`
	Bits      int             `json:"bits,omitempty"`
	Curve     core.Curve      `json:"curve,omitempty"`
	Usages    []core.KeyUsage `json:"usages"`
	Enabled   bool            `json:"enabled"`
	Created   time.Time       `json:"created"`
	PublicDER []byte          `json:"public_key_spki"`
	PKCS8     []byte          `json:"private_key_pkcs8,omitempty"`
	Secret    []byte          `json:"secret,omitempty"` // oct keys
}

var versionPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

const maxNameLen = 127

// escapeName makes a namespace or key name safe as one path element: letters,
// digits, '-' and '_' stay, '.' stays except in first position (no "." or
// ".." and no hidden files), every other byte becomes %XX. The mapping is
// injective and reversed by url.PathUnescape.
func escapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func unescapeName(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		c, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(c))
		i += 2
	}
	// Only canonical spellings name keys; anything else is a stranger.
	return b.String(), escapeName(b.String()) == s
}

func checkName(what, s string) error {
	if s == "" || len(s) > maxNameLen {
		return core.Errorf(core.KindInvalidInput, "%s %q must be 1-%d bytes", what, s, maxNameLen)
	}
	return nil
}

// keyDir is the directory of one key; callers have checked the names.
func (b *Backend) keyDir(ns, name string) string {
	return filepath.Join(b.keysDir(), escapeName(ns), escapeName(name))
}

func (b *Backend) keysDir() string { return filepath.Join(b.stateDir, "simulator", "keys") }

// open creates the store's directories (0700) on first use.
func (b *Backend) open() error {
	if b.opened {
		return nil
	}
	if err := os.MkdirAll(b.keysDir(), 0o700); err != nil {
		return core.Errorf(core.KindUnavailable, "simulator: cannot create key store under %s: %w", b.stateDir, err)
	}
	b.opened = true
	return nil
}

// readKeyDir reads every version file of one key. A missing directory is not
// an error: it yields no records.
func readKeyDir(dir string) ([]*record, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, core.Errorf(core.KindUnavailable, "simulator: reading %s: %w", dir, err)
	}
	var recs []*record
	for _, e := range entries {
		v, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !versionPattern.MatchString(v) {
			continue // temp files and strangers
		}
		rec, err := readRecord(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted under our feet by another process
		}
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

func readRecord(path string) (*record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil || rec.Format != recordFormat {
		return nil, core.Errorf(core.KindInternal, "simulator: %s is not a key file of format %s", path, recordFormat)
	}
	return &rec, nil
}

// writeRecord writes a version file atomically: a 0600 temp file in the same
// directory, fsync, rename, fsync of the directory.
func writeRecord(dir string, rec *record) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return core.Errorf(core.KindUnavailable, "simulator: creating %s: %w", dir, err)
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return core.Errorf(core.KindInternal, "simulator: encoding key: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*") // CreateTemp uses mode 0600
	if err != nil {
		return core.Errorf(core.KindUnavailable, "simulator: writing key: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, rec.Version+".json"))
	}
	if err != nil {
		os.Remove(tmp)
		return core.Errorf(core.KindUnavailable, "simulator: writing key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
