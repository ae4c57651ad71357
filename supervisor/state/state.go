// Package state is the supervisor's embedded store: one SQLite file (modernc.org/sqlite,
// pure Go, WAL mode) in the state directory, readable while PostgreSQL is down. It holds
// the desired scale per service (set at run time, survives restarts), the run-once jobs
// already done, and a small key/value table. Other components add their own tables
// through DB.
package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the store's file inside the state directory.
const FileName = "state.db"

// Store is the supervisor's state store. It is safe for concurrent use.
type Store struct {
	db *sql.DB
}

const schema = `
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scale (service TEXT PRIMARY KEY, replicas INTEGER NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs_done (job TEXT PRIMARY KEY, done_at TEXT NOT NULL);
`

// Open opens (creating if needed) the store in dir (created 0700 if missing).
func Open(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: create %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: init %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: chmod %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// DB is the underlying database, for components that keep their own tables here.
func (s *Store) DB() *sql.DB { return s.db }

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// Scale returns the stored desired replica count of a service; ok is false when none
// was set (the config's value applies).
func (s *Store) Scale(ctx context.Context, service string) (n int, ok bool, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT replicas FROM scale WHERE service = ?`, service).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("state: read scale of %s: %w", service, err)
	}
	return n, true, nil
}

// SetScale stores the desired replica count of a service.
func (s *Store) SetScale(ctx context.Context, service string, n int) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO scale(service, replicas, updated_at) VALUES(?, ?, ?)
		ON CONFLICT(service) DO UPDATE SET replicas = excluded.replicas, updated_at = excluded.updated_at`, service, n, now())
	if err != nil {
		return fmt.Errorf("state: store scale of %s: %w", service, err)
	}
	return nil
}

// JobsDone returns the run-once jobs recorded as done.
func (s *Store) JobsDone(ctx context.Context) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT job FROM jobs_done`)
	if err != nil {
		return nil, fmt.Errorf("state: read jobs: %w", err)
	}
	defer rows.Close()
	done := map[string]bool{}
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("state: read jobs: %w", err)
		}
		done[j] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: read jobs: %w", err)
	}
	return done, nil
}

// MarkJobDone records a run-once job as done.
func (s *Store) MarkJobDone(ctx context.Context, job string) error {
	if _, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO jobs_done(job, done_at) VALUES(?, ?)`, job, now()); err != nil {
		return fmt.Errorf("state: record job %s: %w", job, err)
	}
	return nil
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
		ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, key, value, now())
	if err != nil {
		return fmt.Errorf("state: set %s: %w", key, err)
	}
	return nil
}
