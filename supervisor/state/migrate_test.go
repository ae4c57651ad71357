package state

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

func rawDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A store written before migrations were numbered (user_version 0, the three tables
// already there, with data) is upgraded in place and keeps its data.
func TestMigrateStoreFromBeforeNumbering(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := rawDB(t, dir)
	if _, err := db.Exec(`CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE scale (service TEXT PRIMARY KEY, replicas INTEGER NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE jobs_done (job TEXT PRIMARY KEY, done_at TEXT NOT NULL);
INSERT INTO scale VALUES ('api', 3, 'x');`); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, ok, err := s.Scale(ctx, "api"); n != 3 || !ok || err != nil {
		t.Errorf("scale after upgrade = %d %v %v", n, ok, err)
	}
	ms, _ := migrations()
	if v, err := s.SchemaVersion(ctx); err != nil || v != ms[len(ms)-1].version {
		t.Errorf("schema version %d %v", v, err)
	}
	// Reopening applies nothing twice.
	s2, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := rawDB(t, dir).Exec(`PRAGMA user_version = 9999`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "schema version 9999 is newer than this corpintel knows") {
		t.Errorf("err = %v", err)
	}
}

func TestMigrationFilesWellFormed(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 3 || ms[0].version != 1 {
		t.Errorf("migrations %+v", ms)
	}
}

// Several processes opening a fresh store at once (supervisor and CLI) apply each
// migration once.
func TestConcurrentOpen(t *testing.T) {
	dir := t.TempDir()
	errs := make(chan error, 6)
	for range 6 {
		go func() {
			s, err := Open(context.Background(), dir)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 6 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
