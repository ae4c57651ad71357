package systemd

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/corpintel/corpintel/internal/testenv"
)

func analyze(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Require(t, "systemd-analyze", errors.New("systemd-analyze is not on PATH (apt-get install systemd; make deps)"))
	}
	return path
}

// verifyRoot builds a minimal root directory for `systemd-analyze verify --root`: the
// host's unit library, the unit under test, and executables at the paths it names, so
// that the check runs without installing anything on the host.
func verifyRoot(t *testing.T, unit string) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc/systemd/system"), 0o755))
	must(os.WriteFile(filepath.Join(root, "etc/systemd/system", UnitName), []byte(unit), 0o644))
	lib := filepath.Join(root, "usr/lib/systemd")
	must(os.MkdirAll(lib, 0o755))
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", lib).CombinedOutput(); err != nil {
		t.Fatalf("copy the host's unit library: %v\n%s", err, out)
	}
	for _, exe := range []string{"/usr/local/bin/corpintel", "/bin/kill"} {
		must(os.MkdirAll(filepath.Join(root, filepath.Dir(exe)), 0o755))
		must(os.WriteFile(filepath.Join(root, exe), []byte("#!/bin/sh\n"), 0o755))
	}
	return root
}

// verify runs systemd-analyze verify and returns everything it said (a clean unit
// says nothing: unknown keys are only warnings, with exit status 0).
func verify(t *testing.T, unit string) (string, error) {
	t.Helper()
	root := verifyRoot(t, unit)
	cmd := exec.Command(analyze(t), "verify", "--root="+root, UnitName) // #nosec G204 -- fixed arguments
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

func TestUnitVerifiesClean(t *testing.T) {
	out, err := verify(t, Unit)
	if err != nil || out != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestVerifyCatchesABrokenUnit(t *testing.T) {
	// The check itself must be able to fail: a misspelt key and a relative ExecStart.
	for name, broken := range map[string]string{
		"unknown key":       strings.Replace(Unit, "WatchdogSec=", "WatchdogSecs=", 1),
		"relative command":  strings.Replace(Unit, "ExecStart=/usr/local/bin/corpintel", "ExecStart=corpintel-missing", 1),
		"no such directive": strings.Replace(Unit, "[Service]", "[Service]\nProtectEverything=yes", 1),
	} {
		t.Run(name, func(t *testing.T) {
			out, err := verify(t, broken)
			if err == nil && out == "" {
				t.Fatal("systemd-analyze verify accepted a broken unit")
			}
		})
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+\.[0-9]+)`)

// exposure runs systemd-analyze security --offline on a unit file.
func exposure(t *testing.T, unit string) (float64, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), UnitName)
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze(t), "security", "--offline=yes", "--no-pager", path).CombinedOutput() // #nosec G204 -- fixed arguments
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v, string(out)
}

func TestUnitExposureAtMost2(t *testing.T) {
	v, out := exposure(t, Unit)
	t.Logf("systemd-analyze security --offline: exposure %.1f (limit %.1f)", v, MaxExposure)
	if v > MaxExposure {
		t.Fatalf("exposure %.1f is above %.1f:\n%s", v, MaxExposure, out)
	}
}

func TestExposureCheckNoticesLooseSandbox(t *testing.T) {
	// Without the sandbox the score must be well above the limit: proves the parse.
	var loose []string
	for _, l := range strings.Split(Unit, "\n") {
		if strings.HasPrefix(l, "Protect") || strings.HasPrefix(l, "Private") || strings.HasPrefix(l, "Restrict") ||
			strings.HasPrefix(l, "SystemCall") || strings.HasPrefix(l, "Capability") || strings.HasPrefix(l, "User=") {
			continue
		}
		loose = append(loose, l)
	}
	if v, _ := exposure(t, strings.Join(loose, "\n")); v <= MaxExposure+3 {
		t.Errorf("a unit without its sandbox scores %.1f", v)
	}
}

func TestUnitPromises(t *testing.T) {
	// What the rest of the appliance relies on (supervisor/systemd.go, the installer).
	for _, want := range []string{
		"Type=notify", "NotifyAccess=main", "WatchdogSec=30s", "Restart=on-failure", "KillMode=mixed",
		"User=corpintel", "SupplementaryGroups=docker", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"NoNewPrivileges=yes", "MemoryDenyWriteExecute=yes", "StateDirectory=corpintel", "RuntimeDirectory=corpintel",
		"ExecStart=/usr/local/bin/corpintel supervisor --config /etc/corpintel/corpintel.toml",
	} {
		if !strings.Contains(Unit, "\n"+want+"\n") {
			t.Errorf("unit lacks %q", want)
		}
	}
}
