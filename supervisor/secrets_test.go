package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
	for svc, names := range serviceSecrets {
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
				if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != SecretUIDs[svc] || int(st.Gid) != SecretUIDs[svc] {
					t.Errorf("%s: owner %d:%d, want %d", p, st.Uid, st.Gid, SecretUIDs[svc])
				}
			}
		}
	}
	kek, _ := os.ReadFile(files[ServiceAPI][SecretJWTKEK])
	if v := strings.TrimSpace(string(kek)); len(v) != 64 {
		t.Errorf("jwt_kek length %d", len(v))
	}
	user, _ := os.ReadFile(files[ServiceMinIO][SecretMinIORootUser])
	if !strings.HasPrefix(string(user), "corpintel-") {
		t.Errorf("minio user %q", user)
	}
	pg1, _ := os.ReadFile(files[ServicePostgres][SecretPostgresPassword])
	pgAPI, _ := os.ReadFile(files[ServiceAPI][SecretPostgresPassword])
	if string(pg1) != string(pgAPI) || len(strings.TrimSpace(string(pg1))) != 48 {
		t.Errorf("postgres password copies differ or short: %d", len(pg1))
	}

	// Idempotent: same files, same values; a tampered copy is repaired.
	if err := os.Chmod(files[ServiceRedis][SecretRedisPassword], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(files[ServiceAPI][SecretRedisPassword], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files[ServiceAPI][SecretRedisPassword], []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := EnsureSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	pg2, _ := os.ReadFile(again[ServicePostgres][SecretPostgresPassword])
	if string(pg1) != string(pg2) {
		t.Error("password regenerated")
	}
	if fi, _ := os.Stat(again[ServiceRedis][SecretRedisPassword]); fi.Mode().Perm() != 0o400 {
		t.Errorf("mode not repaired: %v", fi.Mode())
	}
	rd, _ := os.ReadFile(again[ServiceRedis][SecretRedisPassword])
	rdAPI, _ := os.ReadFile(again[ServiceAPI][SecretRedisPassword])
	if string(rd) != string(rdAPI) {
		t.Error("tampered copy not repaired")
	}

	// Rotation: a v2 value becomes current, the v1 copies go, and the spec hash changes.
	if err := os.WriteFile(filepath.Join(dir, "secrets", SecretRedisPassword+".v2"), []byte("new\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	rotated, err := EnsureSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p := rotated[ServiceRedis][SecretRedisPassword]; !strings.HasSuffix(p, ".v2") {
		t.Errorf("rotated path %q", p)
	}
	if _, err := os.Stat(again[ServiceRedis][SecretRedisPassword]); !os.IsNotExist(err) {
		t.Errorf("old copy not pruned: %v", err)
	}
	cfg := testConfig(t, "prod", nil)
	a, _ := BuildSpec(cfg, again, testHost)
	b, _ := BuildSpec(cfg, rotated, testHost)
	for i, svc := range a.Services {
		changed := svc.Container.Hash != b.Services[i].Container.Hash
		if changed != (svc.Name == ServiceRedis || svc.Name == ServiceAPI) {
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
