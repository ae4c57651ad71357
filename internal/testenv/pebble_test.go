package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookTool(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("CORPINTEL_CACHE", cache)
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CORPINTEL_TEST_TOOL", "")
	if _, err := lookTool("CORPINTEL_TEST_TOOL", "pebble", PebbleVersion); err == nil || !strings.Contains(err.Error(), "pebble v2.10.1 not found") {
		t.Fatalf("missing tool: %v", err)
	}
	// The pinned version in the install-deps cache is found.
	p := toolPath("pebble", PebbleVersion)
	if !strings.HasPrefix(p, cache) || !strings.HasSuffix(p, filepath.Join("tools", "pebble-v2.10.1", "pebble")) {
		t.Fatalf("tool path %s", p)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := lookTool("CORPINTEL_TEST_TOOL", "pebble", PebbleVersion); err != nil || got != p {
		t.Fatalf("cached tool: %q %v", got, err)
	}
	// The environment variable wins, and must name an executable.
	t.Setenv("CORPINTEL_TEST_TOOL", filepath.Join(cache, "nope"))
	if _, err := lookTool("CORPINTEL_TEST_TOOL", "pebble", PebbleVersion); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Fatalf("bad env var: %v", err)
	}
	t.Setenv("CORPINTEL_TESTSSL", filepath.Join(cache, "nope"))
	if _, err := TestSSL(); err == nil {
		t.Fatal("bad $CORPINTEL_TESTSSL accepted")
	}
	t.Setenv("CORPINTEL_TESTSSL", "")
	if _, err := TestSSL(); err == nil {
		t.Fatal("testssl found on an empty PATH")
	}
	if fatal, msg := decide("pebble", errNoTestSSL, true); !fatal || !strings.Contains(msg, "pebble-challtestsrv") {
		t.Fatalf("hint for pebble: %v %q", fatal, msg)
	}
}

func TestStartPebbleMissing(t *testing.T) {
	t.Setenv("CORPINTEL_PEBBLE_BIN", filepath.Join(t.TempDir(), "none"))
	if _, err := startPebble(PebbleOptions{}); err == nil || !strings.Contains(err.Error(), "CORPINTEL_PEBBLE_BIN") {
		t.Fatalf("startPebble without the binary: %v", err)
	}
}

func TestPebble(t *testing.T) {
	p := StartPebble(t, PebbleOptions{})
	c := p.HTTPClient()
	resp, err := c.Get(p.DirectoryURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("directory: %s", resp.Status)
	}
	if p.Roots(t) == nil {
		t.Fatal("no roots")
	}
	p.ChallSrv(t, "/add-a", map[string]any{"host": "x.test", "addresses": []string{"127.0.0.1"}})
	p.Stop(t)
	if _, err := c.Get(p.DirectoryURL); err == nil {
		t.Fatal("directory answers after Stop")
	}
	p.Start(t)
	if _, err := c.Get(p.DirectoryURL); err != nil {
		t.Fatalf("directory after Start: %v", err)
	}
	if FreePort(t) <= 0 || !strings.HasPrefix(LoopbackAddr(1), "127.0.0.1:") {
		t.Fatal("FreePort/LoopbackAddr")
	}
}
