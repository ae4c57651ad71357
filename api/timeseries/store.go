package timeseries

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// IngestResult counts what one batch did. Re-sending a batch changes nothing and
// reports every point as unchanged.
type IngestResult struct {
	Received  int `json:"received"`
	Inserted  int `json:"inserted"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	// Duplicates are points repeated within the batch; the last one counted.
	Duplicates int `json:"duplicates"`
}

// dedupe keeps the last value per (metric, time): a batch may repeat a point, but one
// INSERT … ON CONFLICT cannot touch a row twice.
func dedupe(points []Point) []Point {
	type key struct {
		metric string
		t      int64
	}
	idx := make(map[key]int, len(points))
	out := make([]Point, 0, len(points))
	for _, p := range points {
		p.Time = p.Time.UTC()
		k := key{p.Metric, p.Time.UnixMicro()}
		if i, ok := idx[k]; ok {
			out[i] = p
			continue
		}
		idx[k] = len(out)
		out = append(out, p)
	}
	return out
}

// timeBounds returns the earliest and latest time of points (not empty).
func timeBounds(points []Point) (lo, hi time.Time) {
	lo, hi = points[0].Time, points[0].Time
	for _, p := range points[1:] {
		if p.Time.Before(lo) {
			lo = p.Time
		}
		if p.Time.After(hi) {
			hi = p.Time
		}
	}
	return lo, hi
}

// months lists the distinct month starts the points touch, in order.
func months(points []Point) []time.Time {
	seen := map[time.Time]bool{}
	var out []time.Time
	for _, p := range points {
		m := MonthStart(p.Time)
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

const stagingDDL = `CREATE TEMP TABLE IF NOT EXISTS metrics_staging (
	metric text NOT NULL, time timestamptz NOT NULL, value double precision NOT NULL
) ON COMMIT DELETE ROWS`

// existingSQL counts the staged keys that are already stored; $2 and $3 bound the
// batch's times so that only the partitions it touches are probed. (RETURNING cannot
// tell inserts from updates on a partitioned table: there is no xmax there.)
const existingSQL = `SELECT count(*) FROM metrics_staging s
	JOIN financial_metrics f ON f.company_id = $1 AND f.metric = s.metric AND f.time = s.time
	WHERE f.time >= $2 AND f.time <= $3`

// insertSQL is the fast path for batches of new points only: a plain INSERT costs about
// half of a speculative INSERT … ON CONFLICT.
const insertSQL = `INSERT INTO financial_metrics (company_id, metric, time, value)
	SELECT $1, metric, time, value FROM metrics_staging`

// upsertSQL merges a batch that overlaps stored points. Unchanged values are skipped by
// the WHERE, so re-ingesting writes nothing and reports them as unchanged.
const upsertSQL = `INSERT INTO financial_metrics AS f (company_id, metric, time, value)
	SELECT $1, metric, time, value FROM metrics_staging
	ON CONFLICT (company_id, metric, time) DO UPDATE SET value = EXCLUDED.value
	WHERE f.value IS DISTINCT FROM EXCLUDED.value`

// ingest writes points for company id in one transaction: COPY straight into the table
// when every point is new; otherwise COPY into a session-local staging table, then one
// INSERT … ON CONFLICT DO UPDATE (or a plain INSERT when no point exists yet). A concurrent writer can store one of the keys between the probe and
// the plain INSERT; the unique violation then makes the batch retry as an upsert.
func ingest(ctx context.Context, pool *pgxpool.Pool, id string, points []Point) (IngestResult, error) {
	received := len(points)
	points = dedupe(points)
	res, err := ingestOnce(ctx, pool, id, points, false)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		res, err = ingestOnce(ctx, pool, id, points, true)
	}
	res.Received, res.Duplicates = received, received-len(points)
	return res, err
}

func ingestOnce(ctx context.Context, pool *pgxpool.Pool, id string, points []Point, upsert bool) (IngestResult, error) {
	res := IngestResult{Received: len(points)}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// The row lock makes a concurrent DELETE of the company wait for this batch; its
		// cascade trigger then removes these points too (see migration 0021).
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM companies WHERE id = $1 FOR KEY SHARE`, id).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return web.ErrNotFound()
		}
		if err != nil {
			return fmt.Errorf("lock company: %w", err)
		}
		if !upsert {
			// Fast path for new points (the common case: appending the latest values):
			// COPY straight into the table. A key that exists already fails the COPY
			// with a unique violation; its savepoint is rolled back and the batch takes
			// the staging path below, which merges.
			n, err := copyNew(ctx, tx, id, points)
			if err == nil {
				res.Inserted = int(n)
				return nil
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "23505" {
				return err
			}
		}
		if _, err := tx.Exec(ctx, stagingDDL); err != nil {
			return fmt.Errorf("staging table: %w", err)
		}
		src := pointRows(points, nil)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"metrics_staging"}, []string{"metric", "time", "value"}, src); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		var existed int64
		lo, hi := timeBounds(points)
		if err := tx.QueryRow(ctx, existingSQL, id, lo, hi).Scan(&existed); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		sql := upsertSQL
		if existed == 0 && !upsert {
			sql = insertSQL
		}
		tag, err := tx.Exec(ctx, sql, id)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		// Keys that did not exist were inserted; the rest of the written rows were updates.
		res.Inserted = len(points) - int(existed)
		res.Updated = int(tag.RowsAffected()) - res.Inserted
		return nil
	})
	if err != nil {
		var p *web.Problem
		if errors.As(err, &p) {
			return res, p
		}
		return res, fmt.Errorf("ingest metrics for %s: %w", id, err)
	}
	res.Unchanged = len(points) - res.Inserted - res.Updated
	return res, nil
}

// copyNew copies points into financial_metrics inside a savepoint, which it rolls back
// when the COPY fails.
func copyNew(ctx context.Context, tx pgx.Tx, id string, points []Point) (int64, error) {
	var uid pgtype.UUID
	if err := uid.Scan(id); err != nil {
		return 0, web.ErrNotFound()
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("savepoint: %w", err)
	}
	n, err := sp.CopyFrom(ctx, pgx.Identifier{"financial_metrics"}, []string{"company_id", "metric", "time", "value"}, pointRows(points, uid))
	if err != nil {
		if rerr := sp.Rollback(ctx); rerr != nil {
			return 0, fmt.Errorf("copy: %w (and rolling back its savepoint: %v)", err, rerr)
		}
		return 0, fmt.Errorf("copy: %w", err)
	}
	if err := sp.Commit(ctx); err != nil {
		return 0, fmt.Errorf("release savepoint: %w", err)
	}
	return n, nil
}

// pointRows is points as COPY rows (metric, time, value), led by company when not nil.
func pointRows(points []Point, company any) pgx.CopyFromSource {
	i := 0
	return pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(points) {
			return nil, nil
		}
		p := points[i]
		i++
		if company != nil {
			return []any{company, p.Metric, p.Time, *p.Value}, nil
		}
		return []any{p.Metric, p.Time, *p.Value}, nil
	})
}

// Bucket is one aggregated value.
type Bucket struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"`
	Count int64     `json:"count"`
}

// Series is the buckets of one metric.
type Series struct {
	Metric string   `json:"metric"`
	Points []Bucket `json:"points"`
}

// aggregateSQL returns the query for q on storage s. Both variants bucket with the same
// width and origin and define last as the value at the latest time in the bucket, so
// they return the same rows. Arguments: $1 company, $2 bucket width, $3 origin,
// $4 from, $5 to, [$6 metric].
func aggregateSQL(s Storage, q Query) string {
	bucket := "date_bin($2::interval, time, $3::timestamptz)"
	if s == Timescale {
		bucket = "time_bucket($2::interval, time, $3::timestamptz)"
	}
	var agg string
	switch q.Agg {
	case Min:
		agg = "min(value)"
	case Max:
		agg = "max(value)"
	case Sum:
		agg = "sum(value)"
	case Last:
		agg = "(array_agg(value ORDER BY time DESC))[1]"
		if s == Timescale {
			agg = "last(value, time)"
		}
	default:
		agg = "avg(value)"
	}
	sql := `SELECT metric, ` + bucket + ` AS bucket, ` + agg + `, count(*)
	FROM financial_metrics
	WHERE company_id = $1 AND time >= $4 AND time < $5`
	if q.Metric != "" {
		sql += ` AND metric = $6`
	}
	return sql + `
	GROUP BY metric, bucket ORDER BY metric, bucket`
}

// Result is the answer of GET /companies/{id}/metrics.
type Result struct {
	CompanyID string    `json:"company_id"`
	Bucket    string    `json:"bucket"`
	Agg       Agg       `json:"agg"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Series    []Series  `json:"series"`
}

func aggregate(ctx context.Context, pool *pgxpool.Pool, s Storage, id string, q Query) (Result, error) {
	res := Result{CompanyID: id, Bucket: FormatBucket(q.Bucket), Agg: q.Agg, From: q.From, To: q.To, Series: []Series{}}
	args := []any{id, q.Bucket, Origin, q.From, q.To}
	if q.Metric != "" {
		args = append(args, q.Metric)
	}
	rows, err := pool.Query(ctx, aggregateSQL(s, q), args...)
	if err != nil {
		return res, fmt.Errorf("aggregate metrics for %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var metric string
		var b Bucket
		if err := rows.Scan(&metric, &b.Time, &b.Value, &b.Count); err != nil {
			return res, fmt.Errorf("aggregate metrics for %s: scan: %w", id, err)
		}
		b.Time = b.Time.UTC()
		if n := len(res.Series); n == 0 || res.Series[n-1].Metric != metric {
			res.Series = append(res.Series, Series{Metric: metric})
		}
		last := &res.Series[len(res.Series)-1]
		last.Points = append(last.Points, b)
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("aggregate metrics for %s: %w", id, err)
	}
	if len(res.Series) == 0 {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM companies WHERE id = $1)`, id).Scan(&exists); err != nil {
			return res, fmt.Errorf("aggregate metrics for %s: %w", id, err)
		}
		if !exists {
			return res, web.ErrNotFound()
		}
	}
	return res, nil
}
