// Package timeseries is the financial metrics API: bulk ingest of up to 10 000 points per
// request (COPY into a staging table, then an idempotent upsert) and bucketed
// aggregations (avg, min, max, sum, last). Storage is a TimescaleDB hypertable when the
// extension was present at migration time, otherwise native monthly range partitions
// that this package creates ahead of time and on demand. Aggregations are cached per
// company and invalidated by ingest.
package timeseries

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/cache"
	"github.com/corpintel/corpintel/api/companies"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
)

// QueryTTL bounds how long an aggregation stays cached (ingest invalidates it).
const QueryTTL = 5 * time.Minute

// MonthsAhead is how many months of partitions Prepare creates past the current one.
const MonthsAhead = 3

// Module serves /companies/{id}/metrics.
type Module struct {
	pool  *pgxpool.Pool
	parts *Partitions
	cache *cache.Cache
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	storage Storage
	known   bool // storage detected
}

// New returns the metrics module. The storage (hypertable or native partitions) is read
// from the catalog on first use; call Prepare at start-up to create partitions ahead.
func New(d app.Deps) *Module {
	d = d.WithDefaults()
	return &Module{pool: d.Pool, parts: NewPartitions(d.Pool, d.Log), cache: d.Cache, log: d.Log, now: d.Now}
}

// Prepare detects the storage and, for native partitions, creates the partitions of the
// current month and the next MonthsAhead months, so the ingest path rarely waits on DDL.
// Run it at start-up after migrations; it is idempotent and safe on every replica.
func Prepare(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, now time.Time) (Storage, error) {
	st, err := DetectStorage(ctx, pool)
	if err != nil {
		return st, fmt.Errorf("timeseries: %w", err)
	}
	if st == Native {
		if err := NewPartitions(pool, log).EnsureAhead(ctx, now, MonthsAhead); err != nil {
			return st, fmt.Errorf("timeseries: %w", err)
		}
	}
	log.InfoContext(ctx, "metrics storage ready", "storage", st.String())
	return st, nil
}

// Storage reports how metrics are stored (detected on first use).
func (m *Module) Storage(ctx context.Context) (Storage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.known {
		st, err := DetectStorage(ctx, m.pool)
		if err != nil {
			return st, err
		}
		m.storage, m.known = st, true
	}
	return m.storage, nil
}

var _ web.Module = (*Module)(nil)

// Routes implements web.Module.
func (m *Module) Routes() []web.Route {
	return []web.Route{
		{Method: http.MethodPost, Path: "/companies/:id/metrics", Perm: rbac.MetricsWrite, Tag: "metrics",
			Audit: "metrics.ingest", MaxBody: MaxIngestBody, Handler: m.ingest,
			Summary: "Ingest up to 10000 metric points (idempotent on company, metric, time)",
			Request: IngestRequest{}, Response: IngestResult{}},
		{Method: http.MethodGet, Path: "/companies/:id/metrics", Perm: rbac.MetricsRead, Tag: "metrics",
			Handler: m.query, Response: Result{},
			Summary: "Aggregate a company's metrics into time buckets",
			Query: []web.Param{
				{Name: "metric", Type: "string", Description: "one metric (default: all)"},
				{Name: "from", Type: "string", Description: "RFC 3339 or date, inclusive (default: a year before to)"},
				{Name: "to", Type: "string", Description: "RFC 3339 or date, exclusive (default: end of the current bucket)"},
				{Name: "bucket", Type: "string", Description: "bucket width: 1h, 1d, 7d, 30d, … (default 1d)"},
				{Name: "agg", Type: "string", Description: "avg, min, max, sum or last (default avg)"},
			}},
	}
}

func (m *Module) ingest(c echo.Context) error {
	id := c.Param("id")
	if !web.ValidUUID(id) {
		return web.ErrNotFound()
	}
	web.SetAuditTarget(c, "company:"+id)
	req, err := DecodeIngest(c.Request(), m.now())
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	st, err := m.Storage(ctx)
	if err != nil {
		return err
	}
	if st == Native {
		if err := m.parts.Ensure(ctx, months(req.Points)); err != nil {
			return err
		}
	}
	res, err := ingest(ctx, m.pool, id, req.Points)
	if err != nil {
		return err
	}
	if err := m.cache.Bump(context.WithoutCancel(ctx), companies.MetricsNamespace(id)); err != nil {
		m.log.WarnContext(ctx, "cache invalidation failed", "err", err)
	}
	web.SetAuditDetail(c, map[string]any{"received": res.Received, "inserted": res.Inserted, "updated": res.Updated})
	return web.JSON(c, http.StatusOK, res)
}

func (m *Module) query(c echo.Context) error {
	id := c.Param("id")
	if !web.ValidUUID(id) {
		return web.ErrNotFound()
	}
	q, err := ParseQuery(c.QueryParams(), m.now())
	if err != nil {
		return err
	}
	st, err := m.Storage(c.Request().Context())
	if err != nil {
		return err
	}
	b, err := cache.GetOrLoadJSONIn(c.Request().Context(), m.cache, companies.MetricsNamespace(id), q.cacheKey(), QueryTTL,
		func(ctx context.Context) (Result, error) { return aggregate(ctx, m.pool, st, id, q) })
	if err != nil {
		return err
	}
	return web.JSONBytes(c, http.StatusOK, b)
}

func (q Query) cacheKey() string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s|%d|%d|%d|%s", q.Metric, q.From.UnixNano(), q.To.UnixNano(), q.Bucket, q.Agg))
	return hex.EncodeToString(h[:16])
}
