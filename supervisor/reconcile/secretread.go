package reconcile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/corpintel/corpintel/internal/stack"
)

// ReadSecret returns the current value (highest version) of one of the stack's secrets
// from the state directory, for the supervisor's own clients of the services (the
// metrics collectors). It never creates one: a missing secret means the stack was never
// started from this state directory.
func ReadSecret(stateDir, name string) (string, error) {
	if !isSecret(name) {
		return "", fmt.Errorf("secrets: unknown secret %q", name)
	}
	dir := filepath.Join(stateDir, "secrets")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("secrets: read %s: %w", dir, err)
	}
	best := 0
	for _, e := range entries {
		if m := versionRE.FindStringSubmatch(e.Name()); m != nil && m[1] == name && !e.IsDir() {
			v, _ := strconv.Atoi(m[2])
			best = max(best, v)
		}
	}
	if best == 0 {
		return "", fmt.Errorf("secrets: %s has no version in %s (the supervisor creates it on the first start)", name, dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s.v%d", name, best))) // #nosec G304 -- our own state dir
	if err != nil {
		return "", fmt.Errorf("secrets: read %s: %w", name, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", errors.New("secrets: " + name + " is empty")
	}
	return v, nil
}

func isSecret(name string) bool {
	for _, s := range stack.Secrets {
		if s == name {
			return true
		}
	}
	return false
}
