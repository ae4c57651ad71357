package companies

import (
	"net/http"
	"testing"

	"github.com/corpintel/corpintel/api/apitest"
	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/audit"
	"github.com/corpintel/corpintel/api/cache"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// harness is the companies module served by apitest (real PostgreSQL, Redis, MinIO),
// with one token per role.
type harness struct {
	t      testing.TB
	s      *apitest.Server
	pool   *pgxpool.Pool
	rdb    redis.UniversalClient
	cache  *cache.Cache
	prefix string
	mod    *Module
	tokens map[rbac.Role]string
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	var mod *Module
	s := apitest.New(t, func(d app.Deps) []web.Module {
		mod = New(d)
		return []web.Module{mod}
	})
	h := &harness{t: t, s: s, pool: s.Deps.Pool, rdb: s.Deps.Redis, cache: s.Deps.Cache, prefix: s.Redis.Prefix,
		mod: mod, tokens: map[rbac.Role]string{}}
	for _, r := range rbac.Roles() {
		h.tokens[r], _ = s.Token(r)
	}
	return h
}

// do sends a request as role (empty: no token); string bodies are sent raw.
func (h *harness) do(method, path string, role rbac.Role, body any) (int, []byte) {
	h.t.Helper()
	r := h.s.Do(method, "/api/v1"+path, h.tokens[role], body)
	return r.Code, r.Body
}

// must sends a request and fails unless the status is want; it decodes the body into out.
func (h *harness) must(want int, method, path string, role rbac.Role, body, out any) {
	h.t.Helper()
	r := h.s.Do(method, "/api/v1"+path, h.tokens[role], body)
	if r.Code != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Code, want, r.Body)
	}
	if out != nil {
		r.JSON(h.t, out)
	}
}

func (h *harness) lastEvent() audit.Record {
	h.t.Helper()
	ev := h.s.Events(h.t)
	if len(ev) == 0 {
		h.t.Fatal("no audit events")
	}
	return ev[0]
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
