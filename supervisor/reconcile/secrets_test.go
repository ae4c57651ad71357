package reconcile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/corpintel/corpintel/internal/stack"
)

func TestEnsureSecrets(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	files, err := EnsureSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Join(dir, "secrets")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v %v", d, fi.Mode(), err)
		}
	}
	for svc, names := range stack.ServiceSecrets {
		for _, name := range names {
			p := files[svc][name]
			if want := filepath.Join(dir, "secrets", svc, name+".v1"); p != want {
				t.Errorf("%s/%s: path %q, want %q", svc, name, p, want)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o400 {
				t.Errorf("%s: mode %v", p, fi.Mode())
			}
			if os.Geteuid() == 0 {
				if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != stack.SecretUIDs[svc] || int(st.Gid) != stack.SecretUIDs[svc] {
					t.Errorf("%s: owner %d:%d, want %d", p, st.Uid, st.Gid, stack.SecretUIDs[svc])
				}
			}
		}
	}
	kek, _ := os.ReadFile(files[stack.ServiceAPI][stack.SecretJWTKEK])
	if v := strings.TrimSpace(string(kek)); len(v) != 64 {
		t.Errorf("jwt_kek length %d", len(v))
	}
	user, _ := os.ReadFile(files[stack.ServiceMinIO][stack.SecretMinIORootUser])
	if !strings.HasPrefix(string(user), "corpintel-") {
		t.Errorf("minio user %q", user)
	}
	pg1, _ := os.ReadFile(files[stack.ServicePostgres][stack.SecretPostgresPassword])
	pgAPI, _ := os.ReadFile(files[stack.ServiceAPI][stack.SecretPostgresPassword])
	if string(pg1) != string(pgAPI) || len(strings.TrimSpace(string(pg1))) != 48 {
		t.Errorf("postgres password copies differ or short: %d", len(pg1))
	}

	// Idempotent: same files, same values; a tampered copy is repaired.
	if err := os.Chmod(files[stack.ServiceRedis][stack.SecretRedisPassword], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(files[stack.ServiceAPI][stack.SecretRedisPassword], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files[stack.ServiceAPI][stack.SecretRedisPassword], []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := EnsureSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	pg2, _ := os.ReadFile(again[stack.ServicePostgres][stack.SecretPostgresPassword])
	if string(pg1) != string(pg2) {
		t.Error("password regenerated")
	}
	if fi, _ := os.Stat(again[stack.ServiceRedis][stack.SecretRedisPassword]); fi.Mode().Perm() != 0o400 {
		t.Errorf("mode not repaired: %v", fi.Mode())
	}
	rd, _ := os.ReadFile(again[stack.ServiceRedis][stack.SecretRedisPassword])
	rdAPI, _ := os.ReadFile(again[stack.ServiceAPI][stack.SecretRedisPassword])
	if string(rd) != string(rdAPI) {
		t.Error("tampered copy not repaired")
	}

	// Rotation: a v2 value becomes current, the v1 copies go, and the spec hash changes.
	if err := os.WriteFile(filepath.Join(dir, "secrets", stack.SecretRedisPassword+".v2"), []byte("new\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	rotated, err := EnsureSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p := rotated[stack.ServiceRedis][stack.SecretRedisPassword]; !strings.HasSuffix(p, ".v2") {
		t.Errorf("rotated path %q", p)
	}
	// The v1 copies stay while a container mounts them (a rollback or Docker's own
	// restart of an old container needs its bind-mount source), and go once none does.
	oldCopy := again[stack.ServiceRedis][stack.SecretRedisPassword]
	if err := PruneSecretCopies(dir, rotated, map[string]bool{oldCopy: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(oldCopy); err != nil {
		t.Errorf("copy still mounted was pruned: %v", err)
	}
	if _, err := os.Stat(again[stack.ServiceAPI][stack.SecretRedisPassword]); !os.IsNotExist(err) {
		t.Errorf("unmounted old copy of the API not pruned: %v", err)
	}
	if err := PruneSecretCopies(dir, rotated, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(oldCopy); !os.IsNotExist(err) {
		t.Errorf("old copy not pruned once unmounted: %v", err)
	}
	for _, p := range rotated[stack.ServiceRedis] {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("current copy pruned: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "secrets", stack.SecretRedisPassword+".v1")); err != nil {
		t.Errorf("the v1 value itself must stay: %v", err)
	}
	cfg := testConfig(t, "prod", nil)
	a, _ := BuildSpec(cfg, again, testHost)
	b, _ := BuildSpec(cfg, rotated, testHost)
	for i, svc := range a.Services {
		changed := svc.Container.Hash != b.Services[i].Container.Hash
		if changed != (svc.Name == stack.ServiceRedis || svc.Name == stack.ServiceAPI) {
			t.Errorf("%s: hash changed = %v after redis rotation", svc.Name, changed)
		}
	}
}

func TestEnsureSecretsErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureSecrets(filepath.Join(file, "state")); err == nil || !strings.Contains(err.Error(), "secrets:") {
		t.Errorf("err = %v", err)
	}
}

func TestCanChownMatchesThePrivileges(t *testing.T) {
	// Root always can; an unprivileged test run has no CAP_CHOWN in its effective set.
	if got, want := CanChown(), os.Geteuid() == 0 || hasEffectiveCap(0); got != want {
		t.Errorf("CanChown() = %v, want %v", got, want)
	}
	if os.Geteuid() == 0 && !hasEffectiveCap(0) {
		t.Error("root without CAP_CHOWN in its effective set: the test runs in an odd sandbox")
	}
}
