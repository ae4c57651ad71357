package db

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles holds the schema, one file per step, named NNNN_name.sql. Number ranges
// per area: 0001–0009 platform (extensions, helpers), 0010–0019 auth/users,
// 0020–0029 companies, 0030–0039 metrics, 0040–0049 documents, 0050–0059 audit.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one schema step.
type Migration struct {
	Version  int
	Name     string
	File     string // e.g. 0001_extensions.sql
	SQL      string
	Checksum string // hex SHA-256 of the file
}

// migrationLockKey is the pg_advisory_lock key serializing migrations across replicas and
// jobs ("corpintel" in ASCII).
const migrationLockKey int64 = 0x636f7270696e74

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migrations returns the embedded migrations in order.
func Migrations() ([]Migration, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return loadMigrations(sub)
}

// loadMigrations reads NNNN_name.sql files from the root of fsys. Any other .sql file
// name and any duplicate number is an error, so a typo never silently skips a step.
func loadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration %s: name must look like NNNN_name.sql (lower case)", e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, e.Name(), version)
		}
		seen[version] = e.Name()
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(body)
		ms = append(ms, Migration{Version: version, Name: m[2], File: e.Name(), SQL: string(body), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Migrate applies the embedded migrations that the database lacks, in order, each in its
// own transaction, recording them in schema_migrations. It holds a session advisory lock
// meanwhile, so replicas and jobs racing each other apply every step exactly once (the
// others wait, then find nothing to do). An applied migration whose file changed, or an
// applied version this binary does not know, is an error: the binary and the database
// disagree about the schema.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	return migrate(ctx, pool, log, ms)
}

func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, ms []Migration) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	// Waiting for the lock and long DDL must not hit the pool's statement_timeout.
	if _, err := conn.Exec(ctx, "SET statement_timeout = 0"); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return fmt.Errorf("migrate: take advisory lock: %w", err)
	}
	defer func() {
		// Unlock even when ctx is done; if that fails, drop the session so the lock dies with it.
		uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, uerr := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrationLockKey)
		if uerr == nil {
			_, uerr = conn.Exec(uctx, "RESET statement_timeout")
		}
		if uerr != nil {
			// Release after Hijack is a no-op.
			_ = conn.Hijack().Close(uctx)
		}
	}()

	const ddl = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now(),
		checksum   text NOT NULL
	)`
	if _, err := conn.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	applied, err := appliedMigrations(ctx, conn.Conn())
	if err != nil {
		return err
	}
	known := map[int]Migration{}
	for _, m := range ms {
		known[m.Version] = m
		if a, ok := applied[m.Version]; ok && a.Checksum != m.Checksum {
			return fmt.Errorf("migrate: %s was applied on %s with checksum %s but the file now has %s: applied migrations must never change; add a new migration instead",
				m.File, a.AppliedAt.UTC().Format(time.RFC3339), a.Checksum, m.Checksum)
		}
	}
	var unknown []string
	for v, a := range applied {
		if _, ok := known[v]; !ok {
			unknown = append(unknown, fmt.Sprintf("%04d_%s", v, a.Name))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("migrate: the database has migrations this binary does not know (%s): it was migrated by a newer version", strings.Join(unknown, ", "))
	}

	n := 0
	for _, m := range ms {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		start := time.Now()
		if err := applyMigration(ctx, conn.Conn(), m); err != nil {
			return err
		}
		n++
		log.Info("applied migration", "version", m.Version, "name", m.Name, "duration", time.Since(start))
	}
	log.Info("migrations up to date", "applied", n, "total", len(ms))
	return nil
}

type appliedMigration struct {
	Name      string
	Checksum  string
	AppliedAt time.Time
}

func appliedMigrations(ctx context.Context, conn *pgx.Conn) (map[int]appliedMigration, error) {
	rows, err := conn.Query(ctx, "SELECT version, name, checksum, applied_at FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[int]appliedMigration{}
	for rows.Next() {
		var v int
		var a appliedMigration
		if err := rows.Scan(&v, &a.Name, &a.Checksum, &a.AppliedAt); err != nil {
			return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		applied[v] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	return applied, nil
}

// applyMigration runs one file and records it, in one transaction.
func applyMigration(ctx context.Context, conn *pgx.Conn, m Migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: begin: %w", m.File, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// No arguments: pgx uses the simple protocol, so a file may hold many statements.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return fmt.Errorf("migrate %s%s: %w (rolled back)", m.File, errorLine(m.SQL, err), err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
		m.Version, m.Name, m.Checksum); err != nil {
		return fmt.Errorf("migrate %s: record: %w", m.File, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate %s: commit: %w", m.File, err)
	}
	return nil
}

// errorLine turns the server's error position (a 1-based character offset) into ":LINE".
func errorLine(sql string, err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Position <= 0 {
		return ""
	}
	runes := []rune(sql)
	pos := min(int(pgErr.Position), len(runes))
	return ":" + strconv.Itoa(1+strings.Count(string(runes[:pos-1]), "\n"))
}
