package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Info is one backup as listed: what `corpintel backup list` shows and retention decides on.
type Info struct {
	Tier     string        `json:"tier"`
	Name     string        `json:"name"`
	Path     string        `json:"path"`
	Time     time.Time     `json:"time"` // UTC start time from the name
	Complete bool          `json:"complete"`
	Size     int64         `json:"size"`         // bytes of its own files
	Objects  int64         `json:"object_bytes"` // bytes of the objects it references (shared)
	Duration time.Duration `json:"duration_ns"`
	Verified bool          `json:"verified"`
	Problems []Problem     `json:"problems,omitempty"`
	Pinned   bool          `json:"pinned"`
	// Error is why the backup could not be read (a damaged manifest): such a backup is
	// never deleted by retention, and it blocks object clean-up.
	Error string `json:"error,omitempty"`

	Manifest *Manifest `json:"-"`
}

func (i Info) rel() string { return path.Join(i.Tier, i.Name) }

// Good reports whether the backup counts as a good one: complete, readable, verified.
func (i Info) Good() bool { return i.Complete && i.Manifest != nil && i.Error == "" && i.Verified }

// List returns every backup under root (oldest first), including partial ones
// (Complete false). Symlinks are not followed and not listed.
func List(root string) ([]Info, error) {
	r, err := os.OpenRoot(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backup: open root %s: %w", root, err)
	}
	defer r.Close()
	return list(r, root)
}

func list(r *os.Root, rootPath string) ([]Info, error) {
	tiers, err := fs.ReadDir(r.FS(), ".")
	if err != nil {
		return nil, fmt.Errorf("backup: read root: %w", err)
	}
	var out []Info
	for _, t := range tiers {
		if !t.IsDir() || ValidTier(t.Name()) != nil || t.Name() == "objects" {
			continue
		}
		entries, err := fs.ReadDir(r.FS(), t.Name())
		if err != nil {
			return nil, fmt.Errorf("backup: read %s: %w", t.Name(), err)
		}
		for _, e := range entries {
			if !e.IsDir() { // symlinks and files are not backups
				continue
			}
			info := Info{Tier: t.Name(), Name: e.Name(), Path: filepath.Join(rootPath, t.Name(), e.Name())}
			if strings.HasPrefix(e.Name(), partialPrefix) {
				stamp, _, _ := strings.Cut(strings.TrimPrefix(e.Name(), partialPrefix), "-")
				info.Time, _ = ParseName(stamp)
				out = append(out, info)
				continue
			}
			ts, ok := ParseName(e.Name())
			if !ok {
				continue
			}
			info.Time, info.Complete = ts, true
			fillInfo(r, &info)
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].rel() < out[j].rel()
	})
	return out, nil
}

func fillInfo(r *os.Root, info *Info) {
	d, err := r.OpenRoot(info.rel())
	if err != nil {
		info.Error = err.Error()
		return
	}
	defer d.Close()
	m, err := readManifestIn(d)
	if err != nil {
		info.Error = err.Error()
		return
	}
	if m.Tier != info.Tier {
		info.Error = fmt.Sprintf("manifest says tier %q, the directory is in %q", m.Tier, info.Tier)
		return
	}
	info.Manifest = m
	for _, f := range m.Files {
		info.Size += f.Size
	}
	if m.Objects != nil {
		info.Objects = m.Objects.Bytes
	}
	info.Duration = m.Finished.Sub(m.Started)
	v := m.Verification
	st, err := readState(d)
	if err != nil {
		info.Error = err.Error()
		return
	}
	if st.Verification != nil {
		v = *st.Verification
	}
	info.Verified, info.Problems, info.Pinned = v.Verified, v.Problems, st.Pinned
}

// previousOf is the newest complete, readable backup of tier that started before t.
func previousOf(all []Info, tier string, t time.Time) *Info {
	var best *Info
	for i := range all {
		b := &all[i]
		if b.Tier != tier || !b.Complete || b.Manifest == nil || !b.Time.Before(t) {
			continue
		}
		if best == nil || b.Time.After(best.Time) {
			best = b
		}
	}
	return best
}

// newestWithObjects is the newest readable backup (any tier) with an object index: its
// entries let the next copy skip unchanged objects.
func newestWithObjects(all []Info) *Info {
	var best *Info
	for i := range all {
		b := &all[i]
		if b.Complete && b.Manifest != nil && b.Manifest.Objects != nil && (best == nil || b.Time.After(best.Time)) {
			best = b
		}
	}
	return best
}

// MarshalListJSON renders a listing as `corpintel backup list --json` prints it.
func MarshalListJSON(infos []Info) ([]byte, error) {
	type row struct {
		Info
		DurationSeconds float64 `json:"duration_seconds"`
	}
	rows := make([]row, 0, len(infos))
	for _, i := range infos {
		rows = append(rows, row{Info: i, DurationSeconds: i.Duration.Seconds()})
	}
	return json.MarshalIndent(rows, "", "  ")
}

// FormatList renders a listing as a table.
func FormatList(infos []Info) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %-17s %10s %10s %8s %-9s %s\n", "TIER", "TIME", "SIZE", "OBJECTS", "DURATION", "STATE", "NOTE")
	for _, i := range infos {
		state := "bad"
		switch {
		case !i.Complete:
			state = "partial"
		case i.Error != "":
			state = "unreadable"
		case i.Verified:
			state = "verified"
		}
		note := i.Error
		if note == "" && len(i.Problems) > 0 {
			note = i.Problems[0].String()
		}
		if i.Pinned {
			note = strings.TrimSpace("pinned " + note)
		}
		fmt.Fprintf(&b, "%-8s %-17s %10s %10s %8s %-9s %s\n", i.Tier, i.Time.Format("2006-01-02 15:04:05"),
			humanBytes(i.Size), humanBytes(i.Objects), i.Duration.Round(time.Second), state, note)
	}
	return b.String()
}

// resolve turns a reference to a backup ("tier/name", or a path inside the root) into
// its tier/name, refusing anything outside the root.
func resolve(root, ref string) (string, error) {
	rel := ref
	if filepath.IsAbs(ref) {
		var err error
		rel, err = filepath.Rel(filepath.Clean(root), filepath.Clean(ref))
		if err != nil {
			return "", fmt.Errorf("backup: %s is not inside the backup root %s", ref, root)
		}
	}
	rel = filepath.ToSlash(filepath.Clean(rel))
	tier, name, ok := strings.Cut(rel, "/")
	if !ok || strings.Contains(name, "/") || ValidTier(tier) != nil {
		return "", fmt.Errorf("backup: %q does not name a backup (TIER/YYYYMMDD_HHMMSS inside %s)", ref, root)
	}
	if _, ok := ParseName(name); !ok {
		return "", fmt.Errorf("backup: %q does not name a backup (TIER/YYYYMMDD_HHMMSS inside %s)", ref, root)
	}
	return rel, nil
}

// Pin marks a backup to be kept forever (retention never deletes it); Unpin undoes it.
func Pin(root, ref string, pinned bool, now time.Time) error {
	rel, err := resolve(root, ref)
	if err != nil {
		return err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("backup: open root %s: %w", root, err)
	}
	defer r.Close()
	unlock, err := lockRoot(root)
	if err != nil {
		return err
	}
	defer unlock()
	d, err := r.OpenRoot(rel)
	if err != nil {
		return fmt.Errorf("backup: %s: %w", rel, err)
	}
	defer d.Close()
	if _, err := readManifestIn(d); err != nil {
		return fmt.Errorf("backup: %s: %w", rel, err)
	}
	st, err := readState(d)
	if err != nil {
		return err
	}
	st.Pinned = pinned
	st.PinnedAt = time.Time{}
	if pinned {
		st.PinnedAt = now.UTC()
	}
	return writeState(d, st)
}
