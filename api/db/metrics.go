package db

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// QueryDurationName is the histogram the "Database Slow" alert (p95 > 1 s) reads.
const QueryDurationName = "corpintel_api_db_query_duration_seconds"

// QueryTracer records every query, batch and COPY into the query-duration histogram,
// labelled by operation (first SQL keyword: select, insert, …, copy, batch, other) and
// outcome (ok, error), and logs slow ones without their arguments.
type QueryTracer struct {
	hist *prometheus.HistogramVec
	log  *slog.Logger
	slow time.Duration
	now  func() time.Time
}

var (
	_ pgx.QueryTracer    = (*QueryTracer)(nil)
	_ pgx.BatchTracer    = (*QueryTracer)(nil)
	_ pgx.CopyFromTracer = (*QueryTracer)(nil)
)

// NewQueryTracer creates the histogram on reg. log may be nil; slow <= 0 disables
// slow-query logging.
func NewQueryTracer(reg prometheus.Registerer, log *slog.Logger, slow time.Duration) (*QueryTracer, error) {
	if reg == nil {
		return nil, errNoRegisterer
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    QueryDurationName,
		Help:    "Duration of PostgreSQL queries issued by the API, by operation and outcome.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"operation", "outcome"})
	if err := reg.Register(hist); err != nil {
		return nil, err
	}
	return &QueryTracer{hist: hist, log: log, slow: slow, now: time.Now}, nil
}

type traceKey struct{}

type traceStart struct {
	at  time.Time
	op  string
	sql string
}

func (t *QueryTracer) start(ctx context.Context, op, sql string) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{at: t.now(), op: op, sql: sql})
}

func (t *QueryTracer) end(ctx context.Context, err error) {
	s, ok := ctx.Value(traceKey{}).(traceStart)
	if !ok {
		return
	}
	d := t.now().Sub(s.at)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	t.hist.WithLabelValues(s.op, outcome).Observe(d.Seconds())
	if t.slow > 0 && d >= t.slow {
		sql := s.sql
		if len(sql) > 200 {
			sql = sql[:200] + "…"
		}
		t.log.LogAttrs(ctx, slog.LevelWarn, "slow query",
			slog.String("operation", s.op), slog.Duration("duration", d), slog.String("sql", sql))
	}
}

// TraceQueryStart implements pgx.QueryTracer.
func (t *QueryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return t.start(ctx, operation(data.SQL), data.SQL)
}

// TraceQueryEnd implements pgx.QueryTracer.
func (t *QueryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	t.end(ctx, data.Err)
}

// TraceBatchStart implements pgx.BatchTracer; a batch counts as one "batch" observation.
func (t *QueryTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	return t.start(ctx, "batch", "batch")
}

// TraceBatchQuery implements pgx.BatchTracer.
func (t *QueryTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd implements pgx.BatchTracer.
func (t *QueryTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	t.end(ctx, data.Err)
}

// TraceCopyFromStart implements pgx.CopyFromTracer.
func (t *QueryTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	return t.start(ctx, "copy", "COPY "+data.TableName.Sanitize())
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (t *QueryTracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromEndData) {
	t.end(ctx, data.Err)
}

// knownOps bounds the operation label's values.
var knownOps = map[string]bool{
	"select": true, "insert": true, "update": true, "delete": true, "with": true,
	"copy": true, "begin": true, "commit": true, "rollback": true, "savepoint": true,
	"release": true, "set": true, "create": true, "alter": true, "drop": true,
	"truncate": true, "lock": true, "listen": true, "notify": true, "values": true,
}

// operation returns the lower-cased first keyword of sql (skipping comments), or "other".
func operation(sql string) string {
	s := sql
	for {
		s = strings.TrimLeft(s, " \t\r\n(")
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return "other"
			}
			s = s[i+1:]
			continue
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s, "*/")
			if i < 0 {
				return "other"
			}
			s = s[i+2:]
			continue
		}
		break
	}
	end := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	})
	if end < 0 {
		end = len(s)
	}
	op := strings.ToLower(s[:end])
	if knownOps[op] {
		return op
	}
	return "other"
}

// PoolCollector exports pgxpool statistics.
type PoolCollector struct {
	pool *pgxpool.Pool

	acquired, idle, total, maxConns, constructing  *prometheus.Desc
	acquires, emptyAcquires, canceled, acquireSecs *prometheus.Desc
}

var _ prometheus.Collector = (*PoolCollector)(nil)

// NewPoolCollector returns a collector of pool's statistics
// (corpintel_api_db_pool_*).
func NewPoolCollector(pool *pgxpool.Pool) *PoolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("corpintel_api_db_pool_"+name, help, nil, nil)
	}
	return &PoolCollector{
		pool:          pool,
		acquired:      d("acquired_conns", "Connections currently in use."),
		idle:          d("idle_conns", "Idle connections in the pool."),
		total:         d("total_conns", "Open connections (acquired, idle and being constructed)."),
		maxConns:      d("max_conns", "Maximum size of the pool."),
		constructing:  d("constructing_conns", "Connections being established."),
		acquires:      d("acquires_total", "Successful connection acquisitions."),
		emptyAcquires: d("empty_acquires_total", "Acquisitions that had to wait because the pool was empty."),
		canceled:      d("canceled_acquires_total", "Acquisitions canceled by their context."),
		acquireSecs:   d("acquire_duration_seconds_total", "Total time spent waiting for connections."),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.maxConns, c.constructing,
		c.acquires, c.emptyAcquires, c.canceled, c.acquireSecs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.acquired, float64(s.AcquiredConns()))
	gauge(c.idle, float64(s.IdleConns()))
	gauge(c.total, float64(s.TotalConns()))
	gauge(c.maxConns, float64(s.MaxConns()))
	gauge(c.constructing, float64(s.ConstructingConns()))
	counter(c.acquires, float64(s.AcquireCount()))
	counter(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	counter(c.canceled, float64(s.CanceledAcquireCount()))
	counter(c.acquireSecs, s.AcquireDuration().Seconds())
}
