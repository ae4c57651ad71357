package companies

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
)

func problemFields(t *testing.T, b []byte) []string {
	t.Helper()
	var p web.Problem
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("not a problem: %s", b)
	}
	var f []string
	for _, e := range p.Errors {
		f = append(f, e.Field)
	}
	return f
}

func TestCRUD(t *testing.T) {
	h := newHarness(t)
	c := h.create("  Müller & Söhne AG — 東京支社 ", "msag", map[string]any{
		"sector": "Industrials", "industry": "Machinery", "country": "de", "website": "https://mueller.example",
		"description": "Präzisionsmaschinen", "employees": 1200, "founded_year": 1897,
	})
	if c.Name != "Müller & Söhne AG — 東京支社" || *c.Ticker != "MSAG" || *c.Country != "DE" || *c.Employees != 1200 {
		t.Fatalf("created %+v", c)
	}
	if ev := h.lastEvent(); ev.Action != "company.create" || ev.Target != "company:"+c.ID || ev.Outcome != "success" {
		t.Fatalf("audit %+v", ev)
	}

	var got Company
	h.must(http.StatusOK, http.MethodGet, "/companies/"+c.ID, rbac.Viewer, nil, &got)
	if got.ID != c.ID || got.Name != c.Name || !got.CreatedAt.Equal(c.CreatedAt) {
		t.Fatalf("get %+v, want %+v", got, c)
	}

	// PATCH: absent fields stay, null clears, values replace; the cached copy is dropped.
	var upd Company
	h.must(http.StatusOK, http.MethodPatch, "/companies/"+c.ID, rbac.Analyst,
		`{"website": null, "employees": 1300, "ticker": "msg.b"}`, &upd)
	if upd.Website != nil || *upd.Employees != 1300 || *upd.Ticker != "MSG.B" || upd.Name != c.Name || *upd.Sector != "Industrials" {
		t.Fatalf("patched %+v", upd)
	}
	if !upd.UpdatedAt.After(c.UpdatedAt) && !upd.UpdatedAt.Equal(c.UpdatedAt) {
		t.Fatalf("updated_at went back: %v < %v", upd.UpdatedAt, c.UpdatedAt)
	}
	h.must(http.StatusOK, http.MethodGet, "/companies/"+c.ID, rbac.Viewer, nil, &got)
	if got.Website != nil || *got.Employees != 1300 {
		t.Fatalf("stale read after update: %+v", got)
	}
	// An empty patch changes nothing.
	h.must(http.StatusOK, http.MethodPatch, "/companies/"+c.ID, rbac.Analyst, `{}`, &got)

	// DELETE removes the company and, through the cascade trigger, its metric points.
	if _, err := h.pool.Exec(context.Background(),
		`INSERT INTO financial_metrics (company_id, metric, time, value) VALUES ($1, 'revenue', now(), 1)`, c.ID); err != nil {
		t.Fatal(err)
	}
	h.must(http.StatusNoContent, http.MethodDelete, "/companies/"+c.ID, rbac.Analyst, nil, nil)
	var n int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM financial_metrics WHERE company_id = $1`, c.ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("metric points left after delete: %d (%v)", n, err)
	}
	h.must(http.StatusNotFound, http.MethodGet, "/companies/"+c.ID, rbac.Viewer, nil, nil)
	h.must(http.StatusNotFound, http.MethodDelete, "/companies/"+c.ID, rbac.Analyst, nil, nil)
	h.must(http.StatusNotFound, http.MethodPatch, "/companies/"+c.ID, rbac.Analyst, `{"name":"x"}`, nil)
	for _, bad := range []string{"nope", "00000000-0000-0000-0000-00000000000g", "%27%20OR%201=1--"} {
		h.must(http.StatusNotFound, http.MethodGet, "/companies/"+bad, rbac.Viewer, nil, nil)
		h.must(http.StatusNotFound, http.MethodPatch, "/companies/"+bad, rbac.Analyst, `{}`, nil)
		h.must(http.StatusNotFound, http.MethodDelete, "/companies/"+bad, rbac.Analyst, nil, nil)
	}
}

func TestWriteErrors(t *testing.T) {
	h := newHarness(t)
	a := h.create("Alpha", "ALP", nil)
	cases := []struct {
		name   string
		method string
		path   string
		role   rbac.Role
		body   any
		status int
		fields []string
	}{
		{"viewer cannot create", http.MethodPost, "/companies", rbac.Viewer, `{"name":"x"}`, 403, nil},
		{"anonymous", http.MethodPost, "/companies", "", `{"name":"x"}`, 401, nil},
		{"viewer cannot delete", http.MethodDelete, "/companies/" + a.ID, rbac.Viewer, nil, 403, nil},
		{"name required", http.MethodPost, "/companies", rbac.Analyst, `{"ticker":"X"}`, 422, []string{"name"}},
		{"blank name", http.MethodPost, "/companies", rbac.Analyst, `{"name":"   "}`, 422, []string{"name"}},
		{"null name in patch", http.MethodPatch, "/companies/" + a.ID, rbac.Analyst, `{"name":null}`, 422, []string{"name"}},
		{"long name", http.MethodPost, "/companies", rbac.Analyst, map[string]any{"name": strings.Repeat("é", 201)}, 422, []string{"name"}},
		{"control chars", http.MethodPost, "/companies", rbac.Analyst, map[string]any{"name": "a\x00b"}, 422, []string{"name"}},
		{"every field bad", http.MethodPost, "/companies", rbac.Analyst, map[string]any{
			"name": "ok", "ticker": "TOO-LONG-TICKER", "sector": strings.Repeat("s", 101), "industry": "a\nb",
			"country": "XX", "website": "javascript:alert(1)", "description": strings.Repeat("d", 10001),
			"employees": -1, "founded_year": 3000,
		}, 422, []string{"ticker", "sector", "industry", "country", "website", "description", "employees", "founded_year"}},
		{"wrong type", http.MethodPost, "/companies", rbac.Analyst, `{"name":"x","employees":"many"}`, 422, []string{"employees"}},
		{"unknown field", http.MethodPost, "/companies", rbac.Analyst, `{"name":"x","ceo":"y"}`, 400, nil},
		{"malformed", http.MethodPost, "/companies", rbac.Analyst, `{"name":`, 400, nil},
		{"two values", http.MethodPost, "/companies", rbac.Analyst, `{"name":"x"}{"name":"y"}`, 400, nil},
		{"ticker taken", http.MethodPost, "/companies", rbac.Analyst, `{"name":"Beta","ticker":"alp"}`, 409, []string{"ticker"}},
		{"ticker taken on patch", http.MethodPatch, "/companies/" + h.create("Gamma", "", nil).ID, rbac.Analyst, `{"ticker":"ALP"}`, 409, []string{"ticker"}},
		{"oversized body", http.MethodPost, "/companies", rbac.Analyst, `{"name":"` + strings.Repeat("x", 2<<20) + `"}`, 413, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, b := h.do(c.method, c.path, c.role, c.body)
			if code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, b)
			}
			if c.fields != nil {
				got := problemFields(t, b)
				if !slices.Equal(got, c.fields) {
					t.Fatalf("fields %v, want %v", got, c.fields)
				}
			}
		})
	}
}

func listAll(t *testing.T, h *harness, query url.Values) []Company {
	t.Helper()
	var all []Company
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
		var p Page
		h.must(http.StatusOK, http.MethodGet, "/companies?"+query.Encode(), rbac.Viewer, nil, &p)
		all = append(all, p.Items...)
		if p.NextCursor == nil {
			return all
		}
		query.Set("cursor", *p.NextCursor)
	}
}

func names(cs []Company) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestListPaginationAndFilters(t *testing.T) {
	h := newHarness(t)
	var want []string
	for i, n := range []string{"Delta", "alpha", "Charlie", "Bravo", "Échelon", "Zulu", "Bravo", "Mike", "Oscar", "Kilo", "Ålborg"} {
		country := []string{"US", "DE", "JP"}[i%3]
		sector := []string{"Energy", "Financials"}[i%2]
		h.create(n, "", map[string]any{"country": country, "sector": sector})
		want = append(want, n)
	}
	all := listAll(t, h, url.Values{"limit": {"3"}})
	if len(all) != len(want) {
		t.Fatalf("paged through %d companies, want %d: %v", len(all), len(want), names(all))
	}
	seen := map[string]bool{}
	for i, c := range all {
		if seen[c.ID] {
			t.Fatalf("company %s twice", c.Name)
		}
		seen[c.ID] = true
		if i > 0 && all[i-1].Name == c.Name && all[i-1].ID > c.ID {
			t.Fatalf("ties not ordered by id: %v", names(all))
		}
	}
	// The page boundary falls between the two "Bravo"s with limit 1: both are returned.
	if n := len(listAll(t, h, url.Values{"limit": {"1"}})); n != len(want) {
		t.Fatalf("limit 1: %d companies", n)
	}
	for _, f := range []struct {
		q    url.Values
		want int
	}{
		{url.Values{"country": {"de"}}, 4},
		{url.Values{"country": {"US"}, "sector": {"Energy"}}, 2},
		{url.Values{"sector": {"Financials"}, "limit": {"2"}}, 5},
		{url.Values{"sector": {"Nope"}}, 0},
	} {
		got := listAll(t, h, f.q)
		if len(got) != f.want {
			t.Errorf("%v: %d companies %v, want %d", f.q, len(got), names(got), f.want)
		}
		for _, c := range got {
			if f.q.Has("country") && *c.Country != strings.ToUpper(f.q.Get("country")) {
				t.Errorf("%v returned %+v", f.q, c)
			}
		}
	}
	// A cursor is tied to its filters.
	var p Page
	h.must(http.StatusOK, http.MethodGet, "/companies?limit=2&country=DE", rbac.Viewer, nil, &p)
	code, b := h.do(http.MethodGet, "/companies?limit=2&country=US&cursor="+*p.NextCursor, rbac.Viewer, nil)
	if code != 422 || !slices.Equal(problemFields(t, b), []string{"cursor"}) {
		t.Fatalf("cursor replayed on other filters: %d %s", code, b)
	}
}

func TestSearch(t *testing.T) {
	h := newHarness(t)
	h.create("Apple Inc.", "AAPL", nil)
	h.create("Applied Materials", "AMAT", nil)
	h.create("Pineapple Express", "PINE", nil)
	h.create("AP Moller Maersk", "AP", nil)
	h.create("Snapple Beverages", "SNAP", nil)
	h.create("Microsoft", "MSFT", nil)
	h.create("100% Natural_Foods", "NAT", nil)

	got := listAll(t, h, url.Values{"q": {"ap"}})
	if len(got) == 0 || *got[0].Ticker != "AP" {
		t.Fatalf("exact ticker match not first: %v", names(got))
	}
	got = listAll(t, h, url.Values{"q": {"apple"}})
	if len(got) < 3 || got[0].Name != "Apple Inc." {
		t.Fatalf("search apple: %v", names(got))
	}
	for _, c := range got {
		if c.Name == "Microsoft" {
			t.Fatalf("search apple found Microsoft")
		}
	}
	// Paging through a search returns the same rows as one big page.
	one := listAll(t, h, url.Values{"q": {"apple"}, "limit": {"200"}})
	paged := listAll(t, h, url.Values{"q": {"apple"}, "limit": {"1"}})
	if !slices.Equal(names(one), names(paged)) {
		t.Fatalf("paged search %v != %v", names(paged), names(one))
	}
	if got := listAll(t, h, url.Values{"q": {"msft"}}); len(got) != 1 || got[0].Name != "Microsoft" {
		t.Fatalf("ticker search: %v", names(got))
	}
	// LIKE metacharacters are literal.
	if got := listAll(t, h, url.Values{"q": {"100%"}}); len(got) != 1 {
		t.Fatalf("q=100%%: %v", names(got))
	}
	if got := listAll(t, h, url.Values{"q": {"l_f"}}); len(got) != 1 {
		t.Fatalf("q=l_f: %v", names(got))
	}
	if got := listAll(t, h, url.Values{"q": {"%"}}); len(got) != 1 {
		t.Fatalf("q=%%: %v", names(got))
	}

	// The ILIKE fallback (no pg_trgm) finds the same companies.
	h.mod.st.mu.Lock()
	h.mod.st.trgm = false
	h.mod.st.mu.Unlock()
	if err := InvalidateLists(context.Background(), h.cache); err != nil {
		t.Fatal(err)
	}
	fb := listAll(t, h, url.Values{"q": {"apple"}, "limit": {"1"}})
	if len(fb) != 3 {
		t.Fatalf("fallback search: %v", names(fb))
	}
	if got := listAll(t, h, url.Values{"q": {"ap"}}); *got[0].Ticker != "AP" {
		t.Fatalf("fallback: exact ticker not first: %v", names(got))
	}
}

func TestInjectionIsData(t *testing.T) {
	h := newHarness(t)
	evil := []string{`' OR '1'='1`, `'; DROP TABLE companies; --`, `\' OR 1=1 --`, `" OR ""="`, `1) OR (1=1`, `%' --`, "Robert'); DROP TABLE students;--"}
	h.create("Innocent Corp", "INNO", map[string]any{"sector": "Energy"})
	for _, s := range evil {
		h.create(s, "", nil) // stored and returned verbatim
		for _, q := range []url.Values{{"q": {s}}, {"sector": {s}}, {"q": {s}, "sector": {s}}} {
			code, b := h.do(http.MethodGet, "/companies?"+q.Encode(), rbac.Viewer, nil)
			if code != http.StatusOK {
				t.Fatalf("%v: %d %s", q, code, b)
			}
			var p Page
			_ = json.Unmarshal(b, &p)
			for _, c := range p.Items {
				if c.Name == "Innocent Corp" {
					t.Fatalf("%v matched an unrelated company", q)
				}
			}
		}
		code, _ := h.do(http.MethodGet, "/companies?"+url.Values{"country": {s}}.Encode(), rbac.Viewer, nil)
		if code != 422 {
			t.Fatalf("country %q: %d", s, code)
		}
		code, _ = h.do(http.MethodGet, "/companies?"+url.Values{"cursor": {s}}.Encode(), rbac.Viewer, nil)
		if code != 422 {
			t.Fatalf("cursor %q: %d", s, code)
		}
	}
	got := listAll(t, h, url.Values{"q": {`'; DROP TABLE companies; --`}})
	if len(got) == 0 || got[0].Name != `'; DROP TABLE companies; --` {
		t.Fatalf("injection string not found as data: %v", names(got))
	}
	if n := len(listAll(t, h, url.Values{})); n != len(evil)+1 {
		t.Fatalf("%d companies after the attack, want %d", n, len(evil)+1)
	}
}

func TestCache(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	c := h.create("Cached Co", "CCO", nil)
	h.must(http.StatusOK, http.MethodGet, "/companies/"+c.ID, rbac.Viewer, nil, nil)
	var p Page
	h.must(http.StatusOK, http.MethodGet, "/companies?q=cached", rbac.Viewer, nil, &p)
	if n, _ := h.rdb.Exists(ctx, h.prefix+"k:"+ItemKey(c.ID)).Result(); n != 1 {
		t.Fatal("GET by id did not cache the company")
	}
	// A change made behind the API's back stays invisible while cached: reads are hits.
	if _, err := h.pool.Exec(ctx, `UPDATE companies SET name = 'Sneaky' WHERE id = $1`, c.ID); err != nil {
		t.Fatal(err)
	}
	var got Company
	h.must(http.StatusOK, http.MethodGet, "/companies/"+c.ID, rbac.Viewer, nil, &got)
	if got.Name != "Cached Co" {
		t.Fatalf("not served from the cache: %q", got.Name)
	}
	if _, err := h.pool.Exec(ctx, `INSERT INTO companies (name) VALUES ('Cached Too')`); err != nil {
		t.Fatal(err)
	}
	h.must(http.StatusOK, http.MethodGet, "/companies?q=cached", rbac.Viewer, nil, &p)
	if len(p.Items) != 1 || p.Items[0].Name != "Cached Co" {
		t.Fatalf("search not served from the cache: %v", names(p.Items))
	}
	// A write through the API invalidates both.
	h.must(http.StatusOK, http.MethodPatch, "/companies/"+c.ID, rbac.Analyst, `{"sector":"Energy"}`, nil)
	h.must(http.StatusOK, http.MethodGet, "/companies/"+c.ID, rbac.Viewer, nil, &got)
	if got.Name != "Sneaky" || *got.Sector != "Energy" {
		t.Fatalf("stale after write: %+v", got)
	}
	h.must(http.StatusOK, http.MethodGet, "/companies?q=cached", rbac.Viewer, nil, &p)
	if len(p.Items) != 1 || p.Items[0].Name != "Cached Too" {
		t.Fatalf("search stale after write: %v", names(p.Items))
	}
}

func TestCacheDown(t *testing.T) {
	h := newHarness(t)
	c := h.create("Uncached", "", nil)
	_ = h.rdb.(interface{ Close() error }).Close() // every Redis call now fails: reads go to PostgreSQL
	h.must(http.StatusOK, http.MethodGet, "/companies/"+c.ID, rbac.Viewer, nil, nil)
	h.must(http.StatusOK, http.MethodGet, "/companies?q=unc", rbac.Viewer, nil, nil)
	h.must(http.StatusOK, http.MethodPatch, "/companies/"+c.ID, rbac.Analyst, `{"sector":"Energy"}`, nil)
}
