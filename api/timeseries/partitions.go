package timeseries

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Storage is how financial_metrics is stored; migration 0021 decides it once.
type Storage int

// Storage kinds.
const (
	// Native is a table partitioned by month with a default partition (date_bin).
	Native Storage = iota
	// Timescale is a TimescaleDB hypertable (time_bucket).
	Timescale
)

func (s Storage) String() string {
	if s == Timescale {
		return "timescaledb"
	}
	return "native-partitions"
}

// DetectStorage reads from the catalog how financial_metrics was created.
func DetectStorage(ctx context.Context, pool *pgxpool.Pool) (Storage, error) {
	var kind string
	err := pool.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = to_regclass('financial_metrics')`).Scan(&kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return Native, errors.New("table financial_metrics does not exist; run `corpintel api migrate`")
	}
	if err != nil {
		return Native, fmt.Errorf("detect metrics storage: %w", err)
	}
	if kind == "p" {
		return Native, nil
	}
	return Timescale, nil
}

// partitionLockKey serializes partition DDL across replicas (pg_advisory_xact_lock).
const partitionLockKey int64 = 0x636f7270_0021

// MonthStart returns the first instant of t's month (UTC).
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// PartitionName is the name of the partition holding month m.
func PartitionName(m time.Time) string {
	return fmt.Sprintf("financial_metrics_y%04dm%02d", m.Year(), int(m.Month()))
}

// Partitions creates the monthly partitions of the native storage on demand. It
// remembers which months exist so the ingest path asks PostgreSQL only for new months.
// Creation is idempotent and safe across replicas: it runs under a transaction-scoped
// advisory lock and re-checks the catalog inside it.
type Partitions struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	mu   sync.Mutex
	have map[time.Time]bool
}

// NewPartitions returns a partition manager for pool.
func NewPartitions(pool *pgxpool.Pool, log *slog.Logger) *Partitions {
	return &Partitions{pool: pool, log: log, have: map[time.Time]bool{}}
}

// EnsureRange makes sure a partition exists for every month in [from, to].
func (p *Partitions) EnsureRange(ctx context.Context, from, to time.Time) error {
	var months []time.Time
	for m := MonthStart(from); !m.After(to); m = m.AddDate(0, 1, 0) {
		months = append(months, m)
	}
	return p.Ensure(ctx, months)
}

// EnsureAhead creates the partitions of the current month and n months after it (the
// API calls it at start-up so that the normal ingest path never waits on DDL).
func (p *Partitions) EnsureAhead(ctx context.Context, now time.Time, n int) error {
	return p.EnsureRange(ctx, now, MonthStart(now).AddDate(0, n, 0))
}

// Ensure makes sure a partition exists for each month start in months.
func (p *Partitions) Ensure(ctx context.Context, months []time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var missing []time.Time
	for _, m := range months {
		m = MonthStart(m)
		if !p.have[m] {
			missing = append(missing, m)
		}
	}
	for _, m := range missing {
		created, err := p.create(ctx, m)
		if err != nil {
			return err
		}
		if created {
			p.log.InfoContext(ctx, "created metrics partition", "partition", PartitionName(m))
		}
		p.have[m] = true
	}
	return nil
}

// create makes the partition of month m unless it exists. Rows that landed in the
// default partition for that month are moved into the new partition first, so ATTACH
// (which checks the default partition holds none of the range) cannot fail on them.
// CREATE + ATTACH takes only SHARE UPDATE EXCLUSIVE on the parent, so concurrent
// reads and inserts into other months continue.
func (p *Partitions) create(ctx context.Context, m time.Time) (bool, error) {
	name := PartitionName(m)
	from, to := m, m.AddDate(0, 1, 0)
	var created bool
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partitionLockKey); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		ident := pgx.Identifier{name}.Sanitize()
		lo, hi := from.Format(time.RFC3339), to.Format(time.RFC3339)
		stmts := []string{
			`CREATE TABLE ` + ident + ` (LIKE financial_metrics INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
			`WITH moved AS (DELETE FROM financial_metrics_default WHERE time >= '` + lo + `' AND time < '` + hi + `' RETURNING *)
			 INSERT INTO ` + ident + ` SELECT * FROM moved`,
			`ALTER TABLE financial_metrics ATTACH PARTITION ` + ident + ` FOR VALUES FROM ('` + lo + `') TO ('` + hi + `')`,
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%.40s…: %w", s, err)
			}
		}
		created = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("create metrics partition %s: %w", name, err)
	}
	return created, nil
}
