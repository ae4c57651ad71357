// Package version reports the build's version and source revision, set with
// -ldflags "-X github.com/corpintel/corpintel/internal/version.Version=… -X …Revision=…".
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version and Revision are stamped at link time; the defaults describe a dev build.
var (
	Version  = "dev"
	Revision = ""
)

// Rev returns the source revision: the stamped one, or the VCS info Go embeds.
func Rev() string {
	if Revision != "" {
		return Revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// String is the one-line form `corpintel version` prints.
func String() string {
	return fmt.Sprintf("corpintel %s (rev %s, %s, %s/%s)", Version, Rev(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
