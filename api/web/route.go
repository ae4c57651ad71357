package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/corpintel/corpintel/api/rbac"
	"github.com/labstack/echo/v4"
)

// DefaultMaxBody is the body limit of a route that does not set its own.
const DefaultMaxBody int64 = 1 << 20

// Route is one endpoint of the API. Every route names exactly one permission; the route
// table test fails when one does not.
type Route struct {
	Method  string
	Path    string // echo syntax, relative to the group (e.g. "/companies/:id")
	Perm    rbac.Permission
	Summary string
	Tag     string
	Handler echo.HandlerFunc
	// Request and Response are zero values of the body types, for the OpenAPI document.
	Request  any
	Response any
	// Audit is the action recorded for this route ("company.create"). Every route whose
	// method is not GET/HEAD must set it; the route table test enforces it.
	Audit string
	// MaxBody overrides DefaultMaxBody; -1 means the handler enforces its own limit.
	MaxBody int64
	// Query documents query parameters for the OpenAPI document.
	Query []Param
}

// Param documents one query parameter.
type Param struct {
	Name, Description, Type string
}

// Module is a group of routes (one resource).
type Module interface {
	Routes() []Route
}

// Principal is the authenticated caller.
type Principal struct {
	UserID    string
	Email     string
	Role      rbac.Role
	TokenID   string
	ExpiresAt time.Time
}

// Authenticator turns a bearer token into a Principal, or fails with a *Problem (401).
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (*Principal, error)
}

// Kind classifies audit events; retention differs per kind (seed: application 90 days,
// access 1 year, security forever).
type Kind string

// Audit event kinds.
const (
	KindApplication Kind = "application"
	KindAccess      Kind = "access"
	KindSecurity    Kind = "security"
)

// Event is one audit record.
type Event struct {
	Time      time.Time
	ActorID   string // user id, or "" for anonymous
	ActorRole string
	Action    string
	Target    string
	Outcome   string // "success", "denied", "failure"
	Status    int
	ClientIP  string
	RequestID string
	Kind      Kind
	Detail    map[string]any
}

// Auditor records audit events. Record must be durable before it returns.
type Auditor interface {
	Record(ctx context.Context, e Event) error
}

type principalKey struct{}

// PrincipalOf returns the authenticated caller of c, or nil on public routes.
func PrincipalOf(c echo.Context) *Principal {
	p, _ := c.Get("principal").(*Principal)
	return p
}

// PrincipalFromContext returns the principal stored in a request context.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Mount registers the routes of mods under g, each wrapped with its body limit,
// authentication (unless Public), its permission check and the audit record.
func Mount(g *echo.Group, auth Authenticator, aud Auditor, mods ...Module) ([]Route, error) {
	var all []Route
	for _, m := range mods {
		for _, r := range m.Routes() {
			if err := CheckRoute(r); err != nil {
				return nil, err
			}
			g.Add(r.Method, r.Path, r.Handler, routeMiddleware(r, auth, aud)...)
			all = append(all, r)
		}
	}
	return all, nil
}

// CheckRoute reports a route that breaks the house rules: no handler, no or unknown
// permission, or a write without an audit action.
func CheckRoute(r Route) error {
	name := r.Method + " " + r.Path
	switch {
	case r.Handler == nil:
		return fmt.Errorf("route %s: no handler", name)
	case r.Perm == "":
		return fmt.Errorf("route %s: no permission declared", name)
	case !rbac.Known(r.Perm):
		return fmt.Errorf("route %s: unknown permission %q", name, r.Perm)
	case r.Method != http.MethodGet && r.Method != http.MethodHead && r.Audit == "":
		return fmt.Errorf("route %s: writes must name an audit action", name)
	}
	return nil
}

func routeMiddleware(r Route, auth Authenticator, aud Auditor) []echo.MiddlewareFunc {
	limit := r.MaxBody
	if limit == 0 {
		limit = DefaultMaxBody
	}
	var mw []echo.MiddlewareFunc
	if r.Audit != "" && aud != nil {
		mw = append(mw, auditMiddleware(r, aud))
	}
	if limit > 0 {
		mw = append(mw, bodyLimit(limit))
	}
	if r.Perm != rbac.Public {
		mw = append(mw, authenticate(auth), authorize(r.Perm))
	}
	return mw
}

func bodyLimit(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.ContentLength > limit {
				return Problemf(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", limit)
			}
			req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
			return next(c)
		}
	}
}

func authenticate(auth Authenticator) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get(echo.HeaderAuthorization)
			token, ok := strings.CutPrefix(h, "Bearer ")
			if !ok || token == "" || auth == nil {
				return ErrUnauthorized()
			}
			p, err := auth.Authenticate(c.Request().Context(), strings.TrimSpace(token))
			if err != nil {
				return err
			}
			c.Set("principal", p)
			c.SetRequest(c.Request().WithContext(context.WithValue(c.Request().Context(), principalKey{}, p)))
			return next(c)
		}
	}
}

func authorize(perm rbac.Permission) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p := PrincipalOf(c)
			if p == nil || !rbac.Can(p.Role, perm) {
				return ErrForbidden()
			}
			return next(c)
		}
	}
}

// auditMiddleware records the route's action with its outcome after the handler ran
// (it wraps authentication too, so denied attempts are recorded). The handler's response
// is held back until the record is durable: a failed audit write turns the answer into a
// 500, because an unrecorded write is worse than a refused one. (Write responses are
// small; request bodies still stream.)
//
// Reads that name an audit action (document downloads, …) are access events: their
// responses may be large and stream, so they are not held; the record is written when
// the handler is done, and a failure to write it is logged as an error.
func auditMiddleware(r Route, aud Auditor) echo.MiddlewareFunc {
	kind := KindApplication
	switch {
	case strings.HasPrefix(r.Audit, "auth.") || strings.HasPrefix(r.Audit, "user.") || strings.HasPrefix(r.Audit, "gdpr."):
		kind = KindSecurity
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		kind = KindAccess
	}
	if kind == KindAccess {
		return accessMiddleware(r, aud)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			held := &heldResponse{header: c.Response().Header(), status: http.StatusOK}
			orig := c.Response().Writer
			c.Response().Writer = held
			err := next(c)
			c.Response().Writer = orig
			status := c.Response().Status
			if err != nil {
				status = toProblem(err).Status
			}
			e := auditEvent(c, r.Audit, kind, status)
			if aerr := aud.Record(context.WithoutCancel(c.Request().Context()), e); aerr != nil {
				if held.wrote {
					c.Response().Committed = false
					c.Response().Size = 0
				}
				return fmt.Errorf("record audit event %s: %w", r.Audit, aerr)
			}
			if held.wrote {
				orig.WriteHeader(held.status)
				_, werr := orig.Write(held.body)
				if werr != nil && err == nil {
					err = werr
				}
			}
			return err
		}
	}
}

const auditErrorKey = "audit.error"

// accessMiddleware records a read after its handler ran, without holding its response.
func accessMiddleware(r Route, aud Auditor) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			status := c.Response().Status
			if err != nil {
				status = toProblem(err).Status
			}
			e := auditEvent(c, r.Audit, KindAccess, status)
			if aerr := aud.Record(context.WithoutCancel(c.Request().Context()), e); aerr != nil {
				// The answer is gone already; AccessLog logs this as an error.
				c.Set(auditErrorKey, fmt.Errorf("access %s to %s by %q not recorded: %w", r.Audit, e.Target, e.ActorID, aerr))
			}
			return err
		}
	}
}

// auditEvent is the record of the request c for action.
func auditEvent(c echo.Context, action string, kind Kind, status int) Event {
	e := Event{
		Time: time.Now().UTC(), Action: action, Target: c.Request().URL.Path,
		Status: status, Outcome: outcome(status), ClientIP: c.RealIP(),
		RequestID: RequestID(c), Kind: kind,
	}
	if p := PrincipalOf(c); p != nil {
		e.ActorID, e.ActorRole = p.UserID, string(p.Role)
	}
	if d, ok := c.Get("audit.detail").(map[string]any); ok {
		e.Detail = d
	}
	if t, ok := c.Get("audit.target").(string); ok && t != "" {
		e.Target = t
	}
	if a, ok := c.Get("audit.actor").(string); ok && e.ActorID == "" {
		e.ActorID = a
	}
	return e
}

// heldResponse buffers a handler's response until its audit record is written.
type heldResponse struct {
	header http.Header
	status int
	body   []byte
	wrote  bool
}

func (h *heldResponse) Header() http.Header { return h.header }
func (h *heldResponse) WriteHeader(code int) {
	if !h.wrote {
		h.status, h.wrote = code, true
	}
}
func (h *heldResponse) Write(b []byte) (int, error) {
	h.wrote = true
	h.body = append(h.body, b...)
	return len(b), nil
}

// SetAuditDetail attaches extra fields to the route's audit record.
func SetAuditDetail(c echo.Context, detail map[string]any) { c.Set("audit.detail", detail) }

// SetAuditTarget overrides the audit target (default: the request path).
func SetAuditTarget(c echo.Context, target string) { c.Set("audit.target", target) }

// SetAuditActor names the actor on routes without a principal (e.g. login by email).
func SetAuditActor(c echo.Context, actor string) { c.Set("audit.actor", actor) }

func outcome(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "denied"
	case status >= 400:
		return "failure"
	}
	return "success"
}
