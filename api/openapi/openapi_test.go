package openapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/labstack/echo/v4"
)

type thing struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Tags    []string  `json:"tags,omitempty"`
	When    time.Time `json:"when"`
	Next    *thing    `json:"next,omitempty"`
	Score   float64   `json:"score"`
	Hidden  string    `json:"-"`
	private int
}

func TestBuild(t *testing.T) {
	h := func(echo.Context) error { return nil }
	routes := []web.Route{
		{Method: "GET", Path: "/things/:id", Perm: rbac.CompaniesRead, Summary: "Get a thing", Tag: "things", Handler: h, Response: thing{}},
		{Method: "POST", Path: "/things", Perm: rbac.CompaniesWrite, Handler: h, Request: thing{}, Response: &thing{}, Audit: "thing.create",
			Query: []web.Param{{Name: "dry_run", Type: "boolean"}}},
		{Method: "GET", Path: "/open", Perm: rbac.Public, Handler: h, Response: map[string]int{}},
	}
	_ = thing{private: 1} // an unexported field, which the document must leave out
	doc := Build("t", "1", "/api/v1", routes)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"openapi":"3.1.0"`, `"/api/v1/things/{id}"`, `"x-permission":"companies:read"`,
		`"$ref":"#/components/schemas/openapi_thing"`, `"format":"date-time"`, `"required":["id","name","score","when"]`,
		`"dry_run"`, `"201"`, `"security":[]`} {
		if !strings.Contains(s, want) {
			t.Errorf("document lacks %s", want)
		}
	}
	if strings.Contains(s, "Hidden") || strings.Contains(s, "private") {
		t.Error("document leaks ignored fields")
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
}

func TestDocsPageIsSelfContained(t *testing.T) {
	e := echo.New()
	e.GET("/docs", DocsHandler)
	e.GET("/docs/docs.js", DocsScriptHandler)
	for _, p := range []string{"/docs", "/docs/docs.js"} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != 200 {
			t.Fatalf("%s: %d", p, rec.Code)
		}
		body := rec.Body.String()
		if strings.Contains(body, "https://") || strings.Contains(body, "http://") {
			t.Fatalf("%s references an external resource", p)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || csp == "" {
			t.Fatalf("%s CSP %q", p, csp)
		}
	}
}
