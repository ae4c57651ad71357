package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// testConfig points the API at this test's real servers.
func testConfig(t *testing.T) app.Config {
	t.Helper()
	pg, rd, mi := testenv.Postgres(t), testenv.Redis(t), testenv.MinIO(t)
	cfg := app.Defaults()
	cfg.Listen = freeAddr(t)
	cfg.PGHost, cfg.PGPort, cfg.PGDB, cfg.PGUser, cfg.PGPassword = pg.Host, pg.Port, pg.DB, pg.User, pg.Password
	cfg.RedisAddr, cfg.RedisPassword = rd.Addr, rd.Password
	cfg.MinIOEndpoint, cfg.MinIOBucket, cfg.MinIOAccessKey, cfg.MinIOSecretKey = mi.Endpoint, mi.Bucket+"-api", mi.AccessKey, mi.SecretKey
	cfg.KEK = bytes.Repeat([]byte{7}, 32)
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

type client struct {
	t     *testing.T
	base  string
	token string
}

func (c *client) do(method, path string, body any, ctype string) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r, ctype = bytes.NewReader(j), "application/json"
	}
	req, _ := http.NewRequest(method, c.base+path, r)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (c *client) must(code int, method, path string, body any, into any) {
	c.t.Helper()
	got, b := c.do(method, path, body, "")
	if got != code {
		c.t.Fatalf("%s %s = %d, want %d: %s", method, path, got, code, b)
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// TestServeWholeAPI runs the real API (every module, real PostgreSQL, Redis and MinIO)
// on a real listener and walks a user's day through it.
func TestServeWholeAPI(t *testing.T) {
	cfg := testConfig(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if err := Migrate(ctx, cfg, log); err != nil {
		t.Fatal(err)
	}
	adminID, err := CreateAdmin(ctx, cfg, log, "root@example.com", "Root", []byte("correct horse battery"))
	if err != nil || adminID == "" {
		t.Fatalf("CreateAdmin = %q, %v", adminID, err)
	}
	if _, err := CreateAdmin(ctx, cfg, log, "root@example.com", "Root", []byte("correct horse battery")); err == nil {
		t.Fatal("a second admin with the same email was created")
	}
	if err := Seed(ctx, cfg, log, 3, 1, 42); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg, log) }()
	deadline := time.Now().Add(60 * time.Second)
	for Healthcheck(ctx, cfg.Listen) != nil {
		if time.Now().After(deadline) {
			t.Fatal("API did not become healthy")
		}
		select {
		case err := <-done:
			t.Fatalf("Serve ended early: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	c := &client{t: t, base: "http://" + cfg.Listen}

	var ready struct {
		Status string
		Checks map[string]struct{ Status string }
	}
	c.must(200, "GET", "/health/ready", nil, &ready)
	if ready.Status != "ready" || len(ready.Checks) != 3 {
		t.Fatalf("readiness %+v", ready)
	}
	var doc struct{ Paths map[string]any }
	c.must(200, "GET", "/openapi.json", nil, &doc)
	for _, p := range []string{"/api/v1/auth/login", "/api/v1/companies/{id}/metrics", "/api/v1/documents/{id}/content", "/api/v1/audit", "/api/v1/users/{id}/export"} {
		if doc.Paths[p] == nil {
			t.Errorf("OpenAPI document lacks %s", p)
		}
	}

	var tok struct {
		AccessToken string `json:"access_token"`
	}
	c.must(200, "POST", "/api/v1/auth/login", map[string]string{"email": "root@example.com", "password": "correct horse battery"}, &tok)
	c.token = tok.AccessToken

	var list struct {
		Items []struct{ ID, Name string }
	}
	c.must(200, "GET", "/api/v1/companies?limit=10", nil, &list)
	if len(list.Items) != 3 {
		t.Fatalf("seeded companies: %+v", list)
	}
	var co struct{ ID string }
	c.must(201, "POST", "/api/v1/companies", map[string]any{"name": "Zürich Analytics AG", "ticker": "ZAAG", "sector": "Technology", "country": "CH"}, &co)
	pts := []map[string]any{}
	for i := 0; i < 48; i++ {
		pts = append(pts, map[string]any{"metric": "revenue", "time": time.Date(2025, 1, 1, i, 0, 0, 0, time.UTC).Format(time.RFC3339), "value": float64(i)})
	}
	c.must(200, "POST", "/api/v1/companies/"+co.ID+"/metrics", map[string]any{"points": pts}, nil)
	var agg struct {
		Buckets []map[string]any `json:"buckets"`
	}
	code, body := c.do("GET", "/api/v1/companies/"+co.ID+"/metrics?metric=revenue&from=2025-01-01T00:00:00Z&to=2025-01-03T00:00:00Z&bucket=1d&agg=sum", nil, "")
	if code != 200 || json.Unmarshal(body, &agg) != nil || !strings.Contains(string(body), "276") || !strings.Contains(string(body), "852") {
		t.Fatalf("aggregation %d: %s", code, body) // day sums 0..23 = 276, 24..47 = 852
	}

	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	fw, _ := w.CreateFormFile("file", "report.pdf")
	fmt.Fprint(fw, "%PDF-1.4 quarterly report")
	w.Close()
	code, body = c.do("POST", "/api/v1/companies/"+co.ID+"/documents", mp.Bytes(), w.FormDataContentType())
	if code != 201 {
		t.Fatalf("upload %d: %s", code, body)
	}
	var up struct{ ID string }
	_ = json.Unmarshal(body, &up)
	code, body = c.do("GET", "/api/v1/documents/"+up.ID+"/content", nil, "")
	if code != 200 || string(body) != "%PDF-1.4 quarterly report" {
		t.Fatalf("download %d: %q", code, body)
	}

	var events struct {
		Items []struct{ Action, Outcome string }
	}
	c.must(200, "GET", "/api/v1/audit?limit=50", nil, &events)
	seen := map[string]bool{}
	for _, e := range events.Items {
		seen[e.Action] = true
	}
	for _, a := range []string{"auth.login", "company.create", "document.upload"} {
		if !seen[a] {
			t.Errorf("audit lacks %s: %+v", a, events.Items)
		}
	}
	c.must(200, "GET", "/api/v1/users/"+adminID+"/export", nil, nil)

	kid, err := RotateKeys(ctx, cfg, log)
	if err != nil || kid == "" {
		t.Fatalf("RotateKeys = %q, %v", kid, err)
	}
	c.must(200, "GET", "/api/v1/auth/me", nil, nil) // the old key still verifies

	metrics, _ := c.do("GET", "/metrics", nil, "")
	if metrics != 200 {
		t.Fatalf("/metrics %d", metrics)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not stop")
	}
}

func TestServeFailsClearly(t *testing.T) {
	cfg := testConfig(t)
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	if err := Healthcheck(ctx, "nonsense"); err == nil {
		t.Fatal("healthcheck accepted a bad address")
	}
	if err := Healthcheck(ctx, freeAddr(t)); err == nil {
		t.Fatal("healthcheck succeeded with nothing listening")
	}
	cfg.KEK = nil
	if _, err := RotateKeys(ctx, cfg, log); err == nil || !strings.Contains(err.Error(), "key-encryption key") {
		t.Fatalf("RotateKeys without KEK: %v", err)
	}
	// A dependency that never answers fails after the deadline, naming it.
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cfg.PGPort = 1
	if err := Migrate(cctx, cfg, log); err == nil || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Fatalf("Migrate against a closed port: %v", err)
	}
}
