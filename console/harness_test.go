package console

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/password"
)

// cheap makes password hashing fast in tests.
var cheap = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t     *testing.T
	c     *Console
	store *memStore
	ops   *fakeOps
	srv   *httptest.Server
	clock *testClock
}

func newHarness(t *testing.T) *harness { return newHarnessWith(t, nil) }

func newHarnessWith(t *testing.T, tune func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, store: newMemStore(), ops: newFakeOps(), clock: &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	opts := Options{Ops: h.ops, Store: h.store, Now: h.clock.Now, Hash: &cheap, Project: "test", Refresh: 50 * time.Millisecond}
	if tune != nil {
		tune(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c.actions.healthTimeout = 2 * time.Second
	c.hub.maxAge = 0 // every page sees what the test just set
	h.c = c
	h.srv = httptest.NewServer(c)
	t.Cleanup(h.srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.Run(ctx)
	return h
}

func (h *harness) addUser(name, role, pw string) User {
	h.t.Helper()
	hash, err := password.HashWith([]byte(pw), cheap)
	if err != nil {
		h.t.Fatal(err)
	}
	u, err := h.store.CreateUser(context.Background(), User{Name: name, Role: role, PasswordHash: hash, Active: true, CreatedAt: h.clock.Now()})
	if err != nil {
		h.t.Fatal(err)
	}
	return u
}

type client struct {
	h    *harness
	hc   *http.Client
	csrf string
	// header is added to every request.
	header http.Header
}

type resp struct {
	status int
	body   string
	header http.Header
	loc    string
}

func (h *harness) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{h: h, header: http.Header{}, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (cl *client) do(req *http.Request) resp {
	cl.h.t.Helper()
	for k, v := range cl.header {
		req.Header[k] = v
	}
	res, err := cl.hc.Do(req)
	if err != nil {
		cl.h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, body: string(b), header: res.Header, loc: res.Header.Get("Location")}
	if m := csrfRE.FindStringSubmatch(r.body); m != nil {
		cl.csrf = m[1]
	}
	return r
}

func (cl *client) get(path string) resp {
	cl.h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, cl.h.srv.URL+path, nil)
	if err != nil {
		cl.h.t.Fatal(err)
	}
	return cl.do(req)
}

// post sends a form; the CSRF token of the last page is added unless form has one.
func (cl *client) post(path string, form url.Values) resp {
	cl.h.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", cl.csrf)
	}
	req, err := http.NewRequest(http.MethodPost, cl.h.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		cl.h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return cl.do(req)
}

// login logs in with name and password and expects success.
func (cl *client) login(name, pw string) resp {
	cl.h.t.Helper()
	cl.get("/admin/login")
	r := cl.post("/admin/login", url.Values{"name": {name}, "password": {pw}})
	if r.status != http.StatusSeeOther {
		cl.h.t.Fatalf("login %s: %d %s", name, r.status, r.body)
	}
	return r
}

// loggedIn returns a client logged in as a new user of role.
func (h *harness) loggedIn(name, role string) *client {
	h.addUser(name, role, "password-of-"+name)
	cl := h.client()
	cl.login(name, "password-of-"+name)
	cl.get("/admin/")
	return cl
}

func (cl *client) cookie(name string) *http.Cookie {
	u, _ := url.Parse(cl.h.srv.URL + "/admin/")
	for _, c := range cl.hc.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func mustContain(t *testing.T, r resp, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(r.body, p) {
			t.Fatalf("response (%d) lacks %q:\n%.3000s", r.status, p, r.body)
		}
	}
}

func mustStatus(t *testing.T, r resp, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d (location %q):\n%.2000s", r.status, want, r.loc, r.body)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	t.Fatalf("%s: not within 5s", what)
}
