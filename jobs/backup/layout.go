package backup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/corpintel/corpintel/jobs/objstore"
)

// The layout of the backup root:
//
//	<root>/.lock                       flock held by the running backup or retention
//	<root>/.status.json                last success / failure per tier (metrics)
//	<root>/objects/ab/<sha256>[.age]   object bodies, shared by all backups
//	<root>/<tier>/YYYYMMDD_HHMMSS/     one complete backup (UTC start time)
//	<root>/<tier>/.partial-…/          a backup being written; never looks complete
const (
	ManifestFile  = "manifest.json"
	StateFile     = "state.json"
	statusFile    = ".status.json"
	lockFile      = ".lock"
	partialPrefix = ".partial-"
	nameLayout    = "20060102_150405"
)

var backupName = regexp.MustCompile(`^(\d{8}_\d{6})(?:-(\d{1,3}))?$`)

// ParseName returns the start time encoded in a backup directory's name
// (YYYYMMDD_HHMMSS, or with a -N suffix when two backups started in the same second).
func ParseName(name string) (time.Time, bool) {
	m := backupName.FindStringSubmatch(name)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(nameLayout, m[1], time.UTC)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// lockRoot takes an exclusive flock on <root>/.lock so that two processes never write
// the same root (the operation lock covers one supervisor; this covers everything else).
// The kernel drops it when the process dies, so a killed backup never leaves it stuck.
func lockRoot(root string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(root, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backup: lock %s: %w", root, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("backup: %s is in use by another backup or retention run (%w); wait for it to finish", root, ErrBusy)
		}
		return nil, fmt.Errorf("backup: lock %s: %w", root, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// prepareRoot creates the root (0700) and refuses a root that is a symlink's target
// trick: every later access goes through os.Root.
func prepareRoot(root string) (*os.Root, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("backup: create root %s: %w", root, err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("backup: open root %s: %w", root, err)
	}
	return r, nil
}

// tierDir returns the tier's directory inside root, creating it; a symlink in its place
// is refused (retention and cleanup must never act outside the root).
func tierDir(root *os.Root, tier string) error {
	fi, err := root.Lstat(tier)
	if errors.Is(err, fs.ErrNotExist) {
		if err := root.Mkdir(tier, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("backup: create tier directory %s: %w", tier, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("backup: tier directory %s: %w", tier, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("backup: %s in the backup root is a %s, not a directory: move it away", tier, fi.Mode().Type())
	}
	return nil
}

// CleanPartials removes the .partial-* directories every interrupted backup left and
// the temporary object bodies. Run calls it under the root lock; the supervisor may
// call it at start-up. It returns the names removed.
func CleanPartials(root string) ([]string, error) {
	r, err := prepareRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	unlock, err := lockRoot(root)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return cleanPartials(r)
}

func cleanPartials(r *os.Root) ([]string, error) {
	tiers, err := fs.ReadDir(r.FS(), ".")
	if err != nil {
		return nil, fmt.Errorf("backup: read root: %w", err)
	}
	var removed []string
	for _, t := range tiers {
		if !t.IsDir() || ValidTier(t.Name()) != nil {
			continue
		}
		entries, err := fs.ReadDir(r.FS(), t.Name())
		if err != nil {
			return removed, fmt.Errorf("backup: read %s: %w", t.Name(), err)
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), partialPrefix) {
				continue
			}
			p := path.Join(t.Name(), e.Name())
			if err := r.RemoveAll(p); err != nil {
				return removed, fmt.Errorf("backup: remove interrupted backup %s: %w", p, err)
			}
			removed = append(removed, p)
		}
	}
	if _, err := r.Lstat(objstore.Dir); err == nil {
		if err := r.RemoveAll(path.Join(objstore.Dir, ".tmp")); err != nil {
			return removed, fmt.Errorf("backup: clean temporary objects: %w", err)
		}
	}
	return removed, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// syncDir fsyncs a directory inside root, making renames in it durable.
func syncDir(r *os.Root, name string) error {
	d, err := r.Open(name)
	if err != nil {
		return fmt.Errorf("backup: open %s: %w", name, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("backup: sync %s: %w", name, err)
	}
	return nil
}

// freeBytes is the space available to an unprivileged writer on root's filesystem.
func freeBytes(root string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil {
		return 0, fmt.Errorf("backup: free space of %s: %w", root, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
