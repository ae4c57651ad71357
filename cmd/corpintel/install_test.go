package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corpintel/corpintel/bundles"
	"github.com/corpintel/corpintel/bundles/bundletest"
	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/testenv"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestBundleVerbs(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "bundle", "keygen", "--out", filepath.Join(dir, "keys"))
	if code != 0 || !strings.Contains(out, "signing.key") {
		t.Fatalf("keygen: %d %s %s", code, out, errs)
	}
	priv, err := bundles.ReadPrivateKey(filepath.Join(dir, "keys", "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "keys", "signing.pub")
	good := filepath.Join(dir, "good.tar")
	if err := os.WriteFile(good, bundletest.New(t, priv).Bytes(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "bundle", "verify", "--key", pub, good); code != 0 || !strings.Contains(out, "ok — corpintel 1.2.3") {
		t.Errorf("verify: %d %s %s", code, out, errs)
	}
	code, out, _ = runCLI(t, "bundle", "verify", "--json", "--key", pub, good)
	var js struct {
		Manifest bundles.Manifest `json:"manifest"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &js) != nil || js.Manifest.Version != "1.2.3" {
		t.Errorf("verify --json: %d %s", code, out)
	}
	bad := filepath.Join(dir, "bad.tar")
	if err := os.WriteFile(bad, bundletest.Hostile(t, priv)[0].Build(t, priv), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, "bundle", "verify", "--key", pub, bad); code != 1 || !strings.Contains(errs, "bundle refused: images.tar.gz") {
		t.Errorf("tampered: %d %s", code, errs)
	}
	for _, args := range [][]string{
		{"bundle"}, {"bundle", "keygen"}, {"bundle", "build"}, {"bundle", "build", "--key", pub},
		{"bundle", "verify", "--key", filepath.Join(dir, "nope.pub"), good}, {"bundle", "load", "--key", filepath.Join(dir, "nope.pub"), good},
	} {
		if code, _, errs := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errs)
		}
	}
	if code, _, _ := runCLI(t, "bundle", "keygen", "--out", filepath.Join(dir, "keys")); code != 1 {
		t.Error("keygen overwrote a key")
	}
}

func TestBundleLoadAndBuildNeedTheEngine(t *testing.T) {
	testenv.Docker(t)
	dir := t.TempDir()
	priv := bundletest.Key(t)
	pubFile := filepath.Join(dir, "release.pub")
	if err := os.WriteFile(pubFile, bundles.PublicKeyPEM(bundletest.Public(priv)), 0o644); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(dir, "b.tar")
	if err := os.WriteFile(b, bundletest.New(t, priv).Bytes(t), 0o600); err != nil {
		t.Fatal(err)
	}
	// The test bundle's images.tar.gz is no image archive: the engine refuses it, and
	// the load says so.
	if code, _, errs := runCLI(t, "bundle", "load", "--key", pubFile, "--tmpdir", dir, b); code != 1 || !strings.Contains(errs, "load images") {
		t.Errorf("load: %d %s", code, errs)
	}
	keyFile := filepath.Join(dir, "signing.key")
	if err := os.WriteFile(keyFile, bundles.PrivateKeyPEM(priv), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, "bundle", "build", "--key", keyFile, "--out", dir, "--images", "corpintel-test/never-built:0"); code != 1 || !strings.Contains(errs, "never-built") {
		t.Errorf("build with a missing image: %d %s", code, errs)
	}
}

func TestConfigKeys(t *testing.T) {
	code, out, _ := runCLI(t, "config", "keys")
	if code != 0 || !strings.Contains(out, "tls.names\n") {
		t.Errorf("config keys: %d %s", code, out)
	}
	if _, out, _ := runCLI(t, "config", "keys", "--env"); !strings.Contains(out, "api.replicas\tCORPINTEL_API_REPLICAS") {
		t.Errorf("config keys --env: %s", out)
	}
}

func testCheckConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "corpintel.toml")
	cfg := "profile = \"dev\"\nproject = \"checktest\"\nstate_dir = \"" + filepath.Join(dir, "state") + "\"\nsocket = \"" + filepath.Join(dir, "s.sock") +
		"\"\n[edge]\nhttps = \"127.0.0.1:0\"\nhttp = \"\"\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckVerb(t *testing.T) {
	cfg := testCheckConfig(t)
	// Without a supervisor the post-deploy check fails and says how to start it.
	code, out, errs := runCLI(t, "check", "--config", cfg)
	if code != 2 || !strings.Contains(out, "systemctl start corpintel") || !strings.Contains(errs, "failure") {
		t.Errorf("check without a supervisor: %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = runCLI(t, "check", "--config", cfg, "--json")
	var js struct {
		ExitCode int `json:"exit_code"`
	}
	if code != 2 || json.Unmarshal([]byte(out), &js) != nil || js.ExitCode != 2 {
		t.Errorf("check --json: %d %s", code, out)
	}
	if code, _, errs := runCLI(t, "check", "--config", cfg, "--wait-healthy", "1ms"); code != 2 || !strings.Contains(errs, "not healthy") {
		t.Errorf("--wait-healthy: %d %s", code, errs)
	}
	// The preflight runs on this machine (its verdict depends on the machine).
	code, out, _ = runCLI(t, "check", "--pre", "--config", cfg, "--backup-dir", filepath.Join(t.TempDir(), "b"), "--json")
	if code > 2 || !strings.Contains(out, `"kind": "pre"`) || !strings.Contains(out, `"check": "memory"`) {
		t.Errorf("check --pre: %d %s", code, out)
	}
	if code, _, _ := runCLI(t, "check", "--config", cfg, "--setup-account"); code != 2 {
		t.Errorf("--setup-account without credentials: %d", code)
	}
	if code, _, _ := runCLI(t, "check", "--config", cfg, "--setup-account", "--admin-email", "a@b.c", "--admin-password-file", "/nonexistent"); code != 1 {
		t.Errorf("--setup-account with a missing password file: %d", code)
	}
	if code, _, _ := runCLI(t, "check", "--config", filepath.Join(t.TempDir(), "none.toml")); code != 2 {
		t.Errorf("missing config: %d", code)
	}
	if code, _, _ := runCLI(t, "check", "--config", cfg, "--socket", filepath.Join(t.TempDir(), "x.sock")); code != 2 {
		t.Errorf("--socket: %d", code)
	}
}

func TestConfigValue(t *testing.T) {
	cfg := config.Default("prod")
	if got := configValue(cfg, "tls", "mode"); got != "acme" {
		t.Errorf("tls.mode = %q", got)
	}
	if got := configValue(cfg, "backup", "root"); got != "" && !strings.HasPrefix(got, "/") {
		t.Errorf("backup.root = %q", got)
	}
	if got := configValue(cfg, "profile", "deeper"); got != "" {
		t.Errorf("a path through a scalar: %q", got)
	}
}
