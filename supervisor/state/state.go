// Package state is the supervisor's embedded store: one SQLite file (modernc.org/sqlite,
// pure Go, WAL mode) in the state directory, readable while PostgreSQL is down. Its
// schema is a list of numbered migrations (migrations/NNNN_name.sql, applied in order and
// recorded in SQLite's user_version); a store whose schema is newer than this binary is
// refused rather than guessed at.
//
// It holds the desired scale per service, the run-once jobs done, whether the operator
// stopped the stack, held recreates, the operation lock and journal, and a small
// key/value table. Its consumers declare the slices of it they use as interfaces.
//
// Number ranges per area: 0001–0009 supervisor core, 0010–0019 alerts, 0020–0029
// console, 0030–0039 backups and restores.
package state

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the store's file inside the state directory.
const FileName = "state.db"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is the supervisor's state store. It is safe for concurrent use, also by several
// processes (the CLI opens it when no supervisor runs).
type Store struct {
	db  *sql.DB
	now func() time.Time
}

var migrationName = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

// migration is one schema step.
type migration struct {
	version int
	file    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("state: migration file %q is not named NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if len(out) > 0 && out[len(out)-1].version >= v {
			return nil, fmt.Errorf("state: migration %s is out of order or duplicate", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, file: e.Name(), sql: string(b)})
	}
	return out, nil
}

// Open opens (creating if needed) the store in dir (created 0700 if missing) and applies
// the migrations it lacks.
func Open(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: create %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	s := &Store{db: db, now: time.Now}
	if err := s.migrateRetrying(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: chmod %s: %w", path, err)
	}
	return s, nil
}

// migrateRetrying runs migrate, trying again for a while when another process holds
// the database (switching a new file to WAL mode takes a lock SQLite does not wait for).
func (s *Store) migrateRetrying(ctx context.Context) error {
	wait := 10 * time.Millisecond
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := s.migrate(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

func isBusy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}

// migrate applies the missing migrations. Several processes may open one store at
// once (the supervisor and a CLI verb): each migration runs in an IMMEDIATE
// transaction that re-reads the version under SQLite's write lock, so a migration is
// applied exactly once.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, m := range ms {
		if err := applyMigration(ctx, conn, m, ms[len(ms)-1].version); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, m migration, latest int) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("migration %s: lock the store: %w", m.file, err)
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	var have int
	if err := conn.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&have); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if have > latest {
		return fmt.Errorf("schema version %d is newer than this corpintel knows (%d): run the newer corpintel, or restore the state dir from the backup taken before the upgrade", have, latest)
	}
	if m.version <= have {
		_, err := conn.ExecContext(ctx, "COMMIT")
		return err
	}
	if _, err := conn.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: %w", m.file, err)
	}
	// PRAGMA takes no parameters; the version is a number we parsed.
	if _, err := conn.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(m.version)); err != nil {
		return fmt.Errorf("migration %s: record version: %w", m.file, err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("migration %s: %w", m.file, err)
	}
	return nil
}

// SchemaVersion is the number of the last migration applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
	return v, err
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// DB is the underlying database, for components that keep their own tables here (their
// schema comes as a migration of this package).
func (s *Store) DB() *sql.DB { return s.db }

// SetClock replaces the clock that stamps records (tests).
func (s *Store) SetClock(now func() time.Time) { s.now = now }

func (s *Store) stamp() string { return formatTime(s.now()) }

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// Writable checks that the store accepts a write now (the supervisor's self-check for
// the systemd watchdog): a full disk or a read-only remount fails it.
func (s *Store) Writable(ctx context.Context) error {
	return s.Set(ctx, "selfcheck", s.stamp())
}

// Get returns a value; ok is false when the key is absent.
func (s *Store) Get(ctx context.Context, key string) (value string, ok bool, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT value FROM kv WHERE key = ?`, key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("state: get %s: %w", key, err)
	}
	return value, true, nil
}

// Set stores a value.
func (s *Store) Set(ctx context.Context, key, value string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO kv(key, value, updated_at) VALUES(?, ?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, key, value, s.stamp())
	if err != nil {
		return fmt.Errorf("state: set %s: %w", key, err)
	}
	return nil
}

// Delete removes a key (absent is fine).
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM kv WHERE key = ?`, key); err != nil {
		return fmt.Errorf("state: delete %s: %w", key, err)
	}
	return nil
}
