package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// ManifestVersion is the manifest format this package writes. A manifest with a higher
// version comes from a newer corpintel and is refused with that reason.
const ManifestVersion = 1

// maxManifest bounds what ReadManifest accepts (the object index is a separate file).
const maxManifest = 16 << 20

// Manifest describes one backup: written last, before the directory is renamed into
// place, and never changed afterwards (pins and later verifications go to state.json).
type Manifest struct {
	FormatVersion int       `json:"format_version"`
	Tier          string    `json:"tier"`
	Name          string    `json:"name"`
	Started       time.Time `json:"started"`
	Finished      time.Time `json:"finished"`
	Host          string    `json:"host"`
	Corpintel     string    `json:"corpintel_version"`
	Versions      Versions  `json:"versions"`

	Postgres *PostgresPart `json:"postgres,omitempty"`
	Redis    *RedisPart    `json:"redis,omitempty"`
	Objects  *ObjectsPart  `json:"objects,omitempty"`
	Kit      *KitPart      `json:"kit,omitempty"`

	Files       []File           `json:"files"`
	Compression string           `json:"compression"` // "zstd" or "gzip" (the SQL dump)
	Encryption  *Encryption      `json:"encryption,omitempty"`
	DurationsMS map[string]int64 `json:"durations_ms"`

	Verification Verification `json:"verification"`

	// SHA256 is the hash of the manifest written with this field empty: a damaged or
	// edited manifest is detected on read.
	SHA256 string `json:"manifest_sha256"`
}

// Versions of what was backed up.
type Versions struct {
	Postgres  string `json:"postgres,omitempty"`
	PgDump    string `json:"pg_dump,omitempty"`
	Redis     string `json:"redis,omitempty"`
	MinIO     string `json:"minio,omitempty"`
	Migration int    `json:"migration,omitempty"` // highest applied schema migration
}

// PostgresPart is the logical dump.
type PostgresPart struct {
	Format         Format           `json:"format"`
	File           string           `json:"file"`
	DumpBytes      int64            `json:"dump_bytes"` // uncompressed
	ArchiveVersion string           `json:"archive_version,omitempty"`
	Rows           map[string]int64 `json:"rows"`
	TotalRows      int64            `json:"total_rows"`
	LargeObjects   int64            `json:"large_objects,omitempty"`
}

// RedisPart is the RDB snapshot.
type RedisPart struct {
	File       string `json:"file"`
	RDBBytes   int64  `json:"rdb_bytes"`
	RDBVersion int    `json:"rdb_version"`
	LastSave   int64  `json:"lastsave"` // Redis's LASTSAVE of this snapshot (unix seconds)
}

// ObjectsPart is the object index and what copying cost.
type ObjectsPart struct {
	Index      string `json:"index"`
	Count      int    `json:"count"`
	Bytes      int64  `json:"bytes"`
	Reused     int    `json:"reused"`
	Downloaded int64  `json:"downloaded_bytes"`
	Stored     int64  `json:"stored_bytes"` // new bytes in the shared store
	NewBlobs   int    `json:"new_blobs"`
}

// KitPart is the recovery kit.
type KitPart struct {
	Config    string `json:"config,omitempty"`
	StateDB   string `json:"state_db,omitempty"`
	Secrets   string `json:"secrets,omitempty"` // tar, always age-encrypted
	Recipient string `json:"recipient,omitempty"`
	Files     int    `json:"secret_files,omitempty"`
}

// File is one file of the backup directory as stored (after compression/encryption).
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Encryption says how the files are encrypted at rest.
type Encryption struct {
	Method    string `json:"method"` // "age"
	Recipient string `json:"recipient"`
}

// Verification is the outcome of checking a backup. A backup is good only when Verified.
type Verification struct {
	Verified bool      `json:"verified"`
	At       time.Time `json:"at"`
	Checks   []string  `json:"checks"` // what was checked and passed
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is one failed check.
type Problem struct {
	Check  string `json:"check"` // "checksum", "structure", "pg_restore", "sanity", "objects", "kit", "redis"
	Detail string `json:"detail"`
}

func (p Problem) String() string { return p.Check + ": " + p.Detail }

// Summary is the problems in one line.
func (v Verification) Summary() string {
	if v.Verified {
		return "verified"
	}
	var s []string
	for _, p := range v.Problems {
		s = append(s, p.String())
	}
	return strings.Join(s, "; ")
}

func (v *Verification) pass(check string) { v.Checks = append(v.Checks, check) }

func (v *Verification) fail(check, format string, a ...any) {
	v.Problems = append(v.Problems, Problem{Check: check, Detail: fmt.Sprintf(format, a...)})
}

// ErrBadManifest is wrapped by every refusal of ReadManifest.
var ErrBadManifest = errors.New("bad manifest")

// encodeManifest renders m with its self-checksum.
func encodeManifest(m Manifest) ([]byte, error) {
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	m.SHA256 = ""
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("backup: encode manifest: %w", err)
	}
	sum := sha256.Sum256(body)
	m.SHA256 = hex.EncodeToString(sum[:])
	body, err = json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("backup: encode manifest: %w", err)
	}
	return append(body, '\n'), nil
}

// DecodeManifest parses and checks a manifest: its self-checksum, its version, and every
// path in it (relative, no "..", inside the backup directory), so no later step can be
// steered outside the backup by an edited manifest.
func DecodeManifest(r io.Reader) (*Manifest, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("backup: read manifest: %w", err)
	}
	if len(body) > maxManifest {
		return nil, fmt.Errorf("backup: %w: larger than %d bytes", ErrBadManifest, maxManifest)
	}
	var m Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("backup: %w: %v", ErrBadManifest, err)
	}
	if m.FormatVersion > ManifestVersion {
		return nil, fmt.Errorf("backup: %w: format version %d was written by a newer corpintel (this one reads up to %d): upgrade corpintel to read it", ErrBadManifest, m.FormatVersion, ManifestVersion)
	}
	if m.FormatVersion < 1 {
		return nil, fmt.Errorf("backup: %w: no format version", ErrBadManifest)
	}
	want := m.SHA256
	again, err := encodeManifest(m)
	if err != nil {
		return nil, err
	}
	var check struct {
		SHA256 string `json:"manifest_sha256"`
	}
	_ = json.Unmarshal(again, &check)
	if want == "" || check.SHA256 != want {
		return nil, fmt.Errorf("backup: %w: its checksum does not match its content (damaged or edited)", ErrBadManifest)
	}
	if err := ValidTier(m.Tier); err != nil {
		return nil, fmt.Errorf("backup: %w: %v", ErrBadManifest, err)
	}
	if _, ok := ParseName(m.Name); !ok {
		return nil, fmt.Errorf("backup: %w: name %q is not YYYYMMDD_HHMMSS", ErrBadManifest, m.Name)
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		if err := checkRelPath(f.Path); err != nil {
			return nil, fmt.Errorf("backup: %w: %v", ErrBadManifest, err)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("backup: %w: %s listed twice", ErrBadManifest, f.Path)
		}
		seen[f.Path] = true
		if f.Size < 0 || len(f.SHA256) != 64 {
			return nil, fmt.Errorf("backup: %w: %s: bad size or checksum", ErrBadManifest, f.Path)
		}
	}
	for _, p := range m.partFiles() {
		if !seen[p] {
			return nil, fmt.Errorf("backup: %w: %s is referenced but not in the file list", ErrBadManifest, p)
		}
	}
	return &m, nil
}

// partFiles are the files the parts reference.
func (m *Manifest) partFiles() []string {
	var out []string
	if m.Postgres != nil {
		out = append(out, m.Postgres.File)
	}
	if m.Redis != nil {
		out = append(out, m.Redis.File)
	}
	if m.Objects != nil {
		out = append(out, m.Objects.Index)
	}
	if m.Kit != nil {
		for _, p := range []string{m.Kit.Config, m.Kit.StateDB, m.Kit.Secrets} {
			if p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// checkRelPath refuses anything but a clean relative path inside the backup directory.
func checkRelPath(p string) error {
	switch {
	case p == "" || strings.ContainsRune(p, 0) || strings.Contains(p, `\`):
		return fmt.Errorf("bad path %q", p)
	case path.IsAbs(p):
		return fmt.Errorf("absolute path %q", p)
	case path.Clean(p) != p || p == "." || strings.HasPrefix(p, "../") || p == "..":
		return fmt.Errorf("path %q is not a clean path inside the backup", p)
	case p == ManifestFile || p == StateFile:
		return fmt.Errorf("path %q is reserved", p)
	}
	return nil
}

// ReadManifest reads dir/manifest.json. dir must be a directory, not a symlink.
func ReadManifest(dir string) (*Manifest, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("backup: %s is not a directory (symlinks are not followed)", dir)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("backup: open %s: %w", dir, err)
	}
	defer r.Close()
	return readManifestIn(r)
}

func readManifestIn(r *os.Root) (*Manifest, error) {
	fi, err := r.Lstat(ManifestFile)
	if err != nil {
		return nil, fmt.Errorf("backup: no manifest: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("backup: %w: manifest.json is not a regular file", ErrBadManifest)
	}
	f, err := r.Open(ManifestFile)
	if err != nil {
		return nil, fmt.Errorf("backup: open manifest: %w", err)
	}
	defer f.Close()
	return DecodeManifest(f)
}

// state is the mutable side of a backup (state.json): pin and later verifications.
type state struct {
	Pinned       bool          `json:"pinned,omitempty"`
	PinnedAt     time.Time     `json:"pinned_at,omitzero"`
	Verification *Verification `json:"verification,omitempty"`
}

const maxState = 1 << 20

func readState(r *os.Root) (state, error) {
	var st state
	fi, err := r.Lstat(StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("backup: state: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return st, fmt.Errorf("backup: state.json is not a regular file")
	}
	f, err := r.Open(StateFile)
	if err != nil {
		return st, fmt.Errorf("backup: state: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxState))
	if err != nil {
		return st, fmt.Errorf("backup: state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("backup: state.json: %w", err)
	}
	return st, nil
}

// writeFileAtomic writes name inside r: temp file, fsync, rename, fsync of the directory.
func writeFileAtomic(r *os.Root, name string, body []byte) error {
	dir := path.Dir(name)
	tmp := path.Join(dir, ".tmp-"+path.Base(name)+"-"+randHex(4))
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup: write %s: %w", name, err)
	}
	_, err = io.Copy(f, bytes.NewReader(body))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.Rename(tmp, name)
	}
	if err != nil {
		_ = r.Remove(tmp)
		return fmt.Errorf("backup: write %s: %w", name, err)
	}
	return syncDir(r, dir)
}

func writeState(r *os.Root, st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("backup: encode state: %w", err)
	}
	return writeFileAtomic(r, StateFile, append(b, '\n'))
}
