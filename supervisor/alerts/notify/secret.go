package notify

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// ReadSecretFile returns a secret stored in a file, without surrounding whitespace. The
// error names the file, never its content.
func ReadSecretFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("no secret file configured")
	}
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's configured secret file
	if err != nil {
		return "", fmt.Errorf("read secret file %s: %w (create it, mode 0600, holding only the secret)", path, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty (write the secret into it)", path)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("secret file %s holds more than one line (keep only the secret)", path)
	}
	return s, nil
}
