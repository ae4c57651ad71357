package console

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

// pagePaths are GET pages to try with a session (path values filled in).
var pagePaths = []string{"/admin/", "/admin/services", "/admin/services/api", "/admin/services/redis/logs",
	"/admin/services/redis/restart", "/admin/services/api/scale?replicas=2", "/admin/users", "/admin/audit",
	"/admin/account", "/admin/account/password", "/admin/account/totp", "/admin/nope", "/admin/login"}

func checkSecurityHeaders(t *testing.T, path string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %q", path, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: CSP allows unsafe code: %q", path, csp)
	}
	for k, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
		"Cross-Origin-Opener-Policy": "same-origin"} {
		if h.Get(k) != v {
			t.Errorf("%s: %s = %q, want %q", path, k, h.Get(k), v)
		}
	}
}

// Every page, also errors, redirects and assets, carries the security headers; pages
// have no inline script or style.
func TestSecurityHeadersOnEveryPage(t *testing.T) {
	h := newHarness(t)
	admin := h.loggedIn("root-admin", "admin")
	anon := h.client()
	for _, p := range pagePaths {
		for who, cl := range map[string]*client{"admin": admin, "anonymous": anon} {
			r := cl.get(p)
			checkSecurityHeaders(t, who+" "+p, r.header)
			if r.status == http.StatusOK {
				for _, bad := range []string{"<script>", "style=\"", "onclick", "onload=", "javascript:"} {
					if strings.Contains(r.body, bad) {
						t.Errorf("%s %s: page contains %q", who, p, bad)
					}
				}
			}
		}
	}
	r := anon.post("/admin/login", url.Values{"csrf": {""}})
	checkSecurityHeaders(t, "POST login without token", r.header)
	asset, _ := h.c.assets.url("console.css")
	r = anon.get(asset)
	mustStatus(t, r, http.StatusOK)
	checkSecurityHeaders(t, asset, r.header)
	if cc := r.header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" || r.header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("asset headers: %q %q", cc, r.header.Get("Content-Type"))
	}
	mustStatus(t, anon.get("/admin/static/console.css"), http.StatusNotFound) // only checksummed names
}

// A page that needs a session sends the anonymous to the login page (coming back
// afterwards); state changes without one are refused; a lower role is refused and the
// refusal is audited; nothing is open by default.
func TestDenyByDefault(t *testing.T) {
	h := newHarness(t)
	anon := h.client()
	viewer := h.loggedIn("vera", "viewer")
	operator := h.loggedIn("otto", "operator")
	for _, rt := range routes {
		if rt.Role == Public {
			continue
		}
		path := strings.NewReplacer("{service}", "redis", "{id}", "1", "{token}", "x", "{$}", "").Replace(rt.Path)
		var r resp
		if rt.Method == http.MethodGet {
			r = anon.get(path)
			if rt.Role == Pending {
				if r.status != http.StatusSeeOther || !strings.HasPrefix(r.loc, "/admin/login") {
					t.Errorf("anonymous GET %s: %d %q", path, r.status, r.loc)
				}
				continue
			}
			if r.status != http.StatusSeeOther || !strings.HasPrefix(r.loc, "/admin/login") {
				t.Errorf("anonymous GET %s: %d %q, want a redirect to the login", path, r.status, r.loc)
			}
		} else {
			r = anon.post(path, url.Values{"csrf": {"whatever"}})
			if r.status != http.StatusUnauthorized && !(rt.Role == Pending && r.status == http.StatusSeeOther) {
				t.Errorf("anonymous POST %s: %d", path, r.status)
			}
		}
		for _, c := range []struct {
			cl   *client
			role Role
		}{{viewer, Viewer}, {operator, Operator}} {
			if c.role >= rt.Role || rt.Role == Pending {
				continue
			}
			before := len(h.store.entries(""))
			if rt.Method == http.MethodGet {
				r = c.cl.get(path)
			} else {
				c.cl.get("/admin/account")
				r = c.cl.post(path, nil)
			}
			if r.status != http.StatusForbidden {
				t.Errorf("%s %s %s: %d, want 403", c.role, rt.Method, path, r.status)
				continue
			}
			mustContain(t, r, "This needs the "+rt.Role.String()+" role")
			after := h.store.entries("")
			if len(after) != before+1 || after[len(after)-1].Outcome != "denied" {
				t.Errorf("%s %s %s: refusal not audited: %+v", c.role, rt.Method, path, after[len(after)-1])
			}
		}
	}
}

// Every state-changing route refuses a request without the session's CSRF token, with
// a wrong one, and one from another origin (net/http's cross-origin protection).
func TestCSRFOnEveryForm(t *testing.T) {
	h := newHarness(t)
	admin := h.loggedIn("ada", "admin")
	for _, rt := range routes {
		if rt.Method != http.MethodPost {
			continue
		}
		path := strings.NewReplacer("{service}", "api", "{id}", "1", "{token}", "x").Replace(rt.Path)
		for name, form := range map[string]url.Values{"missing": {"csrf": {""}}, "wrong": {"csrf": {"not-the-token-not-the-token-not-the-token"}}} {
			r := admin.post(path, form)
			if r.status != http.StatusForbidden && !(rt.Role == Pending && r.status == http.StatusSeeOther) {
				t.Errorf("%s token, POST %s: %d, want 403", name, path, r.status)
			}
		}
		admin.get("/admin/account")
		admin.header.Set("Sec-Fetch-Site", "cross-site")
		r := admin.post(path, nil)
		admin.header.Del("Sec-Fetch-Site")
		if r.status != http.StatusForbidden {
			t.Errorf("cross-site POST %s: %d, want 403", path, r.status)
		}
		admin.header.Set("Origin", "https://evil.example")
		r = admin.post(path, nil)
		admin.header.Del("Origin")
		if r.status != http.StatusForbidden {
			t.Errorf("cross-origin POST %s: %d, want 403", path, r.status)
		}
		checkSecurityHeaders(t, "cross-origin "+path, r.header)
	}
	if len(h.ops.callList()) != 0 {
		t.Fatalf("a refused request reached the supervisor: %v", h.ops.callList())
	}
	// The login form's token is a double-submit cookie.
	anon := h.client()
	anon.get("/admin/login")
	if r := anon.post("/admin/login", url.Values{"csrf": {"forged"}, "name": {"ada"}, "password": {"password-of-ada"}}); r.status != http.StatusForbidden {
		t.Fatalf("login with a forged token: %d", r.status)
	}
	mustStatus(t, anon.post("/admin/login", url.Values{"name": {"ada"}, "password": {"password-of-ada"}}), http.StatusSeeOther)
}

// Cookies: __Host- with Secure over HTTPS; HttpOnly and SameSite=Strict always; the
// plain-HTTP variant has neither prefix nor Secure.
func TestCookies(t *testing.T) {
	h := newHarness(t)
	h.addUser("ada", "admin", "password-of-ada")
	tlsSrv := httptest.NewTLSServer(h.c)
	defer tlsSrv.Close()
	jar, _ := cookiejar.New(nil)
	hc := tlsSrv.Client()
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := hc.Get(tlsSrv.URL + "/admin/login")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	token := ""
	for _, c := range res.Cookies() {
		if c.Name == csrfCookieSecure {
			token = c.Value
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
				t.Errorf("csrf cookie %+v", c)
			}
		}
	}
	if token == "" {
		t.Fatalf("no %s cookie: %v", csrfCookieSecure, res.Cookies())
	}
	res, err = hc.PostForm(tlsSrv.URL+"/admin/login", url.Values{"csrf": {token}, "name": {"ada"}, "password": {"password-of-ada"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var sess *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == sessionCookieSecure {
			sess = c
		}
	}
	if res.StatusCode != http.StatusSeeOther || sess == nil || !sess.Secure || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/" {
		t.Fatalf("login over HTTPS: %d %+v", res.StatusCode, sess)
	}
	plain := h.client()
	plain.login("ada", "password-of-ada")
	for _, name := range []string{sessionCookiePlain, csrfCookiePlain} {
		c := plain.cookie(name)
		if c == nil {
			t.Fatalf("no %s cookie over plain HTTP", name)
		}
	}
	_ = tls.VersionTLS13
}

// Session fixation: whatever session cookie a browser brings to the login (planted by
// an attacker, or the half-finished one of the password step), the session after the
// login has a new id and the old one is gone.
func TestSessionFixation(t *testing.T) {
	h := newHarness(t)
	h.addUser("ada", "admin", "password-of-ada")
	attacker := h.client()
	attacker.login("ada", "password-of-ada")
	planted := attacker.cookie(sessionCookiePlain).Value

	victim := h.client()
	u, _ := url.Parse(h.srv.URL + "/admin/")
	victim.hc.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookiePlain, Value: planted, Path: "/"}})
	victim.get("/admin/login") // the planted session is valid: the login page sends it on
	victim.hc.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookiePlain, Value: planted, Path: "/"}})
	victim.get("/admin/account")
	victim.post("/admin/logout", nil) // sees it is someone's session; logs out of it
	victim.hc.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookiePlain, Value: "attacker-chosen-value", Path: "/"}})
	victim.login("ada", "password-of-ada")
	got := victim.cookie(sessionCookiePlain).Value
	if got == planted || got == "attacker-chosen-value" {
		t.Fatal("the session id was not rotated at login")
	}
	if _, err := h.store.Session(context.Background(), tokenHash("attacker-chosen-value")); err == nil {
		t.Fatal("the planted id became a session")
	}
	// The attacker's own session ended with the victim's logout above, and a login
	// never adopts an existing id.
	r := attacker.get("/admin/")
	if r.status != http.StatusSeeOther {
		t.Fatalf("attacker's session still valid: %d", r.status)
	}
}

// Sessions end after the idle timeout and at the absolute timeout, and say so.
func TestSessionTimeouts(t *testing.T) {
	h := newHarness(t)
	cl := h.loggedIn("ada", "admin")
	mustStatus(t, cl.get("/admin/"), http.StatusOK)
	h.clock.Add(31 * time.Minute)
	r := cl.get("/admin/services")
	if r.status != http.StatusSeeOther || !strings.Contains(r.loc, "expired=1") {
		t.Fatalf("after 31 idle minutes: %d %q", r.status, r.loc)
	}
	mustContain(t, cl.get(r.loc), "Your session has ended")

	cl.login("ada", "password-of-ada")
	for range 12 * 6 { // active every 10 minutes for 12 hours
		h.clock.Add(10 * time.Minute)
		if r := cl.get("/admin/account"); r.status != http.StatusOK {
			if r.status == http.StatusSeeOther && strings.Contains(r.loc, "expired=1") {
				return
			}
			t.Fatalf("active session: %d", r.status)
		}
	}
	t.Fatal("the session outlived the absolute timeout")
}

// Failed logins lock the account after five tries and the client address after
// twenty, with a message that says until when; the lock ends with the window.
func TestLoginThrottle(t *testing.T) {
	h := newHarness(t)
	h.addUser("ada", "admin", "password-of-ada")
	cl := h.client()
	cl.get("/admin/login")
	for i := range accountLimit {
		r := cl.post("/admin/login", url.Values{"name": {"ada"}, "password": {"wrong"}})
		mustStatus(t, r, http.StatusUnauthorized)
		mustContain(t, r, "Wrong user name or password.")
		_ = i
	}
	r := cl.post("/admin/login", url.Values{"name": {"ada"}, "password": {"password-of-ada"}})
	mustStatus(t, r, http.StatusTooManyRequests)
	mustContain(t, r, "Too many failed logins for this account. Try again in 15 minutes.", "reset-password ada")
	if e := h.store.entries("login"); e[len(e)-1].Outcome != "locked" || e[len(e)-1].Client != "127.0.0.1" {
		t.Fatalf("lockout not audited with the client: %+v", e[len(e)-1])
	}
	h.clock.Add(15 * time.Minute)
	mustStatus(t, cl.post("/admin/login", url.Values{"name": {"ada"}, "password": {"password-of-ada"}}), http.StatusSeeOther)

	// Per client: many names from one address.
	spray := h.client()
	spray.get("/admin/login")
	for i := range clientLimit {
		mustStatus(t, spray.post("/admin/login", url.Values{"name": {"nobody" + string(rune('a'+i))}, "password": {"x"}}), http.StatusUnauthorized)
	}
	r = spray.post("/admin/login", url.Values{"name": {"someone-else"}, "password": {"x"}})
	mustStatus(t, r, http.StatusTooManyRequests)
	mustContain(t, r, "from your address (127.0.0.1)")
}

// The client address the throttle and the audit use is the edge's (Options.ClientAddr),
// not what a client claims in X-Forwarded-For.
func TestClientAddressFromTheEdge(t *testing.T) {
	h := newHarnessWith(t, func(o *Options) {
		o.ClientAddr = func(*http.Request) netip.Addr { return netip.MustParseAddr("203.0.113.9") }
	})
	h.addUser("ada", "admin", "password-of-ada")
	cl := h.client()
	cl.header.Set("X-Forwarded-For", "6.6.6.6")
	cl.get("/admin/login")
	cl.post("/admin/login", url.Values{"name": {"ada"}, "password": {"wrong"}})
	e := h.store.entries("login")
	if got := e[len(e)-1].Client; got != "203.0.113.9" {
		t.Fatalf("audited client %q", got)
	}
	if f, _ := h.store.LoginFailures(context.Background(), "client:203.0.113.9"); f.Count != 1 {
		t.Fatalf("throttle counted %+v", f)
	}
}
