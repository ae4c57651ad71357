// Package apitest runs API modules against real PostgreSQL (migrated), Redis and MinIO
// servers from internal/testenv, mounted exactly as in production (api/server), behind a
// real HTTP listener. Authentication is a token table by default so that resource tests
// do not depend on the auth module; the auth module's own tests pass its Authenticator.
package apitest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/audit"
	"github.com/corpintel/corpintel/api/blob"
	"github.com/corpintel/corpintel/api/cache"
	"github.com/corpintel/corpintel/api/db"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/server"
	"github.com/corpintel/corpintel/api/web"
	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

// Server is one test's API.
type Server struct {
	t        testing.TB
	Deps     app.Deps
	Registry *prometheus.Registry
	Handler  *server.Handler
	HTTP     *httptest.Server
	URL      string // base URL, e.g. http://127.0.0.1:port
	PG       *testenv.PG
	Redis    *testenv.RedisDB
	MinIO    *testenv.MinIOBucket
	Recorder *audit.Recorder

	mu     sync.Mutex
	tokens map[string]*web.Principal
}

// Option changes how New builds the server.
type Option func(*options)

type options struct {
	auth   func(d app.Deps) web.Authenticator
	config func(c *app.Config)
}

// WithAuthenticator replaces the token table with a real authenticator.
func WithAuthenticator(f func(d app.Deps) web.Authenticator) Option {
	return func(o *options) { o.auth = f }
}

// WithConfig adjusts the configuration before the modules are built.
func WithConfig(f func(c *app.Config)) Option {
	return func(o *options) { o.config = f }
}

// New starts the servers, migrates the database, builds the modules and serves them.
func New(t testing.TB, build func(d app.Deps) []web.Module, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	pg := testenv.Postgres(t)
	rd := testenv.Redis(t)
	mi := testenv.MinIO(t)
	ctx := context.Background()

	logLevel := slog.LevelWarn
	if os.Getenv("APITEST_LOG") != "" {
		logLevel = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	reg := prometheus.NewRegistry()
	cfg := app.Defaults()
	cfg.PGHost, cfg.PGPort, cfg.PGDB, cfg.PGUser, cfg.PGPassword = pg.Host, pg.Port, pg.DB, pg.User, pg.Password
	cfg.RedisAddr, cfg.RedisPassword = rd.Addr, rd.Password
	cfg.MinIOEndpoint, cfg.MinIOBucket, cfg.MinIOAccessKey, cfg.MinIOSecretKey = mi.Endpoint, mi.Bucket, mi.AccessKey, mi.SecretKey
	cfg.KEK = bytes.Repeat([]byte("k"), 32)
	if o.config != nil {
		o.config(&cfg)
	}

	pool, err := db.Open(ctx, db.Config{Host: pg.Host, Port: pg.Port, DB: pg.DB, User: pg.User, Password: pg.Password,
		PoolMax: cfg.PGPoolMax, Registerer: reg, Logger: log})
	if err != nil {
		t.Fatalf("apitest: open database: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := db.Migrate(ctx, pool, log); err != nil {
		t.Fatalf("apitest: migrate: %v", err)
	}
	rdb := rd.Client(t)
	c, err := cache.New(rdb, rd.Prefix, reg)
	if err != nil {
		t.Fatalf("apitest: cache: %v", err)
	}
	store, err := blob.New(ctx, mi.Endpoint, mi.AccessKey, mi.SecretKey, mi.Bucket, false)
	if err != nil {
		t.Fatalf("apitest: blob store: %v", err)
	}
	rec := audit.NewRecorder(pool, blob.Objects{S: store}, log, time.Now)
	d := app.Deps{Pool: pool, Redis: rdb, Cache: c, Blob: store, Log: log, Reg: reg, Audit: rec, Config: cfg, Now: time.Now}

	s := &Server{t: t, Deps: d, Registry: reg, PG: pg, Redis: rd, MinIO: mi, Recorder: rec, tokens: map[string]*web.Principal{}}
	var auth web.Authenticator = s
	if o.auth != nil {
		auth = o.auth(d)
	}
	h, err := server.New(server.Options{Log: log, Registry: reg, Auth: auth, Audit: rec, Modules: build(d),
		Checks: []server.Check{{Name: "postgres", Probe: pool.Ping}}})
	if err != nil {
		t.Fatalf("apitest: assemble handler: %v", err)
	}
	s.Handler = h
	s.HTTP = httptest.NewServer(h)
	t.Cleanup(s.HTTP.Close)
	s.URL = s.HTTP.URL
	return s
}

// Authenticate implements web.Authenticator over the token table.
func (s *Server) Authenticate(_ context.Context, token string) (*web.Principal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.tokens[token]; ok {
		return p, nil
	}
	return nil, web.ErrUnauthorized()
}

// Token returns a new bearer token for a fresh user with role, and that user's id.
func (s *Server) Token(role rbac.Role) (token, userID string) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	userID = uuidString(b)
	_, _ = rand.Read(b[:])
	token = "test-" + hex.EncodeToString(b[:])
	s.mu.Lock()
	s.tokens[token] = &web.Principal{UserID: userID, Email: userID[:8] + "@test.example", Role: role, TokenID: token,
		ExpiresAt: time.Now().Add(time.Hour)}
	s.mu.Unlock()
	return token, userID
}

// TokenFor returns a bearer token for an existing user id.
func (s *Server) TokenFor(userID string, role rbac.Role) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := "test-" + hex.EncodeToString(b[:])
	s.mu.Lock()
	s.tokens[token] = &web.Principal{UserID: userID, Role: role, TokenID: token, ExpiresAt: time.Now().Add(time.Hour)}
	s.mu.Unlock()
	return token
}

func uuidString(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Resp is a finished response.
type Resp struct {
	Code   int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test when it is not JSON.
func (r *Resp) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response %d is not the expected JSON: %v\n%s", r.Code, err, r.Body)
	}
}

// Problem decodes an error body.
func (r *Resp) Problem(t testing.TB) web.Problem {
	t.Helper()
	var p web.Problem
	r.JSON(t, &p)
	return p
}

func (r *Resp) String() string { return string(r.Body) }

// Do sends a request to path (relative to the server, e.g. "/api/v1/companies"). body is
// sent as JSON unless it is nil, a []byte or an io.Reader (sent as is).
func (s *Server) Do(method, path, token string, body any) *Resp {
	s.t.Helper()
	return s.DoHeaders(method, path, token, body, nil)
}

// DoHeaders is Do with extra request headers.
func (s *Server) DoHeaders(method, path, token string, body any, hdr http.Header) *Resp {
	s.t.Helper()
	var rdr io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rdr, ctype = bytes.NewReader(b), "application/json"
	case string:
		rdr, ctype = strings.NewReader(b), "application/json"
	case io.Reader:
		rdr = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			s.t.Fatalf("marshal request: %v", err)
		}
		rdr, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, s.URL+path, rdr)
	if err != nil {
		s.t.Fatalf("new request: %v", err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := s.HTTP.Client().Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &Resp{Code: resp.StatusCode, Header: resp.Header, Body: b}
}

// Events returns the audit records written so far, newest first.
func (s *Server) Events(t testing.TB) []audit.Record {
	t.Helper()
	page, err := audit.List(context.Background(), s.Deps.Pool, audit.Filter{Limit: 500})
	if err != nil {
		t.Fatalf("list audit events: %v", err)
	}
	return page.Items
}
