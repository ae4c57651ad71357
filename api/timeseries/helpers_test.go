package timeseries

import (
	"net/http"
	"testing"

	"github.com/corpintel/corpintel/api/apitest"
	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/companies"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/corpintel/corpintel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type harness struct {
	t      testing.TB
	s      *apitest.Server
	mod    *Module
	tokens map[rbac.Role]string
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	var mod *Module
	s := apitest.New(t, func(d app.Deps) []web.Module {
		mod = New(d)
		return []web.Module{companies.New(d), mod}
	})
	h := &harness{t: t, s: s, mod: mod, tokens: map[rbac.Role]string{}}
	for _, r := range rbac.Roles() {
		h.tokens[r], _ = s.Token(r)
	}
	return h
}

func (h *harness) do(method, path string, role rbac.Role, body any) *apitest.Resp {
	h.t.Helper()
	return h.s.Do(method, "/api/v1"+path, h.tokens[role], body)
}

func (h *harness) must(want int, method, path string, role rbac.Role, body, out any) {
	h.t.Helper()
	r := h.do(method, path, role, body)
	if r.Code != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Code, want, r.Body)
	}
	if out != nil {
		r.JSON(h.t, out)
	}
}

func (h *harness) company(name string) string {
	h.t.Helper()
	var c companies.Company
	h.must(http.StatusCreated, http.MethodPost, "/companies", rbac.Analyst, map[string]string{"name": name}, &c)
	return c.ID
}
