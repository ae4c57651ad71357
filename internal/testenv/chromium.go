package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

func init() {
	hints["chromium"] = "Chromium is looked up in $CORPINTEL_CHROMIUM and PATH (chromium, chromium-browser; apt-get install -y chromium)"
}

var errNoChromium = errors.New("chromium not found")

// Chromium finds the browser of the browser tests (driven by chromedp); use it with
// Require(t, "chromium", err).
func Chromium() (string, error) {
	if p := os.Getenv("CORPINTEL_CHROMIUM"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("$CORPINTEL_CHROMIUM=%s is not an executable file", p)
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errNoChromium
}

// ChromiumFlags are the switches a test browser runs with (ENVIRONMENT.md): headless,
// no sandbox (tests run as root), nothing that talks to the network on its own. The
// caller adds a fresh --user-data-dir.
var ChromiumFlags = []string{"headless", "no-sandbox", "disable-gpu", "disable-background-networking", "disable-component-update",
	"disable-sync", "no-first-run", "disable-dev-shm-usage", "hide-scrollbars", "mute-audio"}
