// Package authtest gives the auth and users tests a migrated PostgreSQL database of
// their own and an API server with the auth and users modules mounted.
package authtest

import (
	"context"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/db"
	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool returns a pool on a fresh, migrated database (testenv: skips locally without
// PostgreSQL, fails under CI=true).
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := testenv.Postgres(t).Pool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return pool
}
