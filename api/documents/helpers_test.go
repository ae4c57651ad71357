package documents

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/db"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/minio/minio-go/v7"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// minioStore is Store on a real MinIO bucket, with switches to make it fail.
type minioStore struct {
	c      *minio.Client
	bucket string

	mu         sync.Mutex
	failRemove error
}

func (s *minioStore) PutObject(ctx context.Context, key string, r io.Reader, size int64, ct string) error {
	_, err := s.c.PutObject(ctx, s.bucket, key, r, size, minio.PutObjectOptions{ContentType: ct, PartSize: 16 << 20})
	return err
}

func (s *minioStore) GetObject(ctx context.Context, key string) (io.ReadCloser, error) {
	o, err := s.c.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	if _, err := o.Stat(); err != nil {
		o.Close()
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, ErrNoObject
		}
		return nil, err
	}
	return o, nil
}

func (s *minioStore) RemoveObject(ctx context.Context, key string) error {
	s.mu.Lock()
	fail := s.failRemove
	s.mu.Unlock()
	if fail != nil {
		return fail
	}
	return s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
}

func (s *minioStore) PresignGetObject(ctx context.Context, key string, expiry time.Duration, params url.Values) (*url.URL, error) {
	return s.c.PresignedGetObject(ctx, s.bucket, key, expiry, params)
}

func (s *minioStore) ListObjects(ctx context.Context, prefix string, fn func(string, time.Time) error) error {
	for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return o.Err
		}
		if err := fn(o.Key, o.LastModified); err != nil {
			return err
		}
	}
	return nil
}

func (s *minioStore) keys(t testing.TB) []string {
	t.Helper()
	var out []string
	if err := s.ListObjects(context.Background(), "", func(k string, _ time.Time) error { out = append(out, k); return nil }); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

type memAudit struct {
	mu     sync.Mutex
	events []web.Event
}

func (m *memAudit) Record(_ context.Context, e web.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	return nil
}

type staticAuth map[string]*web.Principal

func (a staticAuth) Authenticate(_ context.Context, tok string) (*web.Principal, error) {
	if p, ok := a[tok]; ok {
		return p, nil
	}
	return nil, web.ErrUnauthorized()
}

const (
	analystID = "11111111-2222-4333-8444-555555555555"
	viewerID  = "22222222-3333-4444-8555-666666666666"
)

// env is one test's API: real PostgreSQL (migrated) and MinIO behind a real HTTP server.
type env struct {
	pool    *pgxpool.Pool
	store   *minioStore
	mod     *Module
	srv     *httptest.Server
	audit   *memAudit
	company string
}

func newEnv(t testing.TB, max int64) *env {
	t.Helper()
	ctx := context.Background()
	pool := testenv.Postgres(t).Pool(t)
	if err := db.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	b := testenv.MinIO(t)
	store := &minioStore{c: b.Client(t), bucket: b.Bucket}
	mod := NewModule(Options{Pool: pool, Store: store, MaxBytes: max})
	e := echoServer(t, mod, &memAudit{})
	ev := &env{pool: pool, store: store, mod: mod, srv: httptest.NewServer(e.Echo), audit: e.audit}
	t.Cleanup(ev.srv.Close)
	ev.company = ev.newCompany(t, "ACME")
	// The viewer exists: signed download links check their user.
	if _, err := pool.Exec(ctx, `INSERT INTO users (id, email, name, role) VALUES ($1, 'viewer@example.com', 'V', 'viewer')`, viewerID); err != nil {
		t.Fatal(err)
	}
	return ev
}

func (ev *env) newCompany(t testing.TB, name string) string {
	t.Helper()
	var id string
	if err := ev.pool.QueryRow(context.Background(), `INSERT INTO companies (name) VALUES ($1) RETURNING id`, name).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

type echoEnv struct {
	Echo  http.Handler
	audit *memAudit
}

func echoServer(t testing.TB, mod *Module, aud *memAudit) echoEnv {
	t.Helper()
	e := newEcho()
	a := staticAuth{
		"analyst": {UserID: analystID, Role: rbac.Analyst},
		"viewer":  {UserID: viewerID, Role: rbac.Viewer},
	}
	if _, err := web.Mount(e.Group("/api/v1"), a, aud, mod); err != nil {
		t.Fatal(err)
	}
	return echoEnv{Echo: e, audit: aud}
}

func (ev *env) url(path string) string { return ev.srv.URL + "/api/v1" + path }

func (ev *env) count(t testing.TB, table string) int {
	t.Helper()
	var n int
	if err := ev.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

var errInjected = errors.New("injected failure")

func newEcho() *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = web.ErrorHandler(slog.New(slog.DiscardHandler))
	return e
}

// part is one multipart field: a file when filename is set.
type part struct {
	name, filename string
	body           io.Reader
}

// multipartBody streams parts as multipart/form-data through a pipe, so even a 100 MB
// body is never held in memory by the test either.
func multipartBody(parts ...part) (io.Reader, string) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for _, p := range parts {
			var w io.Writer
			var err error
			if p.filename != "" {
				h := textproto.MIMEHeader{}
				h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"; filename="%s"`, p.name, strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p.filename)))
				h.Set("Content-Type", "application/octet-stream")
				w, err = mw.CreatePart(h)
			} else {
				w, err = mw.CreateFormField(p.name)
			}
			if err == nil {
				_, err = io.Copy(w, p.body)
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	return pr, mw.FormDataContentType()
}

// upload posts parts; contentLength < 0 sends the body chunked (no Content-Length).
func (ev *env) upload(t testing.TB, company, token string, contentLength int64, parts ...part) (*http.Response, []byte) {
	t.Helper()
	body, ct := multipartBody(parts...)
	req, err := http.NewRequest(http.MethodPost, ev.url("/companies/"+company+"/documents"), body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+token)
	if contentLength >= 0 {
		req.ContentLength = contentLength
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (ev *env) do(t testing.TB, method, path, token string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ev.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// rawUpload sends a request with a hand-written Content-Length (which the Go client
// refuses to get wrong) over a plain TCP connection and returns the response.
func (ev *env) rawUpload(t testing.TB, contentLength int64, parts ...part) (*http.Response, []byte) {
	t.Helper()
	body, ct := multipartBody(parts...)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ev.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/companies/%s/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer analyst\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		ev.company, ct, contentLength)
	go func() { _, _ = io.Copy(conn, body) }() // may fail once the server hangs up
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
