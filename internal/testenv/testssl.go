package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// errNoTestSSL is returned by TestSSL when testssl.sh is not installed.
var errNoTestSSL = errors.New("testssl.sh not found")

func init() {
	hints["testssl.sh"] = "testssl (Debian package testssl.sh) is looked up in $CORPINTEL_TESTSSL and PATH (apt-get install -y testssl.sh)"
}

// TestSSL finds the testssl.sh scanner (Debian installs it as `testssl`).
func TestSSL() (string, error) {
	if p := os.Getenv("CORPINTEL_TESTSSL"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("$CORPINTEL_TESTSSL=%s is not an executable file", p)
	}
	for _, name := range []string{"testssl", "testssl.sh"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errNoTestSSL
}
