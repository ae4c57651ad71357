package reconcile

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// CanChown reports whether this process may give files to other users: as root, or —
// how systemd/corpintel.service runs the supervisor — as the corpintel user with
// CAP_CHOWN in its effective set. Unprivileged test runs cannot, and leave ownership.
func CanChown() bool {
	canChownOnce.Do(func() { canChown = os.Geteuid() == 0 || hasEffectiveCap(unix.CAP_CHOWN) })
	return canChown
}

var (
	canChownOnce sync.Once
	canChown     bool
)

// hasEffectiveCap asks the kernel for this thread's effective capability set.
func hasEffectiveCap(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(uint(c)%32)) != 0
}
