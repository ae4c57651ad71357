package backup_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/corpintel/corpintel/jobs/backup"
	"github.com/corpintel/corpintel/jobs/hostexec"
	"github.com/corpintel/corpintel/jobs/kit"
	"github.com/minio/minio-go/v7"
	_ "modernc.org/sqlite"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		helperProcess()
		return
	}
	testenv.Main(m)
}

// fakeLock records the operations and steps a run takes; busy makes Begin refuse.
type fakeLock struct {
	mu    sync.Mutex
	busy  bool
	kinds []string
	steps []string
	ends  []error
}

func (l *fakeLock) Begin(_ context.Context, kind string, services []string) (backup.Op, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.busy {
		return nil, fmt.Errorf("restore since 10:00: %w", backup.ErrBusy)
	}
	l.kinds = append(l.kinds, kind+" "+strings.Join(services, ","))
	return &fakeOp{l}, nil
}

type fakeOp struct{ l *fakeLock }

func (o *fakeOp) Step(name, _ string) {
	o.l.mu.Lock()
	o.l.steps = append(o.l.steps, name)
	o.l.mu.Unlock()
}

func (o *fakeOp) End(err error) {
	o.l.mu.Lock()
	o.l.ends = append(o.l.ends, err)
	o.l.mu.Unlock()
}

// env is one test's stack: real servers, a backup root, and a runner config.
type env struct {
	t     *testing.T
	pg    *testenv.PG
	redis *testenv.RedisDB
	minio *testenv.MinIOBucket
	exec  *hostexec.Exec
	lock  *fakeLock
	cfg   backup.Config
	deps  backup.Deps
	clock time.Time
}

type envOpts struct {
	privatePG bool // a PostgreSQL server of its own (the test stops it)
	noRedis   bool
	noMinIO   bool
	root      string
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{t: t, exec: &hostexec.Exec{}, lock: &fakeLock{}, clock: time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)}
	if o.privatePG {
		e.pg = testenv.PostgresServer(t)
	} else {
		e.pg = testenv.Postgres(t)
	}
	root := o.root
	if root == "" {
		root = filepath.Join(t.TempDir(), "backups")
	}
	dir := t.TempDir()
	idFile := filepath.Join(dir, "kit.key")
	rcpt, err := kit.GenerateIdentity(idFile, e.clock)
	if err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(dir, "secrets")
	must(t, os.MkdirAll(filepath.Join(secrets, "api"), 0o700))
	must(t, os.WriteFile(filepath.Join(secrets, "postgres_password"), []byte(e.pg.Password), 0o400))
	must(t, os.WriteFile(filepath.Join(secrets, "api", "jwt_kek"), []byte("kek"), 0o400))
	cfgFile := filepath.Join(dir, "corpintel.toml")
	must(t, os.WriteFile(cfgFile, []byte("profile = \"dev\"\n"), 0o600))
	stateDB := filepath.Join(dir, "state.db")
	db, err := sql.Open("sqlite", "file:"+stateDB+"?_pragma=journal_mode(WAL)")
	must(t, err)
	_, err = db.Exec("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT); INSERT INTO kv VALUES ('scale.api', '2')")
	must(t, err)
	db.Close()

	e.cfg = backup.Config{
		Root: root, Host: "test-host", Corpintel: "test",
		Postgres: backup.PostgresSource{
			Container: "pg", Database: e.pg.DB, User: e.pg.User, Password: e.pg.Password,
			Host: e.pg.Host, Port: e.pg.Port,
		},
		Kit: backup.KitSource{ConfigFile: cfgFile, StateDB: stateDB, SecretsDir: secrets, Recipient: rcpt, IdentityFile: idFile},
		// The test machines' disks are small; the margin is not what these tests test.
		MinFreeBytes: 1,
	}
	if !o.noRedis {
		e.redis = testenv.Redis(t)
		host, port := splitHostPort(t, e.redis.Addr)
		e.cfg.Redis = &backup.RedisSource{Container: "redis", Host: host, Port: port, Password: e.redis.Password}
	}
	if !o.noMinIO {
		e.minio = testenv.MinIO(t)
		e.cfg.MinIO = &backup.MinIOSource{Endpoint: e.minio.Endpoint, AccessKey: e.minio.AccessKey, SecretKey: e.minio.SecretKey,
			Buckets: []string{e.minio.Bucket}, Version: "test-minio"}
	}
	e.deps = backup.Deps{
		Exec: e.exec, Tools: e.exec, Lock: e.lock,
		Clock: e.now,
		Poll:  func(ctx context.Context) error { time.Sleep(5 * time.Millisecond); return ctx.Err() },
	}
	return e
}

// now advances a second per call, so every run gets its own directory name and
// durations are deterministic.
func (e *env) now() time.Time {
	e.clock = e.clock.Add(time.Second)
	return e.clock
}

func (e *env) runner() *backup.Runner {
	e.t.Helper()
	r, err := backup.New(e.cfg, e.deps)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) sql(query string, args ...any) {
	e.t.Helper()
	if _, err := e.pg.Pool(e.t).Exec(context.Background(), query, args...); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
}

// seed fills every service with some data.
func (e *env) seed() {
	e.t.Helper()
	e.sql(`CREATE TABLE companies (id int PRIMARY KEY, name text);
		INSERT INTO companies SELECT g, 'company ' || g FROM generate_series(1, 500) g;
		CREATE TABLE metrics (company int, day date, v float8);
		INSERT INTO metrics SELECT g % 500, '2025-01-01'::date + (g % 365), random() FROM generate_series(1, 5000) g;
		CREATE TABLE schema_migrations (version int PRIMARY KEY, name text);
		INSERT INTO schema_migrations VALUES (1, 'platform'), (51, 'audit');`)
	if e.redis != nil {
		c := e.redis.Client(e.t)
		for i := 0; i < 100; i++ {
			must(e.t, c.Set(context.Background(), fmt.Sprintf("%skey%d", e.redis.Prefix, i), strings.Repeat("v", i), 0).Err())
		}
	}
	if e.minio != nil {
		for i := 0; i < 5; i++ {
			e.putObject(fmt.Sprintf("docs/%d.pdf", i), bytes.Repeat([]byte{byte('a' + i)}, 20_000+i))
		}
	}
}

func (e *env) putObject(key string, body []byte) {
	e.t.Helper()
	_, err := e.minio.Client(e.t).PutObject(context.Background(), e.minio.Bucket, key, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: "application/pdf"})
	must(e.t, err)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		t.Fatalf("address %q", addr)
	}
	var n int
	_, err := fmt.Sscanf(port, "%d", &n)
	must(t, err)
	return host, n
}

// complete lists the complete backups under root.
func complete(t *testing.T, root string) []backup.Info {
	t.Helper()
	all, err := backup.List(root)
	must(t, err)
	var out []backup.Info
	for _, i := range all {
		if i.Complete {
			out = append(out, i)
		}
	}
	return out
}

// partials lists the .partial-* directories under root.
func partials(t *testing.T, root string) []string {
	t.Helper()
	p, _ := filepath.Glob(filepath.Join(root, "*", ".partial-*"))
	return p
}
