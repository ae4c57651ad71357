// Package gdpr serves the data-subject endpoints: POST /users/{id}/anonymize replaces a
// user's personal data everywhere it is held with a stable pseudonym, in one
// transaction; GET /users/{id}/export returns everything held about a user. Resource
// packages contribute their part as a Source, so this package knows no other tables
// than users.
package gdpr

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/users"
	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
)

// Querier is what an exporter reads through: a read-only, repeatable-read transaction,
// so that all sources see one snapshot.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Source is one module's share of a user's data.
type Source struct {
	// Name is the key of this source's part in the export ("profile", "audit_events").
	Name string
	// Export returns everything this source holds about userID (JSON-encodable).
	Export func(ctx context.Context, q Querier, userID string) (any, error)
	// Anonymize replaces userID's personal data with pseudonym inside tx. It must be
	// idempotent: running it again for an anonymized user changes nothing.
	Anonymize func(ctx context.Context, tx pgx.Tx, userID, pseudonym string) error
}

// Module serves the GDPR endpoints.
type Module struct {
	pool    *pgxpool.Pool
	audit   web.Auditor
	log     *slog.Logger
	now     func() time.Time
	key     []byte
	sources []Source
}

// New returns the GDPR module. secret keys the pseudonyms (PseudonymKey derives the HMAC
// key from it; use a secret every replica shares, such as the JWT KEK). The sources run
// in the order given; put ProfileSource last, so that the others can still read the
// user's email before the users row is rewritten:
//
//	gdpr.New(d.Pool, rec, d.Log, d.Now, cfg.KEK, audit.GDPRSource(), documents.GDPRSource(), gdpr.ProfileSource())
func New(pool *pgxpool.Pool, audit web.Auditor, log *slog.Logger, now func() time.Time, secret []byte, sources ...Source) *Module {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Module{pool: pool, audit: audit, log: log, now: now, key: PseudonymKey(secret), sources: sources}
}

// ProfileSource is the users module's part: the profile, sessions and failed logins
// (users.Export), and the anonymization of the users row itself, which also revokes every
// session (users.Anonymize).
func ProfileSource() Source {
	return Source{
		Name: "profile",
		Export: func(ctx context.Context, q Querier, userID string) (any, error) {
			return users.Export(ctx, q, userID)
		},
		Anonymize: users.Anonymize,
	}
}

// PseudonymKey derives the pseudonym HMAC key from a shared secret.
func PseudonymKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("corpintel gdpr pseudonym v1"))
	return m.Sum(nil)
}

// Pseudonym is the stable pseudonymous id that replaces userID: the same user always
// gets the same one (so an anonymized actor stays recognisable as one actor across the
// audit trail), and it cannot be reversed without the key.
func Pseudonym(key []byte, userID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(userID))
	return "anon-" + hex.EncodeToString(m.Sum(nil)[:16])
}

// Routes implements web.Module.
func (m *Module) Routes() []web.Route {
	return []web.Route{
		{Method: http.MethodPost, Path: "/users/:id/anonymize", Perm: rbac.GDPRManage, Tag: "gdpr",
			Audit: "gdpr.anonymize", Summary: "Irreversibly replace a user's personal data with a pseudonym",
			Handler: m.anonymize, Response: AnonymizeResult{}},
		{Method: http.MethodGet, Path: "/users/:id/export", Perm: rbac.GDPRManage, Tag: "gdpr", Audit: "gdpr.export",
			Summary: "Export everything held about a user", Handler: m.export, Response: Export{}},
	}
}

// AnonymizeResult is the body of POST /users/{id}/anonymize.
type AnonymizeResult struct {
	Pseudonym    string    `json:"pseudonym"`
	Sources      []string  `json:"sources"`
	AnonymizedAt time.Time `json:"anonymized_at"`
}

// Export is the body of GET /users/{id}/export.
type Export struct {
	UserID     string         `json:"user_id"`
	ExportedAt time.Time      `json:"exported_at"`
	Data       map[string]any `json:"data"`
}

var errNoUser = web.NewProblem(http.StatusNotFound, "no such user")

// usersProblem turns the users package's refusals into client problems.
func usersProblem(err error) error {
	switch {
	case errors.Is(err, users.ErrNotFound):
		return errNoUser
	case errors.Is(err, users.ErrLastAdmin):
		return web.NewProblem(http.StatusConflict, "this is the last active admin; make another admin first")
	}
	return err
}

// userExists answers 404 before any source runs. It takes no lock: users.Anonymize locks
// the admins and the user row in its own order, and taking the user row first here
// could deadlock with a concurrent role change.
func userExists(ctx context.Context, q Querier, id string) error {
	if !web.ValidUUID(id) {
		return errNoUser
	}
	var got string
	err := q.QueryRow(ctx, `SELECT id FROM users WHERE id = $1`, id).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return errNoUser
	}
	if err != nil {
		return fmt.Errorf("gdpr: look up user: %w", err)
	}
	return nil
}

func (m *Module) anonymize(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if p := web.PrincipalOf(c); p != nil && p.UserID == id {
		return web.NewProblem(http.StatusConflict, "you cannot anonymize your own account; ask another admin")
	}
	pseudonym := Pseudonym(m.key, id)
	// The middleware records this request after the handler; never with the real id.
	web.SetAuditTarget(c, "user/"+pseudonym)
	res, err := m.Anonymize(ctx, id, pseudonym)
	if err != nil {
		return usersProblem(err)
	}
	web.SetAuditDetail(c, map[string]any{"pseudonym": pseudonym, "sources": res.Sources})
	return web.JSON(c, http.StatusOK, res)
}

// Anonymize runs every source's anonymizer for userID in one transaction.
func (m *Module) Anonymize(ctx context.Context, userID, pseudonym string) (AnonymizeResult, error) {
	res := AnonymizeResult{Pseudonym: pseudonym, Sources: []string{}}
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		if err := userExists(ctx, tx, userID); err != nil {
			return err
		}
		for _, s := range m.sources {
			if s.Anonymize == nil {
				continue
			}
			if err := s.Anonymize(ctx, tx, userID, pseudonym); err != nil {
				return fmt.Errorf("gdpr: anonymize %s: %w", s.Name, err)
			}
			res.Sources = append(res.Sources, s.Name)
		}
		return nil
	})
	if err != nil {
		return AnonymizeResult{}, err
	}
	res.AnonymizedAt = m.now().UTC()
	m.log.InfoContext(ctx, "user anonymized", "pseudonym", pseudonym, "sources", res.Sources)
	return res, nil
}

func (m *Module) export(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	out, err := m.Export(ctx, id)
	if err != nil {
		return usersProblem(err)
	}
	// GET requests are not audited by the middleware, but handing out a person's data is
	// a security event: record it before the data leaves, and refuse if that fails.
	e := web.Event{
		Time: m.now().UTC(), Action: "gdpr.export", Target: c.Request().URL.Path, Outcome: "success",
		Status: http.StatusOK, ClientIP: c.RealIP(), RequestID: web.RequestID(c), Kind: web.KindSecurity,
		Detail: map[string]any{"user_id": id, "sources": len(out.Data)},
	}
	if p := web.PrincipalOf(c); p != nil {
		e.ActorID, e.ActorRole = p.UserID, string(p.Role)
	}
	if m.audit != nil {
		if err := m.audit.Record(context.WithoutCancel(ctx), e); err != nil {
			return fmt.Errorf("gdpr: record export: %w", err)
		}
	}
	c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="user-export.json"`)
	return web.JSON(c, http.StatusOK, out)
}

// Export collects every source's part for userID from one consistent snapshot.
func (m *Module) Export(ctx context.Context, userID string) (Export, error) {
	out := Export{UserID: userID, ExportedAt: m.now().UTC(), Data: map[string]any{}}
	err := pgx.BeginTxFunc(ctx, m.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			if err := userExists(ctx, tx, userID); err != nil {
				return err
			}
			for _, s := range m.sources {
				if s.Export == nil {
					continue
				}
				v, err := s.Export(ctx, tx, userID)
				if err != nil {
					return fmt.Errorf("gdpr: export %s: %w", s.Name, err)
				}
				out.Data[s.Name] = v
			}
			return nil
		})
	if err != nil {
		return Export{}, err
	}
	return out, nil
}
