package localapi

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// Group is the group whose members may use the local API besides root.
const Group = "corpintel"

// Listen creates the unix socket for the local API: socket 0660 owned by group
// corpintel when that group exists (else 0600, root only). The socket's directory is
// created 0750 (group corpintel) when missing; a directory that already existed keeps
// its owner, group and mode — it may be /run or another directory shared with other
// programs. A stale socket left by a killed supervisor is replaced; a live one means
// another supervisor runs.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	created := false
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("local API: create %s: %w", dir, err)
		}
		created = true
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return nil, fmt.Errorf("local API: another supervisor is already listening on %s — stop it first (`corpintel status` shows it)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("local API: remove stale socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("local API: listen on %s: %w", path, err)
	}
	gid := -1
	if g, err := user.LookupGroup(Group); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
		_ = os.Chown(path, -1, gid)
		if created {
			_ = os.Chown(dir, -1, gid)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("local API: chmod %s: %w", path, err)
	}
	return ln, nil
}
