package gdpr_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/audit"
	"github.com/corpintel/corpintel/api/gdpr"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	alice = "6f1c3a8e-0d7b-4a55-9b1e-6c2f0a4d9e11"
	admin = "0b9e4f2c-7a13-4e6d-8c5b-1d2e3f405162"
)

// stand-in for the users table of api/users (0010) with the columns these tests need.
const usersTable = `CREATE TABLE IF NOT EXISTS users (id uuid PRIMARY KEY, email text NOT NULL, name text NOT NULL)`

func setup(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := testenv.Postgres(t).Pool(t)
	ctx := context.Background()
	files, _ := filepath.Glob("../db/migrations/005*.sql")
	sort.Strings(files)
	stmts := []string{usersTable}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, string(b))
	}
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO users VALUES ($1, 'Alice@Example.com', 'Alice'), ($2, 'root@example.com', 'Root')`, alice, admin); err != nil {
		t.Fatal(err)
	}
	return pool
}

// profile is the users source the auth engineer's package provides in production.
var profile = gdpr.Source{
	Name: "profile",
	Export: func(ctx context.Context, q gdpr.Querier, id string) (any, error) {
		var email, name string
		err := q.QueryRow(ctx, `SELECT email, name FROM users WHERE id = $1`, id).Scan(&email, &name)
		return map[string]string{"email": email, "name": name}, err
	},
	Anonymize: func(ctx context.Context, tx pgx.Tx, id, pseudonym string) error {
		_, err := tx.Exec(ctx, `UPDATE users SET email = $2 || '@invalid', name = $2 WHERE id = $1`, id, pseudonym)
		return err
	},
}

type memAudit struct {
	mu     sync.Mutex
	events []web.Event
	inner  web.Auditor
	fail   bool
}

func (m *memAudit) Record(ctx context.Context, e web.Event) error {
	if m.fail {
		return errors.New("audit store down")
	}
	m.mu.Lock()
	m.events = append(m.events, e)
	m.mu.Unlock()
	return m.inner.Record(ctx, e)
}

type auth map[string]*web.Principal

func (a auth) Authenticate(_ context.Context, tok string) (*web.Principal, error) {
	if p, ok := a[tok]; ok {
		return p, nil
	}
	return nil, web.ErrUnauthorized()
}

func server(t *testing.T, pool *pgxpool.Pool, aud web.Auditor, sources ...gdpr.Source) (*echo.Echo, *gdpr.Module) {
	t.Helper()
	e := echo.New()
	e.HTTPErrorHandler = web.ErrorHandler(slog.New(slog.DiscardHandler))
	m := gdpr.New(pool, aud, nil, nil, []byte("0123456789abcdef0123456789abcdef"), sources...)
	a := auth{"admin": {UserID: admin, Role: rbac.Admin}, "analyst": {UserID: "c", Role: rbac.Analyst}}
	if _, err := web.Mount(e.Group("/api/v1"), a, aud, m); err != nil {
		t.Fatal(err)
	}
	return e, m
}

func call(e *echo.Echo, method, path, tok string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Forwarded-For", "203.0.113.77")
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	return w
}

func TestPseudonymStableAndKeyed(t *testing.T) {
	k1, k2 := gdpr.PseudonymKey([]byte("a")), gdpr.PseudonymKey([]byte("b"))
	p := gdpr.Pseudonym(k1, alice)
	if p != gdpr.Pseudonym(k1, alice) || !strings.HasPrefix(p, "anon-") || len(p) != 37 {
		t.Fatalf("pseudonym %q", p)
	}
	if p == gdpr.Pseudonym(k2, alice) || p == gdpr.Pseudonym(k1, admin) {
		t.Fatal("pseudonyms collide")
	}
}

func TestExportAndAnonymize(t *testing.T) {
	pool := setup(t)
	ctx := context.Background()
	rec := audit.NewRecorder(pool, nil, nil, nil)
	aud := &memAudit{inner: rec}
	e, _ := server(t, pool, aud, audit.GDPRSource(), profile)

	// Alice's traces: her own requests, a failed login by her email, an admin acting on her.
	now := time.Now().UTC()
	seed := []web.Event{
		{Time: now, ActorID: alice, ActorRole: "analyst", Action: "company.create", Target: "/api/v1/companies", ClientIP: "198.51.100.23", Status: 201},
		{Time: now, ActorID: alice, Action: "auth.login", ClientIP: "2001:db8:1234:5678::1", Status: 200, Kind: web.KindSecurity, Detail: map[string]any{"email": "alice@example.com"}},
		{Time: now, Action: "auth.login", ClientIP: "198.51.100.99", Status: 401, Kind: web.KindSecurity, Detail: map[string]any{"email": "alice@example.com", "throttled": false}},
		{Time: now, ActorID: admin, Action: "user.update", Target: "/api/v1/users/" + alice, ClientIP: "192.0.2.10", Status: 200, Kind: web.KindSecurity, Detail: map[string]any{"user": alice}},
		{Time: now, ActorID: "someone-else", Action: "company.create", ClientIP: "192.0.2.11", Status: 201, Detail: map[string]any{"email": "bob@example.com"}},
	}
	for _, ev := range seed {
		if err := rec.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}

	if w := call(e, "GET", "/api/v1/users/"+alice+"/export", "analyst"); w.Code != http.StatusForbidden {
		t.Fatalf("analyst export: %d", w.Code)
	}
	if w := call(e, "GET", "/api/v1/users/not-a-uuid/export", "admin"); w.Code != http.StatusNotFound {
		t.Fatalf("bad id: %d", w.Code)
	}
	if w := call(e, "GET", "/api/v1/users/00000000-0000-0000-0000-000000000000/export", "admin"); w.Code != http.StatusNotFound {
		t.Fatalf("unknown user: %d", w.Code)
	}
	w := call(e, "GET", "/api/v1/users/"+alice+"/export", "admin")
	if w.Code != http.StatusOK {
		t.Fatalf("export: %d %s", w.Code, w.Body)
	}
	var out struct {
		UserID string `json:"user_id"`
		Data   struct {
			Profile     map[string]string `json:"profile"`
			AuditEvents []audit.Record    `json:"audit_events"`
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.UserID != alice || out.Data.Profile["email"] != "Alice@Example.com" || len(out.Data.AuditEvents) != 2 {
		t.Fatalf("export %s", w.Body)
	}
	if len(aud.events) != 1 || aud.events[0].Action != "gdpr.export" || aud.events[0].Kind != web.KindSecurity || aud.events[0].ActorID != admin {
		t.Fatalf("export not audited: %+v", aud.events)
	}

	if w := call(e, "POST", "/api/v1/users/"+admin+"/anonymize", "admin"); w.Code != http.StatusConflict {
		t.Fatalf("self anonymize: %d", w.Code)
	}
	w = call(e, "POST", "/api/v1/users/"+alice+"/anonymize", "admin")
	if w.Code != http.StatusOK {
		t.Fatalf("anonymize: %d %s", w.Code, w.Body)
	}
	var res gdpr.AnonymizeResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || !strings.HasPrefix(res.Pseudonym, "anon-") ||
		strings.Join(res.Sources, ",") != "audit_events,profile" {
		t.Fatalf("result %s", w.Body)
	}
	last := aud.events[len(aud.events)-1]
	if last.Action != "gdpr.anonymize" || last.Outcome != "success" || strings.Contains(last.Target, alice) || !strings.Contains(last.Target, res.Pseudonym) {
		t.Fatalf("anonymize audit event %+v", last)
	}

	// Nothing in the audit table names Alice any more; her events are one actor.
	var leaks int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE actor_id = $1 OR target LIKE '%' || $1 || '%'
		OR detail::text LIKE '%' || $1 || '%' OR detail::text ILIKE '%alice@example.com%'`, alice).Scan(&leaks); err != nil {
		t.Fatal(err)
	}
	if leaks != 0 {
		t.Fatalf("%d audit rows still identify alice", leaks)
	}
	p, err := audit.List(ctx, pool, audit.Filter{Actor: res.Pseudonym})
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]bool{}
	for _, r := range p.Items {
		ips[r.ClientIP] = true
	}
	if len(p.Items) != 2 || !ips["198.51.100.0"] || !ips["2001:db8:1234::"] {
		t.Fatalf("pseudonymous events %+v", p.Items)
	}
	p, err = audit.List(ctx, pool, audit.Filter{Action: "user.update"})
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Items[0]; r.ActorID != admin || r.ClientIP != "192.0.2.10" || r.Target != "/api/v1/users/"+res.Pseudonym {
		t.Fatalf("admin's event %+v", r)
	}
	p, _ = audit.List(ctx, pool, audit.Filter{Actor: "someone-else"})
	if r := p.Items[0]; r.ClientIP != "192.0.2.11" || !strings.Contains(string(r.Detail), "bob@example.com") {
		t.Fatalf("unrelated event changed: %+v", r)
	}
	p, _ = audit.List(ctx, pool, audit.Filter{Outcome: "denied"})
	if r := p.Items[0]; r.ClientIP != "198.51.100.0" || !strings.Contains(string(r.Detail), res.Pseudonym) {
		t.Fatalf("failed login by email not anonymized: %+v", r)
	}

	// Running it again changes nothing and yields the same pseudonym.
	var before string
	_ = pool.QueryRow(ctx, `SELECT string_agg(actor_id || target || client_ip || coalesce(detail::text, ''), '|' ORDER BY id) FROM audit_events WHERE action <> 'gdpr.anonymize'`).Scan(&before)
	w = call(e, "POST", "/api/v1/users/"+alice+"/anonymize", "admin")
	var res2 gdpr.AnonymizeResult
	_ = json.Unmarshal(w.Body.Bytes(), &res2)
	var after string
	_ = pool.QueryRow(ctx, `SELECT string_agg(actor_id || target || client_ip || coalesce(detail::text, ''), '|' ORDER BY id) FROM audit_events WHERE action <> 'gdpr.anonymize'`).Scan(&after)
	if w.Code != http.StatusOK || res2.Pseudonym != res.Pseudonym || before != after {
		t.Fatalf("second anonymize: %d %s\n%s\n%s", w.Code, w.Body, before, after)
	}
}

func TestAnonymizeIsOneTransaction(t *testing.T) {
	pool := setup(t)
	ctx := context.Background()
	rec := audit.NewRecorder(pool, nil, nil, nil)
	if err := rec.Record(ctx, web.Event{ActorID: alice, Action: "company.create"}); err != nil {
		t.Fatal(err)
	}
	broken := gdpr.Source{Name: "broken", Anonymize: func(context.Context, pgx.Tx, string, string) error {
		return errors.New("constraint violated")
	}}
	e, _ := server(t, pool, rec, audit.GDPRSource(), profile, broken)
	if w := call(e, "POST", "/api/v1/users/"+alice+"/anonymize", "admin"); w.Code != http.StatusInternalServerError {
		t.Fatalf("failing source answered %d", w.Code)
	}
	var email string
	var n int
	_ = pool.QueryRow(ctx, `SELECT email FROM users WHERE id = $1`, alice).Scan(&email)
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE actor_id = $1`, alice).Scan(&n)
	if email != "Alice@Example.com" || n != 1 {
		t.Fatalf("partial anonymization: email %q, %d events kept", email, n)
	}
	// the failed attempt itself is on record
	p, _ := audit.List(ctx, pool, audit.Filter{Action: "gdpr.anonymize"})
	if len(p.Items) != 1 || p.Items[0].Outcome != "failure" {
		t.Fatalf("failed anonymize not audited: %+v", p.Items)
	}
}

func TestExportRefusedWhenAuditFails(t *testing.T) {
	pool := setup(t)
	aud := &memAudit{fail: true}
	e, _ := server(t, pool, aud, profile)
	w := call(e, "GET", "/api/v1/users/"+alice+"/export", "admin")
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "Alice") {
		t.Fatalf("export without audit: %d %s", w.Code, w.Body)
	}
	failing := gdpr.Source{Name: "x", Export: func(context.Context, gdpr.Querier, string) (any, error) { return nil, errors.New("boom") }}
	e, _ = server(t, pool, &memAudit{inner: audit.NewRecorder(pool, nil, nil, nil)}, failing)
	if w := call(e, "GET", "/api/v1/users/"+alice+"/export", "admin"); w.Code != http.StatusInternalServerError {
		t.Fatalf("failing export source: %d", w.Code)
	}
}
