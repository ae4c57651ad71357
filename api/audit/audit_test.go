package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/labstack/echo/v4"
)

var t0 = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

func TestRecordAndList(t *testing.T) {
	pool := testDB(t)
	ctx := context.Background()
	rec := NewRecorder(pool, nil, nil, fixedClock(t0))
	events := []web.Event{
		{Time: t0.Add(-5 * time.Minute), ActorID: "u1", ActorRole: "admin", Action: "company.create", Target: "/api/v1/companies", Status: 201, ClientIP: "10.0.0.1", RequestID: "r1", Detail: map[string]any{"name": "ACME"}},
		{Time: t0.Add(-4 * time.Minute), ActorID: "u2", ActorRole: "viewer", Action: "company.create", Status: 403, ClientIP: "not an ip"},
		{Time: t0.Add(-3 * time.Minute), ActorID: "u1", Action: "auth.login", Status: 200, Kind: web.KindSecurity},
		{Time: t0.Add(-2 * time.Minute), ActorID: "x' OR '1'='1", Action: "company.delete", Status: 500},
		{ActorID: "u1", Action: "document.upload", Status: 201, Kind: web.KindAccess}, // time from the clock
	}
	for _, e := range events {
		if err := rec.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		f     Filter
		wantN int
		want  []string // actions, newest first
	}{
		{"all", Filter{}, 5, []string{"document.upload", "company.delete", "auth.login", "company.create", "company.create"}},
		{"actor", Filter{Actor: "u1"}, 3, []string{"document.upload", "auth.login", "company.create"}},
		{"injection is data", Filter{Actor: "x' OR '1'='1"}, 1, []string{"company.delete"}},
		{"action prefix", Filter{Action: "company."}, 3, []string{"company.delete", "company.create", "company.create"}},
		{"action exact", Filter{Action: "auth.login"}, 1, []string{"auth.login"}},
		{"action no match", Filter{Action: "companyx"}, 0, nil},
		{"kind", Filter{Kind: web.KindSecurity}, 1, []string{"auth.login"}},
		{"outcome denied", Filter{Outcome: "denied"}, 1, []string{"company.create"}},
		{"outcome failure", Filter{Outcome: "failure"}, 1, []string{"company.delete"}},
		{"from to", Filter{From: t0.Add(-4 * time.Minute), To: t0.Add(-2 * time.Minute)}, 2, []string{"auth.login", "company.create"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := List(ctx, pool, c.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range p.Items {
				got = append(got, r.Action)
			}
			if len(got) != c.wantN || strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
	p, err := List(ctx, pool, Filter{Action: "company.create", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	first := p.Items[0]
	if first.ActorID != "u2" || first.Outcome != "denied" || first.Status != 403 || first.ClientIP != "not an ip" || first.Kind != web.KindApplication {
		t.Fatalf("stored event %+v", first)
	}
	p2, err := List(ctx, pool, Filter{Action: "company.create", Limit: 1, After: mustCursor(t, p.NextCursor)})
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.Items) != 1 || string(p2.Items[0].Detail) != `{"name": "ACME"}` || p2.Items[0].RequestID != "r1" {
		t.Fatalf("second page %+v", p2)
	}
	if p2.NextCursor != "" {
		t.Fatal("last page has a cursor")
	}
}

func mustCursor(t *testing.T, s string) *Cursor {
	t.Helper()
	c, err := ParseCursor(s)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestPaginationWalksEverythingOnce(t *testing.T) {
	pool := testDB(t)
	ctx := context.Background()
	rec := NewRecorder(pool, nil, nil, nil)
	// Several events share a timestamp: the cursor must break ties by id.
	const n = 23
	for i := range n {
		if err := rec.Record(ctx, web.Event{Time: t0.Add(time.Duration(i/4) * time.Second), Action: fmt.Sprintf("x.%d", i), Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	var last *Record
	f := Filter{Limit: 5}
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("pagination does not end")
		}
		p, err := List(ctx, pool, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Items {
			if seen[r.Action] {
				t.Fatalf("%s listed twice", r.Action)
			}
			seen[r.Action] = true
			if last != nil && (r.Time.After(last.Time) || r.Time.Equal(last.Time) && r.ID > last.ID) {
				t.Fatalf("not newest first: %+v after %+v", r, last)
			}
			r := r
			last = &r
		}
		if p.NextCursor == "" {
			break
		}
		f.After = mustCursor(t, p.NextCursor)
	}
	if len(seen) != n {
		t.Fatalf("listed %d of %d", len(seen), n)
	}
}

func TestParseFilter(t *testing.T) {
	cur := Cursor{Time: t0, ID: 42}.String()
	cases := []struct {
		query string
		bad   []string
		check func(Filter) bool
	}{
		{"", nil, func(f Filter) bool { return f.Limit == DefaultLimit && f.After == nil }},
		{"actor=u1&action=company.&kind=security&outcome=denied&limit=7", nil, func(f Filter) bool {
			return f.Actor == "u1" && f.Action == "company." && f.Kind == web.KindSecurity && f.Outcome == "denied" && f.Limit == 7
		}},
		{"from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00%2B01:00", nil, func(f Filter) bool {
			return f.From.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) && f.To.Equal(time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC))
		}},
		{"cursor=" + cur, nil, func(f Filter) bool { return f.After != nil && f.After.ID == 42 && f.After.Time.Equal(t0) }},
		{"kind=evil", []string{"kind"}, nil},
		{"outcome=maybe", []string{"outcome"}, nil},
		{"action=COMPANY", []string{"action"}, nil},
		{"action=a%25", []string{"action"}, nil},
		{"from=yesterday", []string{"from"}, nil},
		{"from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", []string{"to"}, nil},
		{"limit=0", []string{"limit"}, nil},
		{"limit=501", []string{"limit"}, nil},
		{"limit=ten", []string{"limit"}, nil},
		{"cursor=%25%25", []string{"cursor"}, nil},
		{"cursor=bm90LWEtY3Vyc29y", []string{"cursor"}, nil},
		{"actor=a%00b", []string{"actor"}, nil},
		{"actr=u1", []string{"actr"}, nil},
		{"kind=access&kind=security", []string{"kind"}, nil},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			q, err := url.ParseQuery(c.query)
			if err != nil {
				t.Fatal(err)
			}
			f, errs := ParseFilter(q)
			var fields []string
			for _, e := range errs {
				fields = append(fields, e.Field)
			}
			if strings.Join(fields, ",") != strings.Join(c.bad, ",") {
				t.Fatalf("errors on %v, want %v", errs, c.bad)
			}
			if c.check != nil && !c.check(f) {
				t.Fatalf("filter %+v", f)
			}
		})
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "actor=u1&action=company.&kind=security", "from=2026-01-01T00:00:00Z&limit=3",
		"cursor=" + (Cursor{Time: t0, ID: 1}.String()), "cursor=MTox", "action=%ff", "limit=-1&to=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		flt, errs := ParseFilter(q)
		if len(errs) > 0 {
			return
		}
		if flt.Limit < 1 || flt.Limit > MaxLimit {
			t.Fatalf("limit %d accepted", flt.Limit)
		}
		if flt.Action != "" && !validAction(flt.Action) {
			t.Fatalf("action %q accepted", flt.Action)
		}
		where, args := flt.where()
		if strings.Count(where, "$") != len(args) {
			t.Fatalf("where %q has %d args", where, len(args))
		}
		// The SQL depends on which filters are set, never on their values.
		other := flt
		if other.Actor != "" {
			other.Actor = "z"
		}
		if other.Action != "" {
			other.Action = "z"
		}
		if other.After != nil {
			other.After = &Cursor{ID: 1}
		}
		if w2, _ := other.where(); w2 != where {
			t.Fatalf("values leak into SQL: %q vs %q", where, w2)
		}
	})
}

func FuzzParseCursor(f *testing.F) {
	f.Add(Cursor{Time: t0, ID: 7}.String())
	f.Add("")
	f.Add("MTox")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		if c.ID <= 0 {
			t.Fatalf("cursor id %d accepted", c.ID)
		}
		back, err := ParseCursor(c.String())
		if err != nil || back.ID != c.ID || !back.Time.Equal(c.Time) {
			t.Fatalf("round trip %+v -> %+v (%v)", c, back, err)
		}
	})
}

type staticAuth map[string]*web.Principal

func (a staticAuth) Authenticate(_ context.Context, tok string) (*web.Principal, error) {
	if p, ok := a[tok]; ok {
		return p, nil
	}
	return nil, web.ErrUnauthorized()
}

func TestHandler(t *testing.T) {
	pool := testDB(t)
	ctx := context.Background()
	rec := NewRecorder(pool, nil, nil, nil)
	for i := range 3 {
		if err := rec.Record(ctx, web.Event{Time: t0.Add(time.Duration(i) * time.Second), ActorID: "u1", Action: "company.update", Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	e := echo.New()
	e.HTTPErrorHandler = web.ErrorHandler(slog.New(slog.DiscardHandler))
	auth := staticAuth{"admin": {UserID: "a", Role: rbac.Admin}, "analyst": {UserID: "b", Role: rbac.Analyst}}
	if _, err := web.Mount(e.Group("/api/v1"), auth, rec, New(app.Deps{Pool: pool})); err != nil {
		t.Fatal(err)
	}
	get := func(path, tok string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		return w
	}
	if w := get("/api/v1/audit", "analyst"); w.Code != http.StatusForbidden {
		t.Fatalf("analyst got %d", w.Code)
	}
	if w := get("/api/v1/audit?kind=nope&limit=0", "admin"); w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), `"field":"kind"`) {
		t.Fatalf("bad filter: %d %s", w.Code, w.Body)
	}
	w := get("/api/v1/audit?actor=u1&limit=2", "admin")
	var p Page
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &p) != nil || len(p.Items) != 2 || p.NextCursor == "" {
		t.Fatalf("page: %d %s", w.Code, w.Body)
	}
	w = get("/api/v1/audit?actor=u1&limit=2&cursor="+p.NextCursor, "admin")
	p = Page{}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || len(p.Items) != 1 || p.NextCursor != "" {
		t.Fatalf("page 2: %d %s", w.Code, w.Body)
	}
	w = get("/api/v1/audit?actor=nobody", "admin")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"items":[]`) {
		t.Fatalf("empty listing: %s", w.Body)
	}
}

func TestRecordFailsWhenDatabaseIsGone(t *testing.T) {
	pool := testDB(t)
	rec := NewRecorder(pool, nil, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := rec.Record(ctx, web.Event{Action: "x.y"}); err == nil {
		t.Fatal("record on a cancelled context succeeded")
	}
	if err := rec.Record(context.Background(), web.Event{Action: "x.y", Detail: map[string]any{"bad": func() {}}}); err == nil {
		t.Fatal("unencodable detail accepted")
	}
}

func TestArchiveRoundTrip(t *testing.T) {
	recs := []Record{{ID: 1, Time: t0, Action: "a.b", Kind: web.KindAccess, Detail: json.RawMessage(`{"k":"<v>"}`)}, {ID: 2, Time: t0, Action: "c"}}
	data, err := EncodeArchive(recs)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeArchive(strings.NewReader(string(data)))
	if err != nil || len(back) != 2 || back[0].Action != "a.b" || string(back[0].Detail) != `{"k":"<v>"}` {
		t.Fatalf("round trip %+v %v", back, err)
	}
	if _, err := DecodeArchive(strings.NewReader("not gzip")); err == nil {
		t.Fatal("garbage decoded")
	}
	if _, err := DecodeArchive(io.LimitReader(strings.NewReader(string(data)), int64(len(data)-5))); err == nil {
		t.Fatal("truncated archive decoded")
	}
}

func TestTruncateIP(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.23": "198.51.100.0", "198.51.100.0": "198.51.100.0", "10.1.2.3/8": "10.1.2.0",
		"2001:db8:1234:5678::1": "2001:db8:1234::", "::ffff:1.2.3.4": "::", "": "", "not an ip": "", "999.1.1.1": "",
	} {
		if got := TruncateIP(in); got != want {
			t.Errorf("TruncateIP(%q) = %q, want %q", in, got, want)
		}
	}
}
