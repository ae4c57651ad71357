package companies

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/db"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// roleTokens authenticates the bearer token "admin", "analyst" or "viewer" as that role.
type roleTokens struct{}

func (roleTokens) Authenticate(_ context.Context, tok string) (*web.Principal, error) {
	r := rbac.Role(tok)
	if !r.Valid() {
		return nil, web.ErrUnauthorized()
	}
	return &web.Principal{UserID: "user-" + tok, Role: r}, nil
}

type memAudit struct {
	mu     sync.Mutex
	events []web.Event
}

func (m *memAudit) Record(_ context.Context, e web.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	return nil
}

func (m *memAudit) last() web.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.events[len(m.events)-1]
}

type harness struct {
	t     testing.TB
	e     *echo.Echo
	pool  *pgxpool.Pool
	rdb   *redis.Client
	cache *Cache
	mod   *Module
	audit *memAudit
}

// migratedPool returns a pool on a fresh, fully migrated database.
func migratedPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := testenv.Postgres(t).Pool(t)
	if err := db.Migrate(context.Background(), pool, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return pool
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	pool := migratedPool(t)
	rd := testenv.Redis(t)
	rdb := rd.Client(t)
	log := slog.New(slog.DiscardHandler)
	c := NewCache(rdb, rd.Prefix, log)
	mod, err := New(context.Background(), pool, c, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, e: echo.New(), pool: pool, rdb: rdb, cache: c, mod: mod, audit: &memAudit{}}
	h.e.HTTPErrorHandler = web.ErrorHandler(log)
	h.e.Use(web.RequestIDs())
	if _, err := web.Mount(h.e.Group("/api/v1"), roleTokens{}, h.audit, mod); err != nil {
		t.Fatal(err)
	}
	return h
}

// do sends a request as role (empty: no token); body is JSON-encoded unless it is a
// string (sent raw).
func (h *harness) do(method, path string, role rbac.Role, body any) (int, []byte) {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		r = bytes.NewReader(buf)
	}
	req := httptest.NewRequest(method, "/api/v1"+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+string(role))
	}
	rec := httptest.NewRecorder()
	h.e.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// must sends a request and fails unless the status is want; it decodes the body into out.
func (h *harness) must(want int, method, path string, role rbac.Role, body, out any) {
	h.t.Helper()
	code, b := h.do(method, path, role, body)
	if code != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

func (h *harness) create(name, ticker string, extra map[string]any) Company {
	h.t.Helper()
	body := map[string]any{"name": name}
	if ticker != "" {
		body["ticker"] = ticker
	}
	for k, v := range extra {
		body[k] = v
	}
	var c Company
	h.must(http.StatusCreated, http.MethodPost, "/companies", rbac.Analyst, body, &c)
	return c
}

var fixedNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
