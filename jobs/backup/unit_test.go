package backup

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/jobs/kit"
)

func goodManifest() Manifest {
	return Manifest{
		FormatVersion: ManifestVersion, Tier: "daily", Name: "20261206_020000",
		Started: time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC), Finished: time.Date(2026, 12, 6, 2, 0, 9, 0, time.UTC),
		Postgres: &PostgresPart{Format: FormatCustom, File: "postgres.dump.zst", DumpBytes: 1000, Rows: map[string]int64{"public.t": 10}, TotalRows: 10},
		Files:    []File{{Path: "postgres.dump.zst", Size: 10, SHA256: strings.Repeat("a", 64)}},
	}
}

func TestManifestRoundTripAndHostileManifests(t *testing.T) {
	body, err := encodeManifest(goodManifest())
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeManifest(bytes.NewReader(body))
	if err != nil || m.Postgres.Rows["public.t"] != 10 {
		t.Fatalf("round trip: %v", err)
	}
	edit := func(f func(*Manifest)) []byte {
		m := goodManifest()
		f(&m)
		b, err := encodeManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := map[string][]byte{
		"not json":        []byte("{"),
		"huge":            bytes.Repeat([]byte(" "), maxManifest+1),
		"no checksum":     bytes.Replace(body, []byte(`"manifest_sha256": "`), []byte(`"manifest_sha256": "x`), 1),
		"edited":          bytes.Replace(body, []byte(`"dump_bytes": 1000`), []byte(`"dump_bytes": 1001`), 1),
		"newer version":   edit(func(m *Manifest) { m.FormatVersion = ManifestVersion + 1 }),
		"no version":      edit(func(m *Manifest) { m.FormatVersion = 0 }),
		"bad tier":        edit(func(m *Manifest) { m.Tier = "../daily" }),
		"bad name":        edit(func(m *Manifest) { m.Name = "yesterday" }),
		"traversal":       edit(func(m *Manifest) { m.Files[0].Path = "../../etc/passwd"; m.Postgres.File = m.Files[0].Path }),
		"absolute":        edit(func(m *Manifest) { m.Files[0].Path = "/etc/passwd"; m.Postgres.File = m.Files[0].Path }),
		"unclean":         edit(func(m *Manifest) { m.Files[0].Path = "a//b"; m.Postgres.File = m.Files[0].Path }),
		"backslash":       edit(func(m *Manifest) { m.Files[0].Path = `..\x`; m.Postgres.File = m.Files[0].Path }),
		"reserved":        edit(func(m *Manifest) { m.Files[0].Path = ManifestFile; m.Postgres.File = m.Files[0].Path }),
		"duplicate":       edit(func(m *Manifest) { m.Files = append(m.Files, m.Files[0]) }),
		"negative size":   edit(func(m *Manifest) { m.Files[0].Size = -1 }),
		"short checksum":  edit(func(m *Manifest) { m.Files[0].SHA256 = "ab" }),
		"unlisted part":   edit(func(m *Manifest) { m.Redis = &RedisPart{File: "redis.rdb.zst"} }),
		"unlisted index":  edit(func(m *Manifest) { m.Objects = &ObjectsPart{Index: "objects.jsonl.zst"} }),
		"unlisted secret": edit(func(m *Manifest) { m.Kit = &KitPart{Secrets: "kit/secrets.tar.age"} }),
	}
	for name, b := range tests {
		if _, err := DecodeManifest(bytes.NewReader(b)); !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: err = %v, want ErrBadManifest", name, err)
		}
	}
}

func FuzzDecodeManifest(f *testing.F) {
	body, _ := encodeManifest(goodManifest())
	f.Add(body)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, p := range append(m.partFiles(), func() []string {
			var s []string
			for _, f := range m.Files {
				s = append(s, f.Path)
			}
			return s
		}()...) {
			if checkRelPath(p) != nil {
				t.Fatalf("accepted path %q", p)
			}
		}
	})
}

func TestReadManifestRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	must(t, os.Mkdir(real, 0o700))
	body, _ := encodeManifest(goodManifest())
	must(t, os.WriteFile(filepath.Join(real, ManifestFile), body, 0o600))
	if _, err := ReadManifest(real); err != nil {
		t.Fatal(err)
	}
	must(t, os.Symlink(real, filepath.Join(dir, "link")))
	if _, err := ReadManifest(filepath.Join(dir, "link")); err == nil {
		t.Error("followed a symlinked backup directory")
	}
	other := filepath.Join(dir, "other")
	must(t, os.Mkdir(other, 0o700))
	must(t, os.Symlink(filepath.Join(real, ManifestFile), filepath.Join(other, ManifestFile)))
	if _, err := ReadManifest(other); err == nil {
		t.Error("followed a symlinked manifest")
	}
	if _, err := ReadManifest(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing dir")
	}
}

func TestConfigValidation(t *testing.T) {
	id := filepath.Join(t.TempDir(), "k")
	rcpt, err := kit.GenerateIdentity(id, time.Now())
	must(t, err)
	base := Config{Root: "/r", Postgres: PostgresSource{Container: "c", Database: "d"}}
	c, err := base.withDefaults()
	if err != nil || c.Format != FormatCustom || c.Postgres.OSUser != "postgres" || c.Sanity.MaxDumpShrink != 0.5 || c.MinFreeBytes == 0 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	bad := map[string]func(*Config){
		"no root":            func(c *Config) { c.Root = "" },
		"format":             func(c *Config) { c.Format = "tar" },
		"no database":        func(c *Config) { c.Postgres.Database = "" },
		"redis container":    func(c *Config) { c.Redis = &RedisSource{} },
		"minio endpoint":     func(c *Config) { c.MinIO = &MinIOSource{} },
		"secrets in clear":   func(c *Config) { c.Kit.SecretsDir = "/s" },
		"encrypt no key":     func(c *Config) { c.Encrypt = true },
		"bad recipient":      func(c *Config) { c.Kit.Recipient = "age1bad" },
		"fraction over 1":    func(c *Config) { c.Sanity.MaxTableLoss = 2 },
		"negative fraction":  func(c *Config) { c.Sanity.MaxDumpShrink = -0.1 },
		"objects loss range": func(c *Config) { c.Sanity.MaxObjectsLoss = 1.5 },
	}
	for name, f := range bad {
		c := base
		f(&c)
		if _, err := c.withDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c = base
	c.Redis = &RedisSource{Container: "r"}
	c.Kit = KitSource{Recipient: rcpt, SecretsDir: "/s"}
	c.Encrypt = true
	got, err := c.withDefaults()
	if err != nil || got.Redis.Port != 6379 || got.Redis.Host != "127.0.0.1" {
		t.Errorf("redis defaults %+v %v", got.Redis, err)
	}
	if _, err := New(base, Deps{}); err == nil {
		t.Error("New without Exec")
	}
	c = base
	c.Kit.IdentityFile = filepath.Join(t.TempDir(), "missing")
	if _, err := New(c, Deps{Exec: nopExec{}}); err == nil {
		t.Error("New with a missing identity file")
	}
	r, err := New(base, Deps{Exec: nopExec{}})
	if err != nil || r.Root() != "/r" {
		t.Errorf("New: %v", err)
	}
	for _, tier := range []string{"", "Daily", "a/b", "..", strings.Repeat("x", 40)} {
		if ValidTier(tier) == nil {
			t.Errorf("tier %q accepted", tier)
		}
	}
}

type nopExec struct{}

func (nopExec) Exec(_ context.Context, _ ExecRequest) (Process, error) { return nil, errors.New("nop") }

func TestParseNameAndResolve(t *testing.T) {
	if ts, ok := ParseName("20261206_020000-2"); !ok || ts.Hour() != 2 {
		t.Errorf("suffix: %v %v", ts, ok)
	}
	for _, bad := range []string{"20261306_020000", "2026120_020000", ".partial-20261206_020000", "20261206_020000-x"} {
		if _, ok := ParseName(bad); ok {
			t.Errorf("ParseName(%q) ok", bad)
		}
	}
	root := "/var/backups/ci"
	for ref, want := range map[string]string{
		"daily/20261206_020000":                  "daily/20261206_020000",
		"/var/backups/ci/weekly/20261206_030000": "weekly/20261206_030000",
		"daily/./20261206_020000":                "daily/20261206_020000",
	} {
		if got, err := resolve(root, ref); err != nil || got != want {
			t.Errorf("resolve(%q) = %q, %v", ref, got, err)
		}
	}
	for _, bad := range []string{"/var/backups/other/daily/20261206_020000", "../daily/20261206_020000", "daily/20261206_020000/../../x", "daily", "objects/ab", "/etc"} {
		if _, err := resolve(root, bad); err == nil {
			t.Errorf("resolve(%q) accepted", bad)
		}
	}
}

func TestFreeName(t *testing.T) {
	dir := t.TempDir()
	r, err := os.OpenRoot(dir)
	must(t, err)
	defer r.Close()
	must(t, os.MkdirAll(filepath.Join(dir, "daily", "20261206_020000"), 0o700))
	must(t, os.MkdirAll(filepath.Join(dir, "daily", "20261206_020000-1"), 0o700))
	if n, err := freeName(r, "daily", "20261206_020000"); err != nil || n != "20261206_020000-2" {
		t.Errorf("freeName = %q, %v", n, err)
	}
}

func TestRDBChecker(t *testing.T) {
	// Redis's own test vector for its CRC-64.
	if got := rdbCRC(0, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("crc64 = %x", got)
	}
	body := append([]byte("REDIS0011"), []byte("\xfa\x09redis-ver\x067.0.15\xfe\x00\xfb\x00\x00\xff")...)
	sum := make([]byte, 8)
	binary.LittleEndian.PutUint64(sum, rdbCRC(0, body))
	rdb := append(body, sum...)
	feed := func(b []byte, chunk int) (int, error) {
		c := newRDBChecker()
		for len(b) > 0 {
			k := min(chunk, len(b))
			_, _ = c.Write(b[:k])
			b = b[k:]
		}
		return c.finish()
	}
	for _, chunk := range []int{1, 3, 8, 1000} {
		if v, err := feed(rdb, chunk); err != nil || v != 11 {
			t.Errorf("chunk %d: %d %v", chunk, v, err)
		}
	}
	bad := map[string][]byte{
		"truncated":    rdb[:len(rdb)-3],
		"no magic":     append([]byte("RUBIS0011"), rdb[9:]...),
		"bad version":  append([]byte("REDISxx11"), rdb[9:]...),
		"flipped":      append(append([]byte{}, rdb[:12]...), append([]byte{rdb[12] ^ 1}, rdb[13:]...)...),
		"empty":        nil,
		"no eof mark":  append(append([]byte{}, body[:len(body)-1]...), 0x00, 1, 2, 3, 4, 5, 6, 7, 8),
		"header only":  []byte("REDIS0011"),
		"tiny garbage": []byte("xyz"),
	}
	for name, b := range bad {
		if _, err := feed(b, 4); !errors.Is(err, ErrBadRDB) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// rdbchecksum off: a zero checksum is accepted.
	zero := append(append([]byte{}, body...), make([]byte, 8)...)
	if _, err := feed(zero, 5); err != nil {
		t.Errorf("zero checksum: %v", err)
	}
}

func TestSanity(t *testing.T) {
	lim := Sanity{MaxDumpShrink: 0.5, MaxTableLoss: 0.5, MinTableRows: 100, MaxObjectsLoss: 0.5}
	prev := &Manifest{Name: "prev", Postgres: &PostgresPart{DumpBytes: 1000, Rows: map[string]int64{"a": 1000, "b": 200, "small": 50, "gone": 500}, TotalRows: 1750},
		Objects: &ObjectsPart{Count: 100}}
	cur := &Manifest{Postgres: &PostgresPart{DumpBytes: 400, Rows: map[string]int64{"a": 1000, "b": 90, "small": 0}, TotalRows: 1090},
		Objects: &ObjectsPart{Count: 40}}
	got := sanity(cur, prev, lim)
	var s []string
	for _, p := range got {
		s = append(s, p.Detail)
	}
	text := strings.Join(s, "\n")
	for _, want := range []string{"shrank from 1000 B to 400 B", "table b lost 110 of its 200 rows", "table gone is gone", "objects fell from 100 to 40"} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in:\n%s", want, text)
		}
	}
	if strings.Contains(text, "small") {
		t.Errorf("a table under the minimum was compared:\n%s", text)
	}
	if p := sanity(&Manifest{Postgres: &PostgresPart{}}, nil, lim); len(p) != 1 || !strings.Contains(p[0].Detail, "empty") {
		t.Errorf("empty dump: %v", p)
	}
	if p := sanity(prev, prev, lim); len(p) != 0 {
		t.Errorf("identical backups flagged: %v", p)
	}
	if d := diffRows(map[string]int64{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}, map[string]int64{"a": 2, "x": 1}); !strings.Contains(d, "a 2≠1") || !strings.Contains(d, "more") {
		t.Errorf("diffRows: %s", d)
	}
}

func TestSmallHelpers(t *testing.T) {
	info := "# Persistence\r\nrdb_saves:3\r\nrdb_bgsave_in_progress:0\r\n"
	if v, ok := intField(info, "rdb_saves"); !ok || v != 3 {
		t.Errorf("intField = %d %v", v, ok)
	}
	if _, ok := intField(info, "missing"); ok {
		t.Error("missing field found")
	}
	if got := maxMigration([]byte("1\tplatform\n51\taudit\n10\tx\n\\.\n\n\n")); got != 51 {
		t.Errorf("maxMigration = %d", got)
	}
	for n, want := range map[int64]string{5: "5 B", 2048: "2.0 KiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q", n, got)
		}
	}
	args := strings.Join(pgDumpArgs(PostgresSource{Database: "d", User: "u", Host: "h", Port: 5433}, FormatSQL), " ")
	if args != "pg_dump --no-password --format=plain --host=h --port=5433 --username=u --dbname=d" {
		t.Errorf("args %s", args)
	}
	if env := strings.Join(pgEnv(PostgresSource{Password: "pw"}), " "); !strings.Contains(env, "PGPASSWORD=pw") {
		t.Errorf("env %s", env)
	}
	v := Verification{Problems: []Problem{{"a", "b"}, {"c", "d"}}}
	if v.Summary() != "a: b; c: d" || (Verification{Verified: true}).Summary() != "verified" {
		t.Errorf("summary %q", v.Summary())
	}
}

func TestProgressThrottlesAndEstimates(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var got []Progress
	p := newProgress(func(pr Progress) { got = append(got, pr) }, clock, time.Second, "daily", 1000)
	p.setPhase("postgres")
	p.add(100) // same instant: throttled
	now = now.Add(2 * time.Second)
	p.add(100)
	p.close()
	p.add(1) // after close: silent
	if len(got) != 3 {
		t.Fatalf("reports %+v", got)
	}
	last := got[1]
	if last.Bytes != 200 || last.Rate != 100 || last.ETA != 8*time.Second || last.Phase != "postgres" || last.Tier != "daily" {
		t.Errorf("report %+v", last)
	}
	newProgress(nil, clock, time.Second, "daily", 0).add(5) // no callback: no panic
}

func TestRootLockAndTierDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockRoot(dir)
	must(t, err)
	if _, err := lockRoot(dir); !errors.Is(err, ErrBusy) {
		t.Errorf("second lock: %v", err)
	}
	if _, err := CleanPartials(dir); !errors.Is(err, ErrBusy) {
		t.Errorf("CleanPartials while locked: %v", err)
	}
	unlock()
	if _, err := lockRoot(filepath.Join(dir, "missing", "x")); err == nil {
		t.Error("lock in a missing directory")
	}
	r, err := prepareRoot(dir)
	must(t, err)
	defer r.Close()
	must(t, tierDir(r, "daily"))
	must(t, tierDir(r, "daily"))
	must(t, os.WriteFile(filepath.Join(dir, "weekly"), []byte("x"), 0o600))
	if err := tierDir(r, "weekly"); err == nil {
		t.Error("a file as tier directory")
	}
	outside := t.TempDir()
	must(t, os.Symlink(outside, filepath.Join(dir, "monthly")))
	if err := tierDir(r, "monthly"); err == nil {
		t.Error("a symlink as tier directory")
	}
	// Listing and cleanup ignore the symlinked tier: nothing outside is touched.
	must(t, os.MkdirAll(filepath.Join(outside, ".partial-x"), 0o700))
	if _, err := CleanPartials(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, ".partial-x")); err != nil {
		t.Error("cleanup followed a symlink out of the root")
	}
}

func TestStatusSurvivesGarbage(t *testing.T) {
	dir := t.TempDir()
	st, err := Status(filepath.Join(dir, "missing"))
	if err != nil || len(st) != 0 {
		t.Errorf("missing root: %v %v", st, err)
	}
	must(t, os.WriteFile(filepath.Join(dir, statusFile), []byte("{garbage"), 0o600))
	if _, err := Status(dir); err != nil {
		t.Errorf("garbage status: %v", err)
	}
	r, _ := os.OpenRoot(dir)
	defer r.Close()
	if _, err := readStatus(r); err == nil {
		t.Error("garbage status parsed")
	}
	rn := &Runner{cfg: Config{Root: dir}, deps: Deps{Clock: time.Now}, log: slog.New(slog.DiscardHandler)}
	rn.recordStatus(r, "daily", time.Now(), nil, errors.New("boom"))
	all, err := readStatus(r)
	if err != nil || all["daily"].LastError != "boom" {
		t.Errorf("status after failure: %+v %v", all, err)
	}
	b, _ := json.Marshal(all)
	if !bytes.Contains(b, []byte("last_failure")) {
		t.Errorf("json %s", b)
	}
	infos, err := List(filepath.Join(dir, "missing"))
	if err != nil || infos != nil {
		t.Errorf("List of a missing root: %v %v", infos, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
