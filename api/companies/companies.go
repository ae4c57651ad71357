// Package companies is the API's company resource: CRUD, keyset-paginated lists with
// sector/country filters, and search by name or ticker (trigram similarity when pg_trgm
// is installed, ILIKE otherwise). Reads are cached in Redis (cache-aside) and every
// write invalidates the company's key and bumps the list generation.
package companies

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/cache"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/labstack/echo/v4"
)

// Cache lifetimes. Writes invalidate explicitly; the TTL only bounds how long a value
// survives an invalidation lost to a Redis outage.
const (
	ItemTTL = 5 * time.Minute
	ListTTL = 2 * time.Minute
)

// listNamespace is the generation namespace of every list and search result.
const listNamespace = "companies:list"

// InvalidateLists drops every cached list and search page (e.g. after `corpintel api
// seed` wrote companies directly).
func InvalidateLists(ctx context.Context, c *cache.Cache) error {
	return c.Bump(ctx, listNamespace)
}

// ItemKey is the cache key of one company.
func ItemKey(id string) string { return "companies:id:" + id }

// MetricsNamespace is the cache generation namespace of a company's metric queries
// (api/timeseries bumps it on ingest; deleting the company bumps it too).
func MetricsNamespace(id string) string { return "metrics:" + id }

// Module serves /companies.
type Module struct {
	st    store
	cache *cache.Cache
	log   *slog.Logger
	now   func() time.Time
}

// New returns the companies module. Whether pg_trgm is installed is checked on the first
// search.
func New(d app.Deps) *Module {
	d = d.WithDefaults()
	return &Module{st: store{pool: d.Pool, log: d.Log}, cache: d.Cache, log: d.Log, now: d.Now}
}

var _ web.Module = (*Module)(nil)

// Routes implements web.Module.
func (m *Module) Routes() []web.Route {
	return []web.Route{
		{Method: http.MethodGet, Path: "/companies", Perm: rbac.CompaniesRead, Tag: "companies",
			Summary: "List or search companies (cursor pagination, sorted by name)", Handler: m.list, Response: Page{},
			Query: []web.Param{
				{Name: "sector", Type: "string", Description: "exact sector"},
				{Name: "country", Type: "string", Description: "ISO 3166-1 alpha-2 code"},
				{Name: "q", Type: "string", Description: "search name or ticker (exact ticker first, then similarity)"},
				{Name: "limit", Type: "integer", Description: "page size, 1-200 (default 50)"},
				{Name: "cursor", Type: "string", Description: "next_cursor of the previous page"},
			}},
		{Method: http.MethodPost, Path: "/companies", Perm: rbac.CompaniesWrite, Tag: "companies", Audit: "company.create",
			Summary: "Create a company", Handler: m.create, Request: CreateRequest{}, Response: Company{}},
		{Method: http.MethodGet, Path: "/companies/:id", Perm: rbac.CompaniesRead, Tag: "companies",
			Summary: "Get a company", Handler: m.get, Response: Company{}},
		{Method: http.MethodPatch, Path: "/companies/:id", Perm: rbac.CompaniesWrite, Tag: "companies", Audit: "company.update",
			Summary: "Update a company (JSON merge patch: null clears a field)", Handler: m.update, Request: CreateRequest{}, Response: Company{}},
		{Method: http.MethodDelete, Path: "/companies/:id", Perm: rbac.CompaniesWrite, Tag: "companies", Audit: "company.delete",
			Summary: "Delete a company and its metric points", Handler: m.delete},
	}
}

func (m *Module) get(c echo.Context) error {
	id := c.Param("id")
	if !web.ValidUUID(id) {
		return web.ErrNotFound()
	}
	b, err := cache.GetOrLoadJSON(c.Request().Context(), m.cache, ItemKey(id), ItemTTL, func(ctx context.Context) (Company, error) {
		return m.st.get(ctx, id)
	})
	if err != nil {
		return err
	}
	return web.JSONBytes(c, http.StatusOK, b)
}

func (m *Module) list(c echo.Context) error {
	p, err := ParseList(c.QueryParams())
	if err != nil {
		return err
	}
	b, err := cache.GetOrLoadJSONIn(c.Request().Context(), m.cache, listNamespace, p.cacheKey(), ListTTL, func(ctx context.Context) (Page, error) {
		return m.st.list(ctx, p)
	})
	if err != nil {
		return err
	}
	return web.JSONBytes(c, http.StatusOK, b)
}

func (m *Module) create(c echo.Context) error {
	var in Input
	if err := web.Bind(c, &in); err != nil {
		return err
	}
	if errs := in.validate(true, m.now()); len(errs) > 0 {
		return web.Validation(errs...)
	}
	ctx := c.Request().Context()
	co, err := m.st.create(ctx, &in)
	if err != nil {
		return err
	}
	m.invalidate(ctx, co.ID)
	web.SetAuditTarget(c, "company:"+co.ID)
	web.SetAuditDetail(c, map[string]any{"name": co.Name, "ticker": co.Ticker})
	c.Response().Header().Set(echo.HeaderLocation, c.Request().URL.Path+"/"+co.ID)
	return web.JSON(c, http.StatusCreated, co)
}

func (m *Module) update(c echo.Context) error {
	id := c.Param("id")
	if !web.ValidUUID(id) {
		return web.ErrNotFound()
	}
	var in Input
	if err := web.Bind(c, &in); err != nil {
		return err
	}
	if errs := in.validate(false, m.now()); len(errs) > 0 {
		return web.Validation(errs...)
	}
	ctx := c.Request().Context()
	co, err := m.st.update(ctx, id, &in)
	if err != nil {
		return err
	}
	m.invalidate(ctx, id)
	cols, _ := in.assignments()
	web.SetAuditTarget(c, "company:"+id)
	web.SetAuditDetail(c, map[string]any{"fields": cols})
	return web.JSON(c, http.StatusOK, co)
}

func (m *Module) delete(c echo.Context) error {
	id := c.Param("id")
	if !web.ValidUUID(id) {
		return web.ErrNotFound()
	}
	ctx := c.Request().Context()
	web.SetAuditTarget(c, "company:"+id)
	if err := m.st.delete(ctx, id); err != nil {
		return err
	}
	m.invalidate(ctx, id)
	if err := m.cache.Bump(context.WithoutCancel(ctx), MetricsNamespace(id)); err != nil {
		m.log.WarnContext(ctx, "cache invalidation failed", "err", err)
	}
	return c.NoContent(http.StatusNoContent)
}

// invalidate drops the company's cached copy and every cached list page after the
// commit. A reader that loaded the old row before the commit and stores it after this
// delete can leave a stale copy; ItemTTL bounds that window.
func (m *Module) invalidate(ctx context.Context, id string) {
	ctx = context.WithoutCancel(ctx)
	if err := m.cache.Delete(ctx, ItemKey(id)); err != nil {
		m.log.WarnContext(ctx, "cache invalidation failed", "err", err)
	}
	if err := m.cache.Bump(ctx, listNamespace); err != nil {
		m.log.WarnContext(ctx, "cache invalidation failed", "err", err)
	}
}
