package reconcile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corpintel/corpintel/internal/stack"
)

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadSecret(dir, stack.SecretRedisPassword); err == nil {
		t.Fatal("read a secret from an empty state dir")
	}
	files, err := EnsureSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(files[stack.ServiceRedis][stack.SecretRedisPassword])
	got, err := ReadSecret(dir, stack.SecretRedisPassword)
	if err != nil || got != strings.TrimSpace(string(want)) {
		t.Fatalf("ReadSecret = %q, %v; want %q", got, err, want)
	}
	// A rotated secret: the highest version is current.
	if err := writeFileAtomic(filepath.Join(dir, "secrets", stack.SecretRedisPassword+".v10"), []byte("rotated\n"), 0o400, -1); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadSecret(dir, stack.SecretRedisPassword); err != nil || got != "rotated" {
		t.Fatalf("after rotation: %q %v", got, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "secrets", stack.SecretJWTKEK+".v11"), []byte(" \n"), 0o400, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSecret(dir, stack.SecretJWTKEK); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty secret: %v", err)
	}
	if _, err := ReadSecret(dir, "../etc/passwd"); err == nil {
		t.Error("an unknown secret name was read")
	}
	if err := os.MkdirAll(filepath.Join(dir, "secrets", stack.SecretMinIORootUser+".v99"), 0o700); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadSecret(dir, stack.SecretMinIORootUser); err != nil || !strings.HasPrefix(got, "corpintel-") {
		t.Errorf("a directory named like a version was taken: %q %v", got, err)
	}
}
