package authtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/auth"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/users"
	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
)

// KEK is the key-encryption key the test services use.
var KEK = []byte("0123456789abcdef0123456789abcdef-test-kek")

// Clock is a settable clock (starts at the real time).
type Clock struct{ ns atomic.Int64 }

// NewClock returns a clock at time.Now().
func NewClock() *Clock { c := &Clock{}; c.Set(time.Now()); return c }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Audit records events in memory.
type Audit struct {
	mu     sync.Mutex
	events []web.Event
}

// Record implements web.Auditor.
func (a *Audit) Record(_ context.Context, e web.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
	return nil
}

// Events returns the events recorded so far.
func (a *Audit) Events() []web.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]web.Event(nil), a.events...)
}

// Find returns the recorded events with action.
func (a *Audit) Find(action string) []web.Event {
	var out []web.Event
	for _, e := range a.Events() {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// Server is an API with the auth and users modules mounted under /api/v1, using the
// real auth.Service as its authenticator.
type Server struct {
	T     testing.TB
	Pool  *pgxpool.Pool
	Auth  *auth.Service
	Echo  *echo.Echo
	Audit *Audit
	Clock *Clock
}

// NewServer starts a server on a fresh database. Extra options adjust the auth options.
func NewServer(t testing.TB, opts ...func(*auth.Options)) *Server {
	t.Helper()
	return NewReplica(t, Pool(t), opts...)
}

// NewReplica starts another server (a replica) on pool.
func NewReplica(t testing.TB, pool *pgxpool.Pool, opts ...func(*auth.Options)) *Server {
	t.Helper()
	s := &Server{T: t, Pool: pool, Audit: &Audit{}, Clock: NewClock()}
	o := auth.Options{Pool: pool, Audit: s.Audit, Issuer: "corpintel", Audience: "corpintel-api", KEK: KEK, Now: s.Clock.Now}
	for _, f := range opts {
		f(&o)
	}
	svc, err := auth.NewService(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	s.Auth = svc
	e := echo.New()
	e.HTTPErrorHandler = web.ErrorHandler(slog.New(slog.DiscardHandler))
	e.Use(web.RequestIDs())
	if _, err := web.Mount(e.Group("/api/v1"), svc, s.Audit, svc, users.NewModule(pool, nil)); err != nil {
		t.Fatal(err)
	}
	s.Echo = e
	return s
}

// Listen runs the service's notification listener until the test ends and waits until
// it is connected.
func (s *Server) Listen() {
	s.T.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Auth.Listen(ctx) }()
	s.T.Cleanup(func() { cancel(); <-done })
	Eventually(s.T, 10*time.Second, "listener connected", s.Auth.Listening)
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Resp is a recorded response.
type Resp struct {
	Code   int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r *Resp) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Do sends a request; body is JSON-encoded unless it is a string or []byte. Extra
// headers come in pairs.
func (s *Server) Do(method, path, token string, body any, headers ...string) *Resp {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			s.T.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	s.Echo.ServeHTTP(rec, req)
	return &Resp{Code: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// User is a created test user.
type User struct {
	ID, Email, Password string
	Role                rbac.Role
}

var userSeq atomic.Int64

// CreateUser inserts a user with role.
func (s *Server) CreateUser(role rbac.Role) User {
	s.T.Helper()
	n := userSeq.Add(1)
	u := User{Email: "user" + itoa(n) + "@example.com", Password: "correct horse battery " + itoa(n), Role: role}
	created, err := users.Create(context.Background(), s.Pool, users.NewUser{Email: u.Email, Name: "User " + itoa(n), Role: role, Password: u.Password})
	if err != nil {
		s.T.Fatal(err)
	}
	u.ID = created.ID
	return u
}

// Login logs u in and returns the token pair.
func (s *Server) Login(u User) auth.TokenResponse {
	s.T.Helper()
	r := s.Do(http.MethodPost, "/api/v1/auth/login", "", map[string]string{"email": u.Email, "password": u.Password},
		"X-Real-IP", "192.0.2.1")
	if r.Code != http.StatusOK {
		s.T.Fatalf("login %s: %d %s", u.Email, r.Code, r.Body)
	}
	var tr auth.TokenResponse
	r.JSON(s.T, &tr)
	return tr
}

// Token creates a user with role and returns an access token for them.
func (s *Server) Token(role rbac.Role) (token string, u User) {
	s.T.Helper()
	u = s.CreateUser(role)
	tr, err := s.Auth.IssueSession(context.Background(), u.ID)
	if err != nil {
		s.T.Fatal(err)
	}
	return tr.AccessToken, u
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
