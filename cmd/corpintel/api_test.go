package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corpintel/corpintel/internal/testenv"
)

// apiEnv points `corpintel api …` at this test's real PostgreSQL through the environment,
// the way the supervisor configures the containers (password from a file).
func apiEnv(t *testing.T) {
	t.Helper()
	pg := testenv.Postgres(t)
	pw := filepath.Join(t.TempDir(), "pg")
	if err := os.WriteFile(pw, []byte(pg.Password+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CORPINTEL_PG_HOST", pg.Host)
	t.Setenv("CORPINTEL_PG_PORT", fmt.Sprint(pg.Port))
	t.Setenv("CORPINTEL_PG_DB", pg.DB)
	t.Setenv("CORPINTEL_PG_USER", pg.User)
	t.Setenv("CORPINTEL_PG_PASSWORD_FILE", pw)
	t.Setenv("CORPINTEL_JWT_KEK", strings.Repeat("x", 32))
	t.Setenv("CORPINTEL_LOG_LEVEL", "warn")
}

func runWithStdin(t *testing.T, in string, args ...string) (int, string, string) {
	t.Helper()
	old := stdin
	stdin = strings.NewReader(in)
	defer func() { stdin = old }()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestAPISubcommands(t *testing.T) {
	apiEnv(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("another long password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"migrate", "", []string{"api", "migrate"}, 0, ""},
		{"seed", "", []string{"api", "seed", "--companies", "2", "--years", "1"}, 0, ""},
		{"seed bounds", "", []string{"api", "seed", "--companies", "0"}, 2, "--companies must be"},
		{"admin from stdin", "a very long password\n", []string{"api", "create-admin", "--email", "ops@example.com", "--password-stdin"}, 0, "admin ops@example.com created"},
		{"admin from file", "", []string{"api", "create-admin", "--email", "ops2@example.com", "--password-file", pwFile}, 0, "created"},
		{"admin exists", "a very long password\n", []string{"api", "create-admin", "--email", "ops@example.com", "--password-stdin"}, 1, ""},
		{"admin no email", "", []string{"api", "create-admin", "--password-stdin"}, 2, "--email is required"},
		{"admin both sources", "x", []string{"api", "create-admin", "--email", "a@b.c", "--password-stdin", "--password-file", pwFile}, 2, "exactly one"},
		{"admin short password", "short\n", []string{"api", "create-admin", "--email", "a@b.c", "--password-stdin"}, 2, "at least 12"},
		{"admin missing file", "", []string{"api", "create-admin", "--email", "a@b.c", "--password-file", "/nonexistent"}, 1, "nonexistent"},
		{"rotate", "", []string{"api", "rotate-keys"}, 0, "new signing key"},
		{"healthcheck down", "", []string{"api", "healthcheck"}, 1, "healthcheck"},
	}
	t.Setenv("CORPINTEL_API_LISTEN", "127.0.0.1:1")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runWithStdin(t, c.stdin, c.args...)
			if code != c.code || !strings.Contains(out+errOut, c.want) {
				t.Fatalf("corpintel %s = %d, want %d with %q\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), code, c.code, c.want, out, errOut)
			}
			if strings.Contains(out+errOut, "a very long password") {
				t.Fatal("the password was echoed")
			}
		})
	}
}

func TestAPIBadEnvironmentIsUsageError(t *testing.T) {
	t.Setenv("CORPINTEL_PG_PORT", "not-a-port")
	for _, args := range [][]string{{"api"}, {"api", "migrate"}, {"api", "healthcheck"}, {"api", "rotate-keys"}} {
		code, _, errOut := runWithStdin(t, "", args...)
		if code != 2 || !strings.Contains(errOut, "CORPINTEL_PG_PORT") {
			t.Errorf("corpintel %v = %d (%s), want 2 naming the variable", args, code, errOut)
		}
	}
	t.Setenv("CORPINTEL_PG_PORT", "5432")
	t.Setenv("CORPINTEL_JWT_KEK", "")
	t.Setenv("CORPINTEL_JWT_KEK_FILE", "/nonexistent/kek")
	if code, _, errOut := runWithStdin(t, "", "api"); code != 2 || !strings.Contains(errOut, "KEK") {
		t.Errorf("serving without a KEK = %d (%s)", code, errOut)
	}
}
