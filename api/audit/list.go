package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
)

// Querier is the part of a pgx pool (or transaction) the read side uses.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Record is one stored audit event as GET /audit returns it.
type Record struct {
	ID        int64           `json:"id"`
	Time      time.Time       `json:"time"`
	ActorID   string          `json:"actor_id"`
	ActorRole string          `json:"actor_role"`
	Action    string          `json:"action"`
	Target    string          `json:"target"`
	Outcome   string          `json:"outcome"`
	Status    int             `json:"status"`
	ClientIP  string          `json:"client_ip"`
	RequestID string          `json:"request_id"`
	Kind      web.Kind        `json:"kind"`
	Detail    json.RawMessage `json:"detail,omitempty"`
}

// Page is the body of GET /audit.
type Page struct {
	Items []Record `json:"items"`
	// NextCursor continues the listing (pass it as ?cursor=); empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

const selectColumns = `SELECT id, time, actor_id, actor_role, action, target, outcome, status,
	client_ip, request_id, kind, detail FROM audit_events`

// List returns the events matching f, newest first, one page at a time.
func List(ctx context.Context, db Querier, f Filter) (Page, error) {
	if f.Limit <= 0 || f.Limit > MaxLimit {
		f.Limit = DefaultLimit
	}
	where, args := f.where()
	args = append(args, f.Limit+1)
	sql := fmt.Sprintf("%s%s ORDER BY time DESC, id DESC LIMIT $%d", selectColumns, where, len(args))
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return Page{}, fmt.Errorf("list audit events: %w", err)
	}
	items, err := scanRecords(rows)
	if err != nil {
		return Page{}, fmt.Errorf("list audit events: %w", err)
	}
	p := Page{Items: items}
	if len(items) > f.Limit {
		p.Items = items[:f.Limit]
		last := p.Items[f.Limit-1]
		p.NextCursor = Cursor{Time: last.Time, ID: last.ID}.String()
	}
	return p, nil
}

func scanRecords(rows pgx.Rows) ([]Record, error) {
	defer rows.Close()
	items := []Record{}
	for rows.Next() {
		var r Record
		var kind string
		var detail []byte
		if err := rows.Scan(&r.ID, &r.Time, &r.ActorID, &r.ActorRole, &r.Action, &r.Target, &r.Outcome,
			&r.Status, &r.ClientIP, &r.RequestID, &kind, &detail); err != nil {
			return nil, err
		}
		r.Time = r.Time.UTC()
		r.Kind = web.Kind(kind)
		if len(detail) > 0 {
			r.Detail = json.RawMessage(detail)
		}
		items = append(items, r)
	}
	return items, rows.Err()
}

// Module serves GET /audit.
type Module struct {
	db Querier
}

// New returns the audit listing module (GET /audit).
func New(d app.Deps) *Module { return NewModule(d.Pool) }

// NewModule returns the audit listing module reading through db (a *pgxpool.Pool).
func NewModule(db Querier) *Module { return &Module{db: db} }

// Routes implements web.Module.
func (m *Module) Routes() []web.Route {
	return []web.Route{{
		Method: http.MethodGet, Path: "/audit", Perm: rbac.AuditRead, Tag: "audit", Audit: "audit.read",
		Summary:  "List audit events, newest first",
		Handler:  m.list,
		Response: Page{},
		Query: []web.Param{
			{Name: "actor", Type: "string", Description: "exact actor id (user id or pseudonym)"},
			{Name: "action", Type: "string", Description: "action prefix, e.g. company. or auth.login"},
			{Name: "kind", Type: "string", Description: "application, access or security"},
			{Name: "outcome", Type: "string", Description: "success, denied or failure"},
			{Name: "from", Type: "string", Description: "RFC 3339 time, inclusive"},
			{Name: "to", Type: "string", Description: "RFC 3339 time, exclusive"},
			{Name: "limit", Type: "integer", Description: fmt.Sprintf("page size, 1-%d (default %d)", MaxLimit, DefaultLimit)},
			{Name: "cursor", Type: "string", Description: "next_cursor of the previous page"},
		},
	}}
}

func (m *Module) list(c echo.Context) error {
	f, errs := ParseFilter(c.QueryParams())
	if len(errs) > 0 {
		return web.Validation(errs...)
	}
	p, err := List(c.Request().Context(), m.db, f)
	if err != nil {
		return err
	}
	return web.JSON(c, http.StatusOK, p)
}
