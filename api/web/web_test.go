package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/corpintel/corpintel/api/rbac"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type tokens map[string]*Principal

func (t tokens) Authenticate(_ context.Context, tok string) (*Principal, error) {
	if p, ok := t[tok]; ok {
		return p, nil
	}
	return nil, ErrUnauthorized()
}

type memAudit struct {
	mu     sync.Mutex
	events []Event
	fail   bool
}

func (m *memAudit) Record(_ context.Context, e Event) error {
	if m.fail {
		return io.ErrClosedPipe
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	return nil
}

type widget struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

func (w widget) Validate() []FieldError {
	if strings.TrimSpace(w.Name) == "" {
		return []FieldError{{Field: "name", Message: "required"}}
	}
	return nil
}

type widgets struct{}

func (widgets) Routes() []Route {
	return []Route{
		{Method: http.MethodGet, Path: "/widgets", Perm: rbac.CompaniesRead, Handler: func(c echo.Context) error {
			return JSON(c, http.StatusOK, []widget{{Name: "a"}})
		}},
		{Method: http.MethodPost, Path: "/widgets", Perm: rbac.CompaniesWrite, Audit: "widget.create", MaxBody: 64,
			Handler: func(c echo.Context) error {
				var w widget
				if err := Bind(c, &w); err != nil {
					return err
				}
				SetAuditDetail(c, map[string]any{"name": w.Name})
				return JSON(c, http.StatusCreated, w)
			}},
		{Method: http.MethodGet, Path: "/widgets/:id/content", Perm: rbac.CompaniesRead, Audit: "widget.download",
			Handler: func(c echo.Context) error {
				SetAuditTarget(c, "widget:"+c.Param("id"))
				if c.Param("id") == "missing" {
					return ErrNotFound()
				}
				c.Response().WriteHeader(http.StatusOK)
				_, err := c.Response().Write([]byte("content"))
				return err
			}},
		{Method: http.MethodGet, Path: "/open", Perm: rbac.Public, Handler: func(c echo.Context) error {
			return JSON(c, http.StatusOK, map[string]bool{"ok": true})
		}},
		{Method: http.MethodGet, Path: "/boom", Perm: rbac.Public, Handler: func(echo.Context) error {
			return io.ErrUnexpectedEOF
		}},
	}
}

func newTestServer(t *testing.T, aud *memAudit) (*echo.Echo, *HTTPMetrics) {
	t.Helper()
	e := echo.New()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.HTTPErrorHandler = ErrorHandler(log)
	m := NewHTTPMetrics(prometheus.NewRegistry())
	e.Use(RequestIDs(), AccessLog(log), m.Middleware(), SecurityHeaders(), CORS([]string{"https://ok.example"}))
	auth := tokens{
		"admin":  {UserID: "u1", Role: rbac.Admin},
		"viewer": {UserID: "u2", Role: rbac.Viewer},
	}
	if _, err := Mount(e.Group("/api/v1"), auth, aud, widgets{}); err != nil {
		t.Fatal(err)
	}
	return e, m
}

func do(e *echo.Echo, method, path, token, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func TestRoutesAuthAndErrors(t *testing.T) {
	aud := &memAudit{}
	e, m := newTestServer(t, aud)
	cases := []struct {
		name, method, path, token, body string
		status                          int
		contains                        string
	}{
		{"no token", "GET", "/api/v1/widgets", "", "", 401, "missing, invalid or expired token"},
		{"bad token", "GET", "/api/v1/widgets", "nope", "", 401, ""},
		{"viewer reads", "GET", "/api/v1/widgets", "viewer", "", 200, `"name":"a"`},
		{"viewer writes", "POST", "/api/v1/widgets", "viewer", `{"name":"x"}`, 403, "your role does not allow this"},
		{"admin writes", "POST", "/api/v1/widgets", "admin", `{"name":"x","size":2}`, 201, `"size":2`},
		{"unknown field", "POST", "/api/v1/widgets", "admin", `{"name":"x","evil":1}`, 400, `unknown field \"evil\"`},
		{"malformed", "POST", "/api/v1/widgets", "admin", `{"name":`, 400, "malformed JSON"},
		{"two values", "POST", "/api/v1/widgets", "admin", `{"name":"x"}{}`, 400, "exactly one JSON value"},
		{"wrong type", "POST", "/api/v1/widgets", "admin", `{"name":"x","size":"big"}`, 422, `"field":"size"`},
		{"invalid", "POST", "/api/v1/widgets", "admin", `{"name":"  "}`, 422, `"field":"name"`},
		{"too large", "POST", "/api/v1/widgets", "admin", `{"name":"` + strings.Repeat("x", 100) + `"}`, 413, "larger than 64 bytes"},
		{"public", "GET", "/api/v1/open", "", "", 200, `"ok":true`},
		{"internal", "GET", "/api/v1/boom", "", "", 500, `"status":500`},
		{"not found", "GET", "/api/v1/nothing", "", "", 404, `"title":"Not Found"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := do(e, c.method, c.path, c.token, c.body)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.status, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), c.contains) {
				t.Fatalf("body %s lacks %s", rec.Body, c.contains)
			}
			if rec.Header().Get(HeaderRequestID) == "" {
				t.Fatal("no request id")
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Fatal("security headers missing")
			}
			if c.status >= 400 {
				if ct := rec.Header().Get("Content-Type"); ct != ProblemContentType {
					t.Fatalf("content type %q", ct)
				}
				var p Problem
				if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != c.status || p.RequestID == "" {
					t.Fatalf("bad problem %s (%v)", rec.Body, err)
				}
			}
		})
	}
	// every POST was audited with its outcome, the denied one too
	outcomes := map[string]int{}
	for _, ev := range aud.events {
		if ev.Action != "widget.create" || ev.Kind != KindApplication {
			t.Fatalf("unexpected event %+v", ev)
		}
		outcomes[ev.Outcome]++
	}
	if outcomes["success"] != 1 || outcomes["denied"] != 1 || outcomes["failure"] != 6 {
		t.Fatalf("audit outcomes %v", outcomes)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("/api/v1/widgets", "POST", "201")); got != 1 {
		t.Fatalf("metrics counted %v created", got)
	}
}

func TestRequestIDPassthroughAndCORS(t *testing.T) {
	e, _ := newTestServer(t, &memAudit{})
	rec := do(e, "GET", "/api/v1/open", "", "", HeaderRequestID, "abc-123", "Origin", "https://ok.example")
	if rec.Header().Get(HeaderRequestID) != "abc-123" {
		t.Fatalf("request id not passed through: %q", rec.Header().Get(HeaderRequestID))
	}
	if rec.Header().Get("Access-Control-Allow-Origin") != "https://ok.example" {
		t.Fatal("allowed origin not echoed")
	}
	rec = do(e, "GET", "/api/v1/open", "", "", HeaderRequestID, "bad id\n<script>", "Origin", "https://evil.example")
	if id := rec.Header().Get(HeaderRequestID); id == "" || strings.Contains(id, "<") {
		t.Fatalf("hostile request id accepted: %q", id)
	}
	if rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("foreign origin allowed")
	}
}

func TestAuditFailureFailsWrite(t *testing.T) {
	e, _ := newTestServer(t, &memAudit{fail: true})
	if rec := do(e, "POST", "/api/v1/widgets", "admin", `{"name":"x"}`); rec.Code != 500 {
		t.Fatalf("unaudited write answered %d", rec.Code)
	}
}

// A read that names an audit action is an access event: recorded after the handler,
// its response not held; when the record cannot be written the answer stands and the
// access log says so at error level.
func TestAccessEvents(t *testing.T) {
	aud := &memAudit{}
	e, _ := newTestServer(t, aud)
	if rec := do(e, "GET", "/api/v1/widgets/w1/content", "viewer", ""); rec.Code != 200 || rec.Body.String() != "content" {
		t.Fatalf("download: %d %q", rec.Code, rec.Body)
	}
	do(e, "GET", "/api/v1/widgets/missing/content", "viewer", "")
	do(e, "GET", "/api/v1/widgets/w1/content", "", "")
	want := []string{"widget:w1 u2 success 200", "widget:missing u2 failure 404", "/api/v1/widgets/w1/content  denied 401"}
	aud.mu.Lock()
	if len(aud.events) != len(want) {
		t.Fatalf("events %+v", aud.events)
	}
	for i, ev := range aud.events {
		if got := fmt.Sprintf("%s %s %s %d", ev.Target, ev.ActorID, ev.Outcome, ev.Status); got != want[i] || ev.Kind != KindAccess || ev.Action != "widget.download" {
			t.Errorf("event %d: %s (%s %s), want %s", i, got, ev.Kind, ev.Action, want[i])
		}
	}
	aud.mu.Unlock()

	var logs strings.Builder
	e2 := echo.New()
	log := slog.New(slog.NewTextHandler(&logs, nil))
	e2.HTTPErrorHandler = ErrorHandler(log)
	e2.Use(RequestIDs(), AccessLog(log))
	if _, err := Mount(e2.Group("/api/v1"), tokens{"viewer": {UserID: "u2", Role: rbac.Viewer}}, &memAudit{fail: true}, widgets{}); err != nil {
		t.Fatal(err)
	}
	if rec := do(e2, "GET", "/api/v1/widgets/w1/content", "viewer", ""); rec.Code != 200 || rec.Body.String() != "content" {
		t.Fatalf("download with the audit store down: %d %q", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "not recorded") {
		t.Errorf("unrecorded access not logged as an error: %s", logs.String())
	}
}

func TestCheckRoute(t *testing.T) {
	h := func(echo.Context) error { return nil }
	bad := []Route{
		{Method: "GET", Path: "/a", Perm: rbac.CompaniesRead},
		{Method: "GET", Path: "/a", Handler: h},
		{Method: "GET", Path: "/a", Perm: "companies:everything", Handler: h},
		{Method: "DELETE", Path: "/a", Perm: rbac.CompaniesWrite, Handler: h},
	}
	for _, r := range bad {
		if CheckRoute(r) == nil {
			t.Errorf("CheckRoute(%+v) accepted a broken route", r)
		}
	}
	if err := CheckRoute(Route{Method: "DELETE", Path: "/a", Perm: rbac.CompaniesWrite, Handler: h, Audit: "a.delete"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Mount(echo.New().Group(""), nil, nil, moduleFunc(func() []Route { return bad[:1] })); err == nil {
		t.Fatal("Mount accepted a route without handler")
	}
}

type moduleFunc func() []Route

func (f moduleFunc) Routes() []Route { return f() }

func TestDecodeUnsupportedMediaType(t *testing.T) {
	req := httptest.NewRequest("POST", "/", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "text/plain")
	var w widget
	err := Decode(req, &w)
	if p, ok := err.(*Problem); !ok || p.Status != 415 {
		t.Fatalf("got %v", err)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"a","size":1}`, `{"name":`, `[]`, `{"x":1}`, `{"name":"\u0000"}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var w widget
		err := DecodeJSON(strings.NewReader(string(b)), &w)
		if err != nil {
			p, ok := err.(*Problem)
			if !ok || (p.Status != 400 && p.Status != 422) {
				t.Fatalf("decode error is not a 400/422 problem: %v", err)
			}
		}
	})
}
