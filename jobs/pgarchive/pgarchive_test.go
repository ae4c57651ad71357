package pgarchive

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// pgTool finds a PostgreSQL client binary: PostgreSQL 15's directory first (the
// production version), then PATH.
func pgTool(t testing.TB, name string) string {
	t.Helper()
	for _, p := range []string{"/usr/lib/postgresql/15/bin/" + name} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath(name)
	testenv.Require(t, "postgres", err)
	return p
}

// run runs a PostgreSQL client against pg with the password in the environment (never
// in argv) and returns stdout.
func run(t testing.TB, pg *testenv.PG, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgTool(t, name), args...)
	cmd.Env = append(os.Environ(), "PGHOST="+pg.Host, "PGPORT="+strconv.Itoa(pg.Port),
		"PGUSER="+pg.AdminUser, "PGPASSWORD="+pg.AdminPassword, "PGDATABASE="+pg.DB)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, stderr.String())
	}
	return out
}

func exec1(t testing.TB, pg *testenv.PG, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// fixture fills a database with the cases row counting must get right: an empty
// table, values with tabs, newlines and backslashes (a value that is exactly `\.`, and
// an empty string in a one-column table), a quoted schema and table name, a
// partitioned table, a large object and a sequence.
const fixture = `
CREATE TABLE empty (id int);
CREATE TABLE plain (id int PRIMARY KEY, v text);
INSERT INTO plain SELECT g, 'row ' || g FROM generate_series(1, 1000) g;
CREATE TABLE tricky (v text);
INSERT INTO tricky VALUES (E'a\tb'), (E'line1\nline2'), (E'\\.'), (''), (E'\\'), (NULL), (E'end\\.');
CREATE SCHEMA "Odd.Schema";
CREATE TABLE "Odd.Schema"."We""ird" (x int);
INSERT INTO "Odd.Schema"."We""ird" SELECT generate_series(1, 3);
CREATE TABLE parted (d date, n int) PARTITION BY RANGE (d);
CREATE TABLE parted_2025 PARTITION OF parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE parted_2026 PARTITION OF parted FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO parted SELECT '2025-06-01'::date + g, g FROM generate_series(1, 400) g;
CREATE SEQUENCE seq; SELECT nextval('seq');
SELECT lo_from_bytea(0, 'large object');
`

var fixtureRows = map[string]int64{
	"public.empty": 0, "public.plain": 1000, "public.tricky": 7, `Odd.Schema.We"ird`: 3,
	"public.parted_2025": 213, "public.parted_2026": 187,
}

func fixtureDB(t *testing.T) *testenv.PG {
	t.Helper()
	pg := testenv.Postgres(t)
	exec1(t, pg, fixture)
	return pg
}

func TestScanCountsRowsOfARealDump(t *testing.T) {
	pg := fixtureDB(t)
	dump := run(t, pg, nil, "pg_dump", "-Fc", "-Z0")
	s, err := Scan(bytes.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	if s.Compressed {
		t.Error("Compressed = true for -Z0")
	}
	if s.Database != pg.DB || !strings.HasPrefix(s.ServerVersion, "15") || s.Version.Minor < 14 {
		t.Errorf("header: db %q server %q version %s", s.Database, s.ServerVersion, s.Version)
	}
	if s.Size != int64(len(dump)) {
		t.Errorf("Size = %d, want %d", s.Size, len(dump))
	}
	got := s.Rows()
	for k, want := range fixtureRows {
		if got[k] != want {
			t.Errorf("rows[%s] = %d, want %d", k, got[k], want)
		}
	}
	if len(got) != len(fixtureRows) {
		t.Errorf("tables = %v, want %v", got, fixtureRows)
	}
	if s.Blobs != 1 {
		t.Errorf("Blobs = %d, want 1", s.Blobs)
	}
	if s.TotalRows() != 1410 {
		t.Errorf("TotalRows = %d", s.TotalRows())
	}
}

func TestScanCompressedArchiveChecksStructureOnly(t *testing.T) {
	pg := fixtureDB(t)
	dump := run(t, pg, nil, "pg_dump", "-Fc", "-Z6")
	s, err := Scan(bytes.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Compressed || len(s.Rows()) != 0 || len(s.Tables) != len(fixtureRows) {
		t.Errorf("compressed %v rows %v tables %d", s.Compressed, s.Rows(), len(s.Tables))
	}
}

// A dump streamed through a pipe has no data offsets; FixOffsets writes them so that a
// parallel pg_restore seeks to each table, and the restored copy has every row.
func TestFixOffsetsThenParallelRestore(t *testing.T) {
	pg := fixtureDB(t)
	dump := run(t, pg, nil, "pg_dump", "-Fc", "-Z0")
	s, err := Scan(bytes.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "db.dump")
	if err := os.WriteFile(path, dump, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := FixOffsets(f, s); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fixed, _ := os.ReadFile(path)
	if bytes.Equal(fixed, dump) {
		t.Fatal("FixOffsets changed nothing")
	}
	// Still the same archive for our own reader, now with every data offset set.
	s2, err := Scan(bytes.NewReader(fixed))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range s2.Entries {
		if e.HasData && e.dataState != offsetSet {
			t.Errorf("entry %d %s %s: offset state %d", e.DumpID, e.Desc, e.Tag, e.dataState)
		}
	}
	target := testenv.Postgres(t)
	run(t, target, nil, "pg_restore", "-j", "2", "--no-owner", "-d", target.DB, path)
	conn, err := pgx.Connect(context.Background(), target.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for k, want := range map[string]int64{"plain": 1000, "tricky": 7, `"Odd.Schema"."We""ird"`: 3, "parted": 400} {
		var n int64
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+k).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("restored %s: %d rows, want %d", k, n, want)
		}
	}
}

func TestScanSQLCountsRows(t *testing.T) {
	pg := fixtureDB(t)
	dump := run(t, pg, nil, "pg_dump", "-Fp")
	s, err := ScanSQL(bytes.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	got := s.Rows()
	for k, want := range fixtureRows {
		if got[k] != want {
			t.Errorf("rows[%s] = %d, want %d", k, got[k], want)
		}
	}
	// Cut short: refused.
	if _, err := ScanSQL(bytes.NewReader(dump[:len(dump)/2])); !errors.Is(err, ErrFormat) {
		t.Errorf("half a plain dump: err = %v, want ErrFormat", err)
	}
	cut := bytes.Index(dump, []byte("row 500"))
	if _, err := ScanSQL(bytes.NewReader(dump[:cut])); err == nil || !strings.Contains(err.Error(), "inside the data") {
		t.Errorf("dump cut inside COPY data: err = %v", err)
	}
	if _, err := ScanSQL(strings.NewReader("")); !errors.Is(err, ErrFormat) {
		t.Errorf("empty input: err = %v", err)
	}
}

func TestSplitQualified(t *testing.T) {
	tests := []struct{ in, schema, name string }{
		{"public.t", "public", "t"},
		{`"Odd.Schema"."We""ird"`, "Odd.Schema", `We"ird`},
		{"t", "", "t"},
	}
	for _, tt := range tests {
		s, n := splitQualified(tt.in)
		if s != tt.schema || n != tt.name {
			t.Errorf("splitQualified(%q) = %q, %q", tt.in, s, n)
		}
	}
}

// Every truncation of a real archive and a sample of bit flips are refused with a
// format error (or, for flips inside COPY text, read as a valid archive), never a
// panic or a hang.
func TestScanHostileInput(t *testing.T) {
	pg := testenv.Postgres(t)
	exec1(t, pg, "CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g;")
	dump := run(t, pg, nil, "pg_dump", "-Fc", "-Z0")
	for n := 0; n < len(dump); n++ {
		if _, err := Scan(bytes.NewReader(dump[:n])); !errors.Is(err, ErrFormat) {
			t.Fatalf("truncated to %d of %d bytes: err = %v, want ErrFormat", n, len(dump), err)
		}
	}
	for i := 0; i < len(dump); i += 7 {
		b := bytes.Clone(dump)
		b[i] ^= 0x5a
		_, err := Scan(bytes.NewReader(b))
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("flip at %d: err = %v, want ErrFormat", i, err)
		}
	}
	// Trailing garbage after the last block is not an archive pg_dump wrote.
	if _, err := Scan(bytes.NewReader(append(bytes.Clone(dump), 9, 9, 9))); !errors.Is(err, ErrFormat) {
		t.Errorf("trailing garbage: err = %v", err)
	}
	if _, err := Scan(strings.NewReader("--\n-- PostgreSQL database dump\n")); err == nil || !strings.Contains(err.Error(), "PGDMP") {
		t.Errorf("plain SQL: err = %v", err)
	}
}

// A declared string length of a gigabyte in a 30-byte file allocates nothing big.
func TestScanHugeDeclaredLength(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("PGDMP")
	b.Write([]byte{1, 14, 0, 4, 8, 1})
	b.Write([]byte{0, 0, 0, 0, 0}) // compression 0
	for i := 0; i < 7; i++ {
		b.Write([]byte{0, 0, 0, 0, 0})
	}
	b.Write([]byte{0, 0xff, 0xff, 0xff, 0x0f}) // database name: 268 MB
	b.WriteString("short")
	if _, err := Scan(&b); !errors.Is(err, ErrFormat) {
		t.Errorf("err = %v", err)
	}
	var huge bytes.Buffer
	huge.Write(b.Bytes()[:5+6+5+35])
	huge.Write([]byte{0, 0xff, 0xff, 0xff, 0x7f}) // beyond the limit
	if _, err := Scan(&huge); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("err = %v", err)
	}
}

func FuzzScan(f *testing.F) {
	f.Add([]byte("PGDMP\x01\x0e\x00\x04\x08\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Scan(bytes.NewReader(b))
		if err == nil && s.Size != int64(len(b)) {
			t.Fatalf("size %d of %d", s.Size, len(b))
		}
	})
}

func FuzzScanSQL(f *testing.F) {
	f.Add([]byte("COPY public.t (a) FROM stdin;\n1\n\\.\n-- PostgreSQL database dump complete\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ScanSQL(bytes.NewReader(b))
	})
}
