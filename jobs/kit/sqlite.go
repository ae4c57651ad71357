package kit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// SnapshotSQLite writes a consistent copy of the SQLite database at src to dst with
// VACUUM INTO: one read transaction, so a store the supervisor writes meanwhile (WAL
// mode) is copied as of one moment, and the copy is a plain database file without a WAL.
// dst must not exist.
func SnapshotSQLite(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("kit: state store %s: %w", src, err)
	}
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("kit: open %s: %w", src, err)
	}
	defer db.Close()
	// VACUUM INTO takes an expression: the path goes in as a bound parameter.
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("kit: copy state store %s to %s: %w", src, dst, err)
	}
	return nil
}

// CheckSQLite runs SQLite's integrity check on the database at path, opened read-only.
func CheckSQLite(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("kit: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return fmt.Errorf("kit: open %s: %w", path, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("kit: %s is not a readable SQLite database: %w", path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("kit: integrity check of %s: %w", path, err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("kit: integrity check of %s: %w", path, err)
	}
	if len(problems) > 0 {
		return errors.New("kit: " + path + " fails SQLite's integrity check: " + strings.Join(problems, "; "))
	}
	return nil
}
