package edge

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The console (Options.Admin) is served for /admin on both listeners — never proxied
// to a replica — stays up in maintenance mode, and learns the edge's client address
// and scheme; the public listener's rate limit (with the login route's own) applies.
func TestAdminHandler(t *testing.T) {
	_, a := backendServer(t, "a")
	admin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "console %s client=%s proto=%s", r.URL.Path, ClientAddr(r), ForwardedProto(r))
	})
	trusted, _ := ParsePrefixes([]string{"127.0.0.6"})
	fd := newFrontDoor(t, Options{Admin: admin, TrustedProxies: trusted,
		RateLimit: RateLimit{Rate: 100, Burst: 100, Routes: []RouteLimit{{Prefix: "/admin/login", Rate: 0.001, Burst: 2}}}}, a)
	for _, c := range []struct {
		url, from string
		hdr       map[string]string
		want      string
	}{
		{fd.public.URL + "/admin/", "127.0.0.5", map[string]string{"X-Forwarded-For": "6.6.6.6"}, "console /admin/ client=127.0.0.5 proto=http"},
		{fd.public.URL + "/admin/", "127.0.0.6", map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}, "console /admin/ client=203.0.113.9 proto=https"},
		{fd.loopback.URL + "/admin/services", "127.0.0.5", map[string]string{"X-Forwarded-For": "6.6.6.6"}, "console /admin/services client=127.0.0.5 proto=http"},
		{fd.public.URL + "/admin", "127.0.0.5", nil, "console /admin client"},
		{fd.public.URL + "/administrator", "127.0.0.5", nil, "a"}, // not the console's path
	} {
		resp, body := get(t, clientFrom(c.from), c.url, c.hdr)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, c.want) {
			t.Errorf("%s from %s: %d %q, want %q", c.url, c.from, resp.StatusCode, body, c.want)
		}
	}
	fd.e.SetMaintenance(&Maintenance{Reason: "restore #1", RetryAfter: time.Minute})
	if resp, body := get(t, clientFrom("127.0.0.5"), fd.public.URL+"/admin/", nil); resp.StatusCode != 200 || !strings.HasPrefix(body, "console") {
		t.Errorf("console in maintenance: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, clientFrom("127.0.0.5"), fd.public.URL+"/api/v1/x", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("API in maintenance: %d", resp.StatusCode)
	}
	fd.e.SetMaintenance(nil)
	codes := []int{}
	for range 3 {
		resp, _ := get(t, clientFrom("127.0.0.8"), fd.public.URL+"/admin/login", nil)
		codes = append(codes, resp.StatusCode)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != http.StatusTooManyRequests {
		t.Errorf("console login limit on the public listener: %v", codes)
	}
	for range 3 {
		if resp, _ := get(t, clientFrom("127.0.0.8"), fd.loopback.URL+"/admin/login", nil); resp.StatusCode != 200 {
			t.Errorf("loopback is exempt from the rate limit: %d", resp.StatusCode)
		}
	}
	// Outside the edge the helpers fall back to the peer and the connection.
	r := httptest.NewRequest(http.MethodGet, "/admin/", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	if ClientAddr(r).String() != "192.0.2.1" || ForwardedProto(r) != "http" {
		t.Errorf("outside the edge: %s %s", ClientAddr(r), ForwardedProto(r))
	}
}
