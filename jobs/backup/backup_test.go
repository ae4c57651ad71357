package backup_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/corpintel/corpintel/jobs/backup"
	"github.com/corpintel/corpintel/jobs/kit"
	"github.com/corpintel/corpintel/jobs/pgarchive"
	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"
	"github.com/minio/minio-go/v7"
)

func TestBackupOfEverythingIsVerifiedAndRestorable(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.seed()
	var reports []backup.Progress
	e.deps.Progress = func(p backup.Progress) { reports = append(reports, p) }
	res, err := e.runner().Run(context.Background(), "daily")
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	if !res.Verified || !m.Verification.Verified {
		t.Fatalf("not verified: %s", m.Verification.Summary())
	}
	if filepath.Base(res.Dir) != "20261206_020001" || filepath.Base(filepath.Dir(res.Dir)) != "daily" {
		t.Errorf("dir %s: want daily/<UTC start>", res.Dir)
	}
	// The manifest on disk is the one returned, and it reads back.
	onDisk, err := backup.ReadManifest(res.Dir)
	must(t, err)
	if onDisk.SHA256 == "" || onDisk.Name != m.Name || !onDisk.Verification.Verified {
		t.Errorf("manifest on disk: %+v", onDisk)
	}
	if got := m.Postgres.Rows; got["public.companies"] != 500 || got["public.metrics"] != 5000 || got["public.schema_migrations"] != 2 {
		t.Errorf("rows %v", got)
	}
	if m.Versions.Migration != 51 || !strings.HasPrefix(m.Versions.Postgres, "15") || m.Versions.Redis == "" || m.Versions.MinIO != "test-minio" {
		t.Errorf("versions %+v", m.Versions)
	}
	if m.Host != "test-host" || m.Corpintel != "test" || m.Tier != "daily" || m.Compression != "zstd" {
		t.Errorf("manifest header %+v", m)
	}
	if m.Redis == nil || m.Redis.RDBVersion < 9 || m.Redis.RDBBytes == 0 {
		t.Errorf("redis %+v", m.Redis)
	}
	if m.Objects == nil || m.Objects.Count != 5 || m.Objects.Downloaded != m.Objects.Bytes || m.Objects.Stored != m.Objects.Bytes {
		t.Errorf("objects %+v", m.Objects)
	}
	if m.Kit == nil || m.Kit.Files != 2 || !strings.HasSuffix(m.Kit.Secrets, ".age") || m.Kit.StateDB == "" || m.Kit.Config == "" {
		t.Errorf("kit %+v", m.Kit)
	}
	for _, step := range []string{"postgres", "redis", "objects", "kit", "verify"} {
		if _, ok := m.DurationsMS[step]; !ok {
			t.Errorf("no duration for %s: %v", step, m.DurationsMS)
		}
	}
	wantChecks := []string{"structure postgres.dump.zst", "pg_restore --list", "redis redis.rdb.zst", "objects:", "kit kit/state.db.zst", "kit kit/secrets.tar.age"}
	for _, w := range wantChecks {
		found := false
		for _, c := range m.Verification.Checks {
			found = found || strings.HasPrefix(c, w)
		}
		if !found {
			t.Errorf("check %q not run: %v", w, m.Verification.Checks)
		}
	}
	if len(reports) == 0 || reports[len(reports)-1].Bytes == 0 {
		t.Errorf("progress reports %+v", reports)
	}
	if got := strings.Join(e.lock.steps, ","); got != "cleanup,preflight,postgres,redis,objects,kit,verify,commit" {
		t.Errorf("journal steps %s", got)
	}
	if len(e.lock.ends) != 1 || e.lock.ends[0] != nil || e.lock.kinds[0] != "backup daily postgres,redis,minio" {
		t.Errorf("lock %+v", e.lock)
	}
	// Secrets never appear in plaintext in the backup.
	filepath.Walk(res.Dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte(e.pg.Password)) {
				t.Errorf("%s contains the database password", p)
			}
		}
		return nil
	})

	// The dump restores with a parallel pg_restore: decompress it, fix the offsets,
	// restore into an empty database and compare counts.
	restoreInto(t, e, filepath.Join(res.Dir, m.Postgres.File), map[string]int64{"companies": 500, "metrics": 5000})

	// A second backup with no object changes copies 0 object bytes.
	res2, err := e.runner().Run(context.Background(), "daily")
	must(t, err)
	o := res2.Manifest.Objects
	t.Logf("second backup: %d objects, %d bytes, downloaded %d, stored %d", o.Count, o.Bytes, o.Downloaded, o.Stored)
	if o.Downloaded != 0 || o.Stored != 0 || o.Reused != 5 || o.Count != 5 {
		t.Errorf("second backup objects %+v", o)
	}
	if !strings.Contains(strings.Join(res2.Manifest.Verification.Checks, ","), "sanity vs daily/20261206_020001") {
		t.Errorf("no sanity check against the previous backup: %v", res2.Manifest.Verification.Checks)
	}
	st, err := backup.Status(e.cfg.Root)
	must(t, err)
	if st["daily"].LastSuccess.IsZero() || !st["daily"].LastFailure.IsZero() || st["daily"].LastBackup != "daily/"+res2.Manifest.Name {
		t.Errorf("status %+v", st)
	}
	list, err := backup.List(e.cfg.Root)
	must(t, err)
	if len(list) != 2 || !list[0].Good() || !list[1].Good() || list[1].Objects != o.Bytes {
		t.Errorf("list %+v", list)
	}
	js, err := backup.MarshalListJSON(list)
	must(t, err)
	if !bytes.Contains(js, []byte(`"verified": true`)) || !bytes.Contains(js, []byte(`"duration_seconds"`)) {
		t.Errorf("json %s", js)
	}
	if table := backup.FormatList(list); !strings.Contains(table, "verified") || !strings.Contains(table, "daily") {
		t.Errorf("table %s", table)
	}
}

// restoreInto decompresses a stored dump, writes its data offsets and restores it with
// pg_restore -j 2 into a fresh database.
func restoreInto(t *testing.T, e *env, stored string, want map[string]int64) {
	t.Helper()
	f, err := os.Open(stored)
	must(t, err)
	defer f.Close()
	zr, err := zstd.NewReader(f)
	must(t, err)
	defer zr.Close()
	plain := filepath.Join(t.TempDir(), "db.dump")
	out, err := os.Create(plain)
	must(t, err)
	s, err := pgarchive.Scan(io.TeeReader(zr, out))
	must(t, err)
	must(t, pgarchive.FixOffsets(out, s))
	must(t, out.Close())
	target := testenv.Postgres(t)
	cmd := exec.Command(filepath.Join(pgBin(t), "pg_restore"), "-j", "2", "--no-owner", "-d", target.DB, plain)
	cmd.Env = append(os.Environ(), "PGHOST="+target.Host, "PGPORT="+strconv.Itoa(target.Port), "PGUSER="+target.AdminUser, "PGPASSWORD="+target.AdminPassword)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v: %s", err, out)
	}
	conn, err := pgx.Connect(context.Background(), target.AdminDSN)
	must(t, err)
	defer conn.Close(context.Background())
	for table, n := range want {
		var got int64
		must(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&got))
		if got != n {
			t.Errorf("restored %s: %d rows, want %d", table, got, n)
		}
	}
}

func pgBin(t *testing.T) string {
	t.Helper()
	for _, d := range []string{"/usr/lib/postgresql/15/bin"} {
		if _, err := os.Stat(filepath.Join(d, "pg_restore")); err == nil {
			return d
		}
	}
	p, err := exec.LookPath("pg_restore")
	testenv.Require(t, "postgres", err)
	return filepath.Dir(p)
}

func TestSQLFormatIsTheSeedsGzippedDump(t *testing.T) {
	e := newEnv(t, envOpts{noRedis: true, noMinIO: true})
	e.seed()
	e.cfg.Format = backup.FormatSQL
	res, err := e.runner().Run(context.Background(), "weekly")
	must(t, err)
	m := res.Manifest
	if m.Postgres.File != "postgres.sql.gz" || m.Compression != "gzip" || m.Postgres.Rows["public.companies"] != 500 || m.Versions.Migration != 51 {
		t.Errorf("manifest %+v %+v", m.Postgres, m.Versions)
	}
	out, err := exec.Command("sh", "-c", "gzip -dc "+filepath.Join(res.Dir, "postgres.sql.gz")+" | grep -c '^COPY '").Output()
	if err != nil || strings.TrimSpace(string(out)) != "3" {
		t.Errorf("gzip -dc | grep COPY: %q %v", out, err)
	}
}

func TestEncryptedAtRest(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.seed()
	e.cfg.Encrypt = true
	res, err := e.runner().Run(context.Background(), "monthly")
	must(t, err)
	m := res.Manifest
	if m.Encryption == nil || m.Encryption.Recipient != e.cfg.Kit.Recipient {
		t.Fatalf("encryption %+v", m.Encryption)
	}
	for _, f := range m.Files {
		if !strings.HasSuffix(f.Path, ".age") {
			t.Errorf("%s stored unencrypted", f.Path)
		}
	}
	blobs, _ := filepath.Glob(filepath.Join(e.cfg.Root, "objects", "*", "*.age"))
	if len(blobs) != 5 {
		t.Errorf("encrypted blobs: %v", blobs)
	}
	// Deep verification decrypts everything with the identity kept on the machine.
	v, err := e.runner().Verify(context.Background(), "monthly/"+m.Name, true)
	must(t, err)
	if !v.Verified || !strings.Contains(strings.Join(v.Checks, ","), "5 re-hashed") {
		t.Errorf("deep verify: %s %v", v.Summary(), v.Checks)
	}
	// Without the identity, the checksums still verify and the report says what was skipped.
	e.cfg.Kit.IdentityFile = ""
	v, err = e.runner().Verify(context.Background(), res.Dir, false)
	must(t, err)
	if !v.Verified || !strings.Contains(strings.Join(v.Checks, ","), "not re-read (encrypted, no identity") {
		t.Errorf("verify without identity: %s %v", v.Summary(), v.Checks)
	}
	// The secrets decrypt with the identity and extract.
	ids, err := kit.LoadIdentities(filepath.Join(filepath.Dir(e.cfg.Kit.SecretsDir), "kit.key"))
	must(t, err)
	f, err := os.Open(filepath.Join(res.Dir, m.Kit.Secrets))
	must(t, err)
	defer f.Close()
	pr, err := kit.Decrypt(f, ids...)
	must(t, err)
	dst := t.TempDir()
	n, err := kit.ExtractTar(pr, dst)
	if err != nil || n != 2 {
		t.Fatalf("extract secrets: %d %v", n, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "postgres_password")); string(b) != e.pg.Password {
		t.Error("secret differs after the round trip")
	}
}

func TestPostgresDownIsAClearFailure(t *testing.T) {
	e := newEnv(t, envOpts{privatePG: true, noRedis: true, noMinIO: true})
	e.seed()
	_, err := e.runner().Run(context.Background(), "daily")
	must(t, err)
	e.pg.Stop(t)
	_, err = e.runner().Run(context.Background(), "daily")
	if err == nil || !strings.Contains(err.Error(), "pg_dump exited") || !strings.Contains(err.Error(), "is PostgreSQL up") {
		t.Fatalf("err = %v", err)
	}
	if len(complete(t, e.cfg.Root)) != 1 || len(partials(t, e.cfg.Root)) != 0 {
		t.Errorf("left behind: %v %v", complete(t, e.cfg.Root), partials(t, e.cfg.Root))
	}
	st, err := backup.Status(e.cfg.Root)
	must(t, err)
	if st["daily"].LastFailure.IsZero() || !strings.Contains(st["daily"].LastError, "pg_dump") || st["daily"].LastSuccess.IsZero() {
		t.Errorf("status %+v", st["daily"])
	}
	if last := e.lock.ends[len(e.lock.ends)-1]; last == nil {
		t.Error("the journal recorded the failed run as a success")
	}
}

func TestEmptyDumpIsFlaggedNotGood(t *testing.T) {
	e := newEnv(t, envOpts{noRedis: true, noMinIO: true})
	res, err := e.runner().Run(context.Background(), "daily")
	if !errors.Is(err, backup.ErrNotVerified) || !strings.Contains(err.Error(), "the dump is empty") {
		t.Fatalf("err = %v", err)
	}
	if res == nil || res.Verified {
		t.Fatalf("res %+v", res)
	}
	list := complete(t, e.cfg.Root)
	if len(list) != 1 || list[0].Good() || list[0].Verified {
		t.Errorf("list %+v", list)
	}
	st, _ := backup.Status(e.cfg.Root)
	if !st["daily"].LastSuccess.IsZero() || st["daily"].LastFailure.IsZero() {
		t.Errorf("a flagged backup counted as a success: %+v", st["daily"])
	}
}

func TestShrunkDumpAndLostRowsAreFlagged(t *testing.T) {
	e := newEnv(t, envOpts{noRedis: true})
	e.seed()
	for i := 5; i < 20; i++ {
		e.putObject("more/"+strconv.Itoa(i), []byte("x"))
	}
	_, err := e.runner().Run(context.Background(), "daily")
	must(t, err)
	e.sql("DELETE FROM metrics WHERE company > 50")
	for i := 5; i < 20; i++ {
		must(t, e.minio.Client(t).RemoveObject(context.Background(), e.minio.Bucket, "more/"+strconv.Itoa(i), minio.RemoveObjectOptions{}))
	}
	_, err = e.runner().Run(context.Background(), "daily")
	if !errors.Is(err, backup.ErrNotVerified) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"table public.metrics lost", "the dump shrank", "objects fell from 20 to 5"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err %q lacks %q", err, want)
		}
	}
	// Another tier has no previous backup to compare with: not flagged.
	_, err = e.runner().Run(context.Background(), "weekly")
	must(t, err)
}

func TestBusyLockTouchesNothing(t *testing.T) {
	e := newEnv(t, envOpts{noRedis: true, noMinIO: true})
	e.lock.busy = true
	_, err := e.runner().Run(context.Background(), "daily")
	if !errors.Is(err, backup.ErrBusy) || !strings.Contains(err.Error(), "restore since") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(e.cfg.Root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the root was touched: %v", err)
	}
}

func TestPreflightRefusesWithoutSpace(t *testing.T) {
	e := newEnv(t, envOpts{noRedis: true, noMinIO: true})
	e.seed()
	e.cfg.MinFreeBytes = 1 << 60
	_, err := e.runner().Run(context.Background(), "daily")
	if err == nil || !strings.Contains(err.Error(), "not enough free space") {
		t.Fatalf("err = %v", err)
	}
}

func TestTamperedBackupsAreCaught(t *testing.T) {
	e := newEnv(t, envOpts{noRedis: true})
	e.seed()
	res, err := e.runner().Run(context.Background(), "daily")
	must(t, err)
	ref := "daily/" + res.Manifest.Name
	flip := func(name string) {
		p := filepath.Join(res.Dir, name)
		b, err := os.ReadFile(p)
		must(t, err)
		b[len(b)/2] ^= 0xff
		must(t, os.WriteFile(p, b, 0o600))
	}
	verify := func() backup.Verification {
		v, err := e.runner().Verify(context.Background(), ref, true)
		must(t, err)
		return v
	}
	if v := verify(); !v.Verified {
		t.Fatalf("untouched backup: %s", v.Summary())
	}
	flip("postgres.dump.zst")
	v := verify()
	if v.Verified || !strings.Contains(v.Summary(), "checksum: postgres.dump.zst") {
		t.Errorf("flipped dump: %s", v.Summary())
	}
	// The verdict is recorded: the backup no longer counts as good.
	if l := complete(t, e.cfg.Root); l[0].Good() {
		t.Error("a corrupt backup still counts as good")
	}
	flip("postgres.dump.zst") // undo
	must(t, os.WriteFile(filepath.Join(res.Dir, "extra"), []byte("x"), 0o600))
	if v := verify(); v.Verified || !strings.Contains(v.Summary(), "extra is not in the manifest") {
		t.Errorf("extra file: %s", v.Summary())
	}
	must(t, os.Remove(filepath.Join(res.Dir, "extra")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(res.Dir, "link")))
	if v := verify(); v.Verified || !strings.Contains(v.Summary(), "link is a") {
		t.Errorf("symlink: %s", v.Summary())
	}
	must(t, os.Remove(filepath.Join(res.Dir, "link")))
	// A missing object body.
	blobs, _ := filepath.Glob(filepath.Join(e.cfg.Root, "objects", "*", "*"))
	must(t, os.Remove(blobs[0]))
	if v := verify(); v.Verified || !strings.Contains(v.Summary(), "1 object bodies missing") {
		t.Errorf("missing blob: %s", v.Summary())
	}
	// A kit file gone: named as missing, and its checksum fails.
	must(t, os.Remove(filepath.Join(res.Dir, "kit", "config.toml")))
	if v := verify(); v.Verified || !strings.Contains(v.Summary(), "kit/config.toml is missing") {
		t.Errorf("missing kit file: %s", v.Summary())
	}
	// An edited manifest is unreadable; listing says so and Verify refuses.
	mp := filepath.Join(res.Dir, backup.ManifestFile)
	b, _ := os.ReadFile(mp)
	must(t, os.WriteFile(mp, bytes.Replace(b, []byte(`"total_rows": 5502`), []byte(`"total_rows": 9999`), 1), 0o600))
	if _, err := e.runner().Verify(context.Background(), ref, false); !errors.Is(err, backup.ErrBadManifest) {
		t.Errorf("edited manifest: %v", err)
	}
	if l := complete(t, e.cfg.Root); l[0].Error == "" || l[0].Good() {
		t.Errorf("edited manifest listed as %+v", l[0])
	}
	for _, bad := range []string{"../etc", "/etc/passwd", "daily/../../x", "daily", "daily/notatime", filepath.Join(os.TempDir(), "daily/20261206_020001")} {
		if _, err := e.runner().Verify(context.Background(), bad, false); err == nil {
			t.Errorf("Verify(%q) accepted", bad)
		}
	}
}

func TestPinAndUnpin(t *testing.T) {
	e := newEnv(t, envOpts{noRedis: true, noMinIO: true})
	e.seed()
	res, err := e.runner().Run(context.Background(), "daily")
	must(t, err)
	must(t, backup.Pin(e.cfg.Root, res.Dir, true, time.Now()))
	if l := complete(t, e.cfg.Root); !l[0].Pinned || !strings.Contains(backup.FormatList(l), "pinned") {
		t.Errorf("not pinned: %+v", l[0])
	}
	must(t, backup.Pin(e.cfg.Root, "daily/"+res.Manifest.Name, false, time.Now()))
	if l := complete(t, e.cfg.Root); l[0].Pinned {
		t.Error("still pinned")
	}
	if err := backup.Pin(e.cfg.Root, "daily/20000101_000000", true, time.Now()); err == nil {
		t.Error("pinned a backup that does not exist")
	}
	if err := backup.Pin(e.cfg.Root, "../../etc", true, time.Now()); err == nil {
		t.Error("pinned outside the root")
	}
}

// Every source failing in its own way: a clear error naming it, nothing that looks
// like a backup left behind, and the failure recorded for the tier.
func TestSourceFailuresAreClear(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env)
		want  string
	}{
		{"redis down", func(e *env) { e.redis.Stop(e.t) }, "redis"},
		{"minio down", func(e *env) { e.minio.Stop(e.t) }, "is MinIO up?"},
		{"wrong RDB path", func(e *env) { e.cfg.Redis.RDBPath = "/nonexistent/dump.rdb" }, "cat /nonexistent/dump.rdb exited"},
		{"config file missing", func(e *env) { e.cfg.Kit.ConfigFile = "/nonexistent/corpintel.toml" }, "kit: config"},
		{"state store missing", func(e *env) { e.cfg.Kit.StateDB = "/nonexistent/state.db" }, "state store"},
		{"secrets dir missing", func(e *env) { e.cfg.Kit.SecretsDir = "/nonexistent/secrets" }, "kit: secrets directory"},
		{"container gone", func(e *env) { e.exec.Down = map[string]bool{"pg": true} }, "start pg_dump in pg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *env
			if strings.HasPrefix(tt.name, "redis") || strings.HasPrefix(tt.name, "minio") {
				e = newPrivateEnv(t, tt.name)
			} else {
				e = newEnv(t, envOpts{})
			}
			e.seed()
			tt.setup(e)
			_, err := e.runner().Run(context.Background(), "daily")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if c, p := complete(t, e.cfg.Root), partials(t, e.cfg.Root); len(c) != 0 || len(p) != 0 {
				t.Errorf("left behind: %v %v", c, p)
			}
			st, _ := backup.Status(e.cfg.Root)
			if st["daily"].LastFailure.IsZero() {
				t.Errorf("failure not recorded: %+v", st)
			}
		})
	}
}

// newPrivateEnv gives the test Redis or MinIO servers of its own, so it can stop them.
func newPrivateEnv(t *testing.T, name string) *env {
	t.Helper()
	e := newEnv(t, envOpts{})
	if strings.HasPrefix(name, "redis") {
		e.redis = testenv.RedisServer(t)
		host, port := splitHostPort(t, e.redis.Addr)
		e.cfg.Redis = &backup.RedisSource{Container: "redis", Host: host, Port: port, Password: e.redis.Password}
	} else {
		e.minio = testenv.MinIOServer(t)
		e.cfg.MinIO = &backup.MinIOSource{Endpoint: e.minio.Endpoint, AccessKey: e.minio.AccessKey, SecretKey: e.minio.SecretKey, Buckets: []string{e.minio.Bucket}}
	}
	return e
}

// Without a tool runner pg_restore --list cannot run: the backup is kept but never green.
func TestNoToolRunnerIsNeverGreen(t *testing.T) {
	e := newEnv(t, envOpts{noRedis: true, noMinIO: true})
	e.seed()
	e.deps.Tools, e.deps.Lock = nil, nil
	res, err := e.runner().Run(context.Background(), "daily")
	if !errors.Is(err, backup.ErrNotVerified) || !strings.Contains(err.Error(), "pg_restore: no tool runner") || res.Verified {
		t.Fatalf("err = %v", err)
	}
}

// A wrong Redis password is a clear failure, not a hang waiting for BGSAVE.
func TestRedisWrongPassword(t *testing.T) {
	e := newEnv(t, envOpts{noMinIO: true})
	e.seed()
	// The first run uses the runner's own poll timer while BGSAVE runs.
	e.deps.Poll = nil
	if _, err := e.runner().Run(context.Background(), "daily"); err != nil {
		t.Fatal(err)
	}
	e.cfg.Redis.Password = "wrong"
	_, err := e.runner().Run(context.Background(), "daily")
	if err == nil || !strings.Contains(err.Error(), "redis") {
		t.Fatalf("err = %v", err)
	}
}
