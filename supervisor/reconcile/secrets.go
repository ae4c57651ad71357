package reconcile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/corpintel/corpintel/internal/stack"
)

// Secret files live in the root-only state directory:
//
//	<state>/secrets/                       0700 root
//	<state>/secrets/<name>.v<N>            0400 root: the value, version N
//	<state>/secrets/<service>/<name>.v<N>  0400 owned by the service image's uid: the copy
//	                                       bind-mounted read-only at /run/secrets/<name>
//
// The highest version present is current. Rotating a secret means writing <name>.v<N+1>
// (and doing whatever the service needs, e.g. ALTER ROLE): the mount source changes, so
// the config hash changes and the containers are recreated with the new file.

func generateSecret(name string) (string, error) {
	n := 24 // 48 hex characters: URL-, shell- and conninfo-safe
	if name == stack.SecretJWTKEK {
		n = 32 // 64 hex characters ≥ the API's 32-byte minimum
	}
	if name == stack.SecretMinIORootUser {
		n = 8
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate %s: %w", name, err)
	}
	v := hex.EncodeToString(b)
	if name == stack.SecretMinIORootUser {
		v = "corpintel-" + v
	}
	return v, nil
}

var versionRE = regexp.MustCompile(`^(.+)\.v([0-9]+)$`)

// EnsureSecrets creates missing secrets (first start) and each service's copy with the
// right owner and mode, and returns the paths to mount. Values are never logged.
// Ownership is only set when the process may (CanChown: root, or the corpintel user
// with CAP_CHOWN under systemd); unprivileged tests leave it.
func EnsureSecrets(stateDir string) (SecretFiles, error) {
	dir := filepath.Join(stateDir, "secrets")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets: create %s: %w", dir, err)
	}
	// MkdirAll keeps an existing directory's mode: enforce it.
	if err := os.Chmod(stateDir, 0o700); err != nil { // #nosec G302 -- owner-only directory
		return nil, fmt.Errorf("secrets: chmod %s: %w", stateDir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil { // #nosec G302 -- owner-only directory
		return nil, fmt.Errorf("secrets: chmod %s: %w", dir, err)
	}
	current := map[string]int{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("secrets: read %s: %w", dir, err)
	}
	for _, e := range entries {
		if m := versionRE.FindStringSubmatch(e.Name()); m != nil && !e.IsDir() {
			v, _ := strconv.Atoi(m[2])
			current[m[1]] = max(current[m[1]], v)
		}
	}
	for _, name := range stack.Secrets {
		if current[name] > 0 {
			continue
		}
		v, err := generateSecret(name)
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(filepath.Join(dir, name+".v1"), []byte(v+"\n"), 0o400, -1); err != nil {
			return nil, fmt.Errorf("secrets: write %s: %w", name, err)
		}
		current[name] = 1
	}

	files := SecretFiles{}
	for _, svc := range stack.Services {
		uid := stack.SecretUIDs[svc]
		sdir := filepath.Join(dir, svc)
		if err := os.MkdirAll(sdir, 0o700); err != nil {
			return nil, fmt.Errorf("secrets: create %s: %w", sdir, err)
		}
		files[svc] = map[string]string{}
		for _, name := range stack.ServiceSecrets[svc] {
			file := fmt.Sprintf("%s.v%d", name, current[name])
			src, dst := filepath.Join(dir, file), filepath.Join(sdir, file)
			if err := ensureCopy(src, dst, uid); err != nil {
				return nil, fmt.Errorf("secrets: %s for %s: %w", name, svc, err)
			}
			files[svc][name] = dst
		}
	}
	return files, nil
}

// ensureCopy makes dst a copy of src owned by uid with mode 0400.
func ensureCopy(src, dst string, uid int) error {
	want, err := os.ReadFile(src) // #nosec G304 -- our own state dir
	if err != nil {
		return err
	}
	if got, err := os.ReadFile(dst); err == nil && string(got) == string(want) { // #nosec G304
		return fixOwnerMode(dst, uid)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return writeFileAtomic(dst, want, 0o400, uid)
}

func fixOwnerMode(path string, uid int) error {
	if err := os.Chmod(path, 0o400); err != nil {
		return err
	}
	if uid >= 0 && CanChown() {
		return os.Lchown(path, uid, uid)
	}
	return nil
}

// PruneSecretCopies removes the service copies of superseded secret versions that no
// container mounts any more. A copy that an observed container still mounts — an old
// replica during a rollout, the container a failed recreate rolls back to, or one that
// Docker itself restarts — stays: a bind mount's source must exist when the container
// starts, so deleting it would make that restart fail. The values themselves
// (<state>/secrets/<name>.v<N>) always stay, for rollback and the recovery kit.
func PruneSecretCopies(stateDir string, current SecretFiles, mounted map[string]bool) error {
	dir := filepath.Join(stateDir, "secrets")
	for _, svc := range stack.Services {
		sdir := filepath.Join(dir, svc)
		entries, err := os.ReadDir(sdir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("secrets: read %s: %w", sdir, err)
		}
		keep := map[string]bool{}
		for _, p := range current[svc] {
			keep[p] = true
		}
		for _, e := range entries {
			path := filepath.Join(sdir, e.Name())
			if keep[path] || mounted[path] {
				continue
			}
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("secrets: prune %s: %w", path, err)
			}
		}
	}
	return nil
}

// writeFileAtomic writes via temp + fsync + rename; uid ≥ 0 sets the owner (when the
// process may: CanChown).
func writeFileAtomic(path string, data []byte, mode os.FileMode, uid int) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fixOwnerMode(tmp, uid); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
