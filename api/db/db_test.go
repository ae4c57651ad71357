package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func configFor(pg *testenv.PG) Config {
	return Config{Host: pg.Host, Port: pg.Port, DB: pg.DB, User: pg.User, Password: pg.Password, PoolMax: 8}
}

func openTest(t *testing.T, reg prometheus.Registerer) (*pgxpool.Pool, *testenv.PG) {
	t.Helper()
	pg := testenv.Postgres(t)
	cfg := configFor(pg)
	cfg.Registerer = reg
	pool, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, pg
}

func TestConnString(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"defaults", Config{}, []string{"host='postgres'", "port=5432", "dbname='corporate_intel'", "user='intel_user'",
			"sslmode='disable'", "application_name='corpintel-api'", "connect_timeout=5"}},
		{"quoting", Config{Password: `it's a \ secret`, AppName: "api 1"}, []string{`password='it\'s a \\ secret'`, "application_name='api 1'"}},
		{"timeout rounds up to 1s", Config{ConnectTimeout: 100 * time.Millisecond}, []string{"connect_timeout=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.cfg.withDefaults().connString()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("connString = %s, want it to contain %s", got, w)
				}
			}
		})
	}
}

func TestOpenSettings(t *testing.T) {
	pg := testenv.Postgres(t)
	cfg := configFor(pg)
	cfg.Password = pg.Password
	cfg.PoolMax = 3
	cfg.AppName = "corpintel-test"
	cfg.StatementTimeout = 1500 * time.Millisecond
	pool, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var app, timeout string
	if err := pool.QueryRow(context.Background(), "SELECT current_setting('application_name'), current_setting('statement_timeout')").Scan(&app, &timeout); err != nil {
		t.Fatal(err)
	}
	if app != "corpintel-test" || timeout != "1500ms" {
		t.Errorf("application_name=%q statement_timeout=%q", app, timeout)
	}
	if got := pool.Config().MaxConns; got != 3 {
		t.Errorf("MaxConns = %d, want 3", got)
	}

	cfg.Password = "wrong"
	bad, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Ping(context.Background()); err == nil {
		t.Error("ping with a wrong password succeeded")
	}
}

func countMigrations(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	ctx := context.Background()
	pool, _ := openTest(t, nil)
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].File != "0001_platform.sql" {
		t.Fatalf("embedded migrations: %+v", ms)
	}
	if err := Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	var first time.Time
	if err := pool.QueryRow(ctx, "SELECT max(applied_at) FROM schema_migrations").Scan(&first); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	var second time.Time
	if err := pool.QueryRow(ctx, "SELECT max(applied_at) FROM schema_migrations").Scan(&second); err != nil {
		t.Fatal(err)
	}
	if n := countMigrations(t, pool); n != len(ms) || !first.Equal(second) {
		t.Errorf("after two runs: %d rows (want %d), applied_at %v then %v", n, len(ms), first, second)
	}

	for _, ext := range []string{"pg_trgm", "pgcrypto"} {
		if ok, err := HasExtension(ctx, pool, ext); err != nil || !ok {
			t.Errorf("HasExtension(%s) = %v, %v; want true", ext, ok, err)
		}
	}
	if ok, err := HasExtension(ctx, pool, "no_such_extension"); err != nil || ok {
		t.Errorf("HasExtension(no_such_extension) = %v, %v", ok, err)
	}
	if _, err := TimescaleAvailable(ctx, pool); err != nil {
		t.Errorf("TimescaleAvailable: %v", err)
	}

	// The helper trigger function works.
	_, err = pool.Exec(ctx, `CREATE TABLE things (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT 'epoch');
		CREATE TRIGGER things_updated BEFORE UPDATE ON things FOR EACH ROW EXECUTE FUNCTION corpintel_set_updated_at();
		INSERT INTO things (id) VALUES (1); UPDATE things SET id = 1`)
	if err != nil {
		t.Fatal(err)
	}
	var updated time.Time
	if err := pool.QueryRow(ctx, "SELECT updated_at FROM things").Scan(&updated); err != nil || updated.Year() < 2000 {
		t.Errorf("updated_at = %v, %v; want now", updated, err)
	}
}

func mustLoad(t *testing.T, files map[string]string) []Migration {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	ms, err := loadMigrations(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestMigrateConcurrentAppliesOnce(t *testing.T) {
	ctx := context.Background()
	pool, _ := openTest(t, nil)
	ms := mustLoad(t, map[string]string{
		"0001_counter.sql": "CREATE TABLE counter (n int NOT NULL); INSERT INTO counter VALUES (0);",
		// The sleep keeps the first runner inside its transaction while the others arrive.
		"0002_bump.sql": "SELECT pg_sleep(0.2); UPDATE counter SET n = n + 1;",
		"0003_bump.sql": "UPDATE counter SET n = n + 10;",
	})
	const runners = 4
	errs := make([]error, runners)
	var wg sync.WaitGroup
	for i := range runners {
		wg.Go(func() { errs[i] = migrate(ctx, pool, nil, ms) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT n FROM counter").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 11 || countMigrations(t, pool) != 3 {
		t.Errorf("counter = %d (want 11), schema_migrations rows = %d (want 3)", n, countMigrations(t, pool))
	}
}

func TestMigrateErrors(t *testing.T) {
	base := map[string]string{"0001_a.sql": "CREATE TABLE a (id int);"}
	tests := []struct {
		name string
		// first is applied successfully, then second is run.
		second   map[string]string
		wantErr  []string
		wantRows int
		// absent names a table the failed step created before failing: it must be gone.
		absent string
	}{
		{
			name: "broken migration rolls back",
			second: map[string]string{"0001_a.sql": base["0001_a.sql"],
				"0002_b.sql": "CREATE TABLE b (id int);\n\nSELEC 1;\n"},
			wantErr:  []string{"0002_b.sql:3", "syntax error", "rolled back"},
			wantRows: 1,
			absent:   "b",
		},
		{
			name:     "changed checksum",
			second:   map[string]string{"0001_a.sql": "CREATE TABLE a (id bigint);"},
			wantErr:  []string{"0001_a.sql", "checksum", "add a new migration"},
			wantRows: 1,
		},
		{
			name:     "unknown applied version",
			second:   map[string]string{},
			wantErr:  []string{"0001_a", "newer version"},
			wantRows: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			pool, _ := openTest(t, nil)
			if err := migrate(ctx, pool, nil, mustLoad(t, base)); err != nil {
				t.Fatal(err)
			}
			err := migrate(ctx, pool, nil, mustLoad(t, tt.second))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if n := countMigrations(t, pool); n != tt.wantRows {
				t.Errorf("schema_migrations rows = %d, want %d", n, tt.wantRows)
			}
			if tt.absent != "" {
				var exists bool
				if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", tt.absent).Scan(&exists); err != nil || exists {
					t.Errorf("table %s exists=%v (%v) after rollback", tt.absent, exists, err)
				}
			}
			// The lock was released: a correct run still works.
			if err := migrate(ctx, pool, nil, mustLoad(t, base)); err != nil {
				t.Errorf("migrate after failure: %v", err)
			}
		})
	}
}

func TestLoadMigrations(t *testing.T) {
	tests := []struct {
		name    string
		files   fstest.MapFS
		want    []string
		wantErr string
	}{
		{name: "ordered", files: fstest.MapFS{
			"0010_users.sql": {Data: []byte("x")}, "0001_platform.sql": {Data: []byte("y")}, "README.md": {Data: []byte("z")},
		}, want: []string{"0001_platform.sql", "0010_users.sql"}},
		{name: "bad name", files: fstest.MapFS{"1_users.sql": {Data: []byte("x")}}, wantErr: "NNNN_name.sql"},
		{name: "upper case", files: fstest.MapFS{"0001_Users.sql": {Data: []byte("x")}}, wantErr: "NNNN_name.sql"},
		{name: "duplicate", files: fstest.MapFS{
			"0010_users.sql": {Data: []byte("x")}, "0010_roles.sql": {Data: []byte("y")},
		}, wantErr: "share version 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := loadMigrations(fs.FS(tt.files))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.File)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOperation(t *testing.T) {
	tests := map[string]string{
		"SELECT 1":                             "select",
		"  \n\tinsert into t values (1)":       "insert",
		"-- comment\nUPDATE t SET x = 1":       "update",
		"/* hint */ DELETE FROM t":             "delete",
		"(select 1) union (select 2)":          "select",
		"WITH x AS (SELECT 1) SELECT * FROM x": "with",
		"EXPLAIN SELECT 1":                     "other",
		"":                                     "other",
		"-- only a comment":                    "other",
	}
	for sql, want := range tests {
		if got := operation(sql); got != want {
			t.Errorf("operation(%q) = %q, want %q", sql, got, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	pool, _ := openTest(t, reg)
	if _, err := pool.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	var one int
	if err := pool.QueryRow(ctx, "SELECT $1::int", 1).Scan(&one); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "SELECT * FROM no_such_table"); err == nil {
		t.Fatal("want an error")
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	hist := byName[QueryDurationName]
	if hist == nil {
		t.Fatalf("%s not registered; have %v", QueryDurationName, byName)
	}
	counts := map[string]uint64{}
	for _, m := range hist.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		counts[strings.Join(labels, ",")] += m.GetHistogram().GetSampleCount()
	}
	if counts["operation=select,outcome=ok"] < 2 || counts["operation=select,outcome=error"] != 1 {
		t.Errorf("histogram samples = %v", counts)
	}
	for _, name := range []string{"corpintel_api_db_pool_acquired_conns", "corpintel_api_db_pool_idle_conns",
		"corpintel_api_db_pool_total_conns", "corpintel_api_db_pool_max_conns", "corpintel_api_db_pool_acquires_total"} {
		if byName[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	if got := byName["corpintel_api_db_pool_max_conns"].GetMetric()[0].GetGauge().GetValue(); got != 8 {
		t.Errorf("max_conns = %v, want 8", got)
	}

	// A second pool on the same registry is refused rather than silently merged.
	pg := testenv.Postgres(t)
	cfg := configFor(pg)
	cfg.Registerer = reg
	if p, err := Open(ctx, cfg); err == nil {
		p.Close()
		t.Error("second Open on one registry succeeded")
	}
	if _, err := NewQueryTracer(nil, nil, 0); err == nil {
		t.Error("NewQueryTracer without registry succeeded")
	}
}

func TestTracerLogsSlowQueries(t *testing.T) {
	tests := []struct {
		name    string
		took    time.Duration
		wantLog bool
	}{
		{"fast", 10 * time.Millisecond, false},
		{"slow", 1500 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			qt, err := NewQueryTracer(prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&buf, nil)), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			clock := time.Unix(0, 0)
			qt.now = func() time.Time { return clock }
			ctx := qt.start(context.Background(), "select", "SELECT secret_column FROM t WHERE id = $1")
			clock = clock.Add(tt.took)
			qt.end(ctx, nil)
			logged := strings.Contains(buf.String(), "slow query")
			if logged != tt.wantLog {
				t.Errorf("logged = %v, want %v: %s", logged, tt.wantLog, buf.String())
			}
		})
	}
}
