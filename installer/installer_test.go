package installer

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corpintel/corpintel/bundles"
	"github.com/corpintel/corpintel/bundles/bundletest"
	"github.com/corpintel/corpintel/internal/testenv"
)

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Require(t, tool, errors.New(tool+" is not on PATH (make deps)"))
		}
	}
}

func TestShellcheck(t *testing.T) {
	requireTools(t, "shellcheck")
	if out, err := exec.Command("shellcheck", "-s", "sh", "install.sh").CombinedOutput(); err != nil {
		t.Fatalf("shellcheck -s sh install.sh: %v\n%s", err, out)
	}
}

// stamped writes install.sh with key pinned, as `bundle build` publishes it.
func stamped(t *testing.T, key ed25519.PrivateKey) string {
	t.Helper()
	s, err := bundles.StampInstaller(Script, bundletest.Public(key))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "install.sh")
	if err := os.WriteFile(path, s, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// sh runs a shell command line with env added; it returns the exit code and output.
func sh(t *testing.T, env []string, script string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, args...)...) // #nosec G204 -- the script under test
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "INSTALL_CORPINTEL_TMPDIR="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatalf("sh: %v", err)
	return 0, ""
}

func writeBundle(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), bundles.FileName(bundletest.Version, "amd64"))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestInstallShVerifiesAGoodBundle(t *testing.T) {
	requireTools(t, "openssl", "sha256sum", "tar")
	key := bundletest.Key(t)
	inst := stamped(t, key)
	good := writeBundle(t, bundletest.New(t, key).Bytes(t))
	code, out := sh(t, nil, `"$1" --bundle "$2" --verify-only`, inst, good)
	if code != 0 || !strings.Contains(out, "bundle verified: corpintel 1.2.3") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// The same through the environment knob, and --bundle=FILE.
	if code, out := sh(t, []string{"INSTALL_CORPINTEL_BUNDLE=" + good}, `"$1" --verify-only`, inst); code != 0 {
		t.Errorf("INSTALL_CORPINTEL_BUNDLE: exit %d\n%s", code, out)
	}
	if code, out := sh(t, nil, `"$1" --bundle="$2" --verify-only`, inst, good); code != 0 {
		t.Errorf("--bundle=: exit %d\n%s", code, out)
	}
}

func TestInstallShRefusesTheHostileCases(t *testing.T) {
	requireTools(t, "openssl", "sha256sum", "tar")
	key := bundletest.Key(t)
	inst := stamped(t, key)
	for _, c := range bundletest.Hostile(t, key) {
		t.Run(c.Name, func(t *testing.T) {
			b := writeBundle(t, c.Build(t, key))
			code, out := sh(t, nil, `"$1" --bundle "$2" --verify-only`, inst, b)
			if code == 0 || !strings.Contains(out, "bundle refused") || !strings.Contains(out, c.Want) {
				t.Fatalf("exit %d, want a refusal naming %q:\n%s", code, c.Want, out)
			}
		})
	}
}

func TestInstallShWithoutAPinnedKeyVerifiesNothing(t *testing.T) {
	requireTools(t, "openssl", "sha256sum", "tar")
	key := bundletest.Key(t)
	good := writeBundle(t, bundletest.New(t, key).Bytes(t))
	code, out := sh(t, nil, `sh install.sh --bundle "$1" --verify-only`, good)
	if code == 0 || !strings.Contains(out, "pins no release key") {
		t.Fatalf("the source tree's template accepted a bundle: exit %d\n%s", code, out)
	}
}

func TestInstallShKnobsAndArguments(t *testing.T) {
	requireTools(t, "openssl", "sha256sum", "tar")
	key := bundletest.Key(t)
	inst := stamped(t, key)
	good := writeBundle(t, bundletest.New(t, key).Bytes(t))
	for _, tt := range []struct {
		env  []string
		args string
		want string
	}{
		{[]string{"INSTALL_CORPINTEL_PROFILE=production"}, `--bundle "$2"`, "must be dev, staging or prod"},
		{[]string{"INSTALL_CORPINTEL_PROJECT=Bad_Name"}, `--bundle "$2"`, "INSTALL_CORPINTEL_PROJECT"},
		{[]string{"INSTALL_CORPINTEL_DATA_DIR=relative/dir"}, `--bundle "$2"`, "absolute paths"},
		{[]string{"INSTALL_CORPINTEL_BACKUP_DIR=/srv/back ups"}, `--bundle "$2"`, "does not quote"},
		{[]string{"INSTALL_CORPINTEL_WAIT=soon"}, `--bundle "$2"`, "number of seconds"},
		{[]string{"INSTALL_CORPINTEL_DOMAIN=evil;rm"}, `--bundle "$2"`, "DNS name"},
		{[]string{"INSTALL_CORPINTEL_ADMIN_EMAIL=nobody"}, `--bundle "$2"`, "e-mail address"},
		{nil, `--frobnicate`, "unknown argument"},
		{nil, `--bundle`, "needs a file"},
		{nil, ``, "INSTALL_CORPINTEL_URL"},
		{nil, `--bundle /nonexistent.tar`, "no bundle at"},
	} {
		code, out := sh(t, tt.env, `"$1" --verify-only `+tt.args, inst, good)
		if code == 0 || !strings.Contains(out, tt.want) {
			t.Errorf("%v %s: exit %d, want %q:\n%s", tt.env, tt.args, code, tt.want, out)
		}
	}
	if code, out := sh(t, nil, `"$1" --help`, inst); code != 0 || !strings.Contains(out, "INSTALL_CORPINTEL_SKIP_START") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	// Past verification the installer needs root; the check says so rather than fail
	// half-way (the tests run as root, so only when they do not).
	if os.Geteuid() != 0 {
		if code, out := sh(t, nil, `"$1" --bundle "$2"`, inst, good); code == 0 || !strings.Contains(out, "as root") {
			t.Errorf("as a user: exit %d\n%s", code, out)
		}
	}
}

// The online way: curl … | sh - against a release server on 127.0.0.1.
func TestInstallShDownloadsAndVerifies(t *testing.T) {
	requireTools(t, "openssl", "sha256sum", "tar", "curl")
	key := bundletest.Key(t)
	inst, err := os.ReadFile(stamped(t, key))
	if err != nil {
		t.Fatal(err)
	}
	served := bundletest.New(t, key).Bytes(t)
	var requests []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests = append(requests, r.URL.Path)
		switch r.URL.Path {
		case "/install.sh":
			_, _ = w.Write(inst)
		case "/releases/latest":
			_, _ = w.Write([]byte(bundletest.Version + "\n"))
		case "/releases/" + bundletest.Version + "/" + bundles.FileName(bundletest.Version, "amd64"):
			_, _ = w.Write(served)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	pipe := `curl -sfL "$1/install.sh" | INSTALL_CORPINTEL_URL="$1/releases" sh -s -- --verify-only`
	code, out := sh(t, nil, pipe, srv.URL)
	if code != 0 || !strings.Contains(out, "downloading "+srv.URL+"/releases/1.2.3/") || !strings.Contains(out, "bundle verified") {
		t.Fatalf("curl | sh: exit %d\n%s\nrequests %v", code, out, requests)
	}
	// A pinned version that is not there, and a tampered download.
	if code, out := sh(t, []string{"INSTALL_CORPINTEL_VERSION=9.9.9"}, pipe, srv.URL); code == 0 || !strings.Contains(out, "cannot download") {
		t.Errorf("missing version: exit %d\n%s", code, out)
	}
	served = bundletest.Hostile(t, key)[0].Build(t, key)
	if code, out := sh(t, nil, pipe, srv.URL); code == 0 || !strings.Contains(out, "bundle refused") {
		t.Errorf("tampered download: exit %d\n%s", code, out)
	}
}

func TestTemplates(t *testing.T) {
	for _, p := range []string{"@PROFILE@", "@PROJECT@", "@STATE_DIR@", "@TLS_NAMES@", "@ACME_EMAIL@"} {
		if !bytes.Contains(ConfigTemplate, []byte(p)) {
			t.Errorf("config template lacks %s", p)
		}
	}
	if !bytes.Contains(Script, []byte(bundles.KeyPlaceholder)) {
		t.Error("install.sh has no key placeholder")
	}
}
