package certs

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHTTPHandler(t *testing.T) {
	m, err := New(Config{Mode: ModeSelfSigned, Names: []string{"edge.corpintel.test"}, StateDir: t.TempDir()}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer m.chal.putHTTP01("tok123", "tok123.thumb")()
	h := m.HTTPHandler(nil)
	cases := []struct {
		method, target, host string
		code                 int
		location, body       string
	}{
		{"GET", "/", "edge.corpintel.test", 301, "https://edge.corpintel.test/", ""},
		{"GET", "/a/b?x=1&y=%20z", "edge.corpintel.test", 301, "https://edge.corpintel.test/a/b?x=1&y=%20z", ""},
		{"POST", "/login?next=/admin", "edge.corpintel.test:80", 301, "https://edge.corpintel.test/login?next=/admin", ""},
		{"GET", "/x", "[2001:db8::1]:80", 301, "https://[2001:db8::1]/x", ""},
		{"GET", "/x", "", 400, "", ""},
		{"GET", "/.well-known/acme-challenge/tok123", "edge.corpintel.test", 200, "", "tok123.thumb"},
		{"HEAD", "/.well-known/acme-challenge/tok123", "edge.corpintel.test", 200, "", ""},
		{"POST", "/.well-known/acme-challenge/tok123", "edge.corpintel.test", 405, "", ""},
		{"GET", "/.well-known/acme-challenge/unknown", "edge.corpintel.test", 404, "", ""},
		{"GET", "/.well-known/acme-challenge/", "edge.corpintel.test", 404, "", ""},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(tc.method, tc.target, nil)
		req.Host = tc.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code || rec.Header().Get("Location") != tc.location || (tc.body != "" && rec.Body.String() != tc.body) {
			t.Errorf("%s %s Host %q: %d %q %q, want %d %q %q", tc.method, tc.target, tc.host,
				rec.Code, rec.Header().Get("Location"), rec.Body.String(), tc.code, tc.location, tc.body)
		}
	}

	// A non-default HTTPS port is kept in the redirect; a next handler takes over.
	m.cfg.HTTPSPort = 8443
	req := httptest.NewRequest("GET", "/p?q", nil)
	req.Host = "edge.corpintel.test:8080"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got := rec.Header().Get("Location"); got != "https://edge.corpintel.test:8443/p?q" {
		t.Fatalf("redirect with port: %q", got)
	}
	next := m.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	rec = httptest.NewRecorder()
	next.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusTeapot {
		t.Fatalf("next handler not used: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	next.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/acme-challenge/tok123", nil))
	if rec.Body.String() != "tok123.thumb" {
		t.Fatal("challenge not answered in front of next")
	}
}

// TestRedirectOverTheWire checks the real listener: 301, path and query kept.
func TestRedirectOverTheWire(t *testing.T) {
	m, err := New(Config{Mode: ModeSelfSigned, Names: []string{"edge.corpintel.test"}, StateDir: t.TempDir()}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e := startEdge(t, m, nil, 0, 0)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+e.httpAddr+"/api/v1/companies?q=acme&page=2", nil)
	req.Host = "edge.corpintel.test"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "https://edge.corpintel.test/api/v1/companies?q=acme&page=2" {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
