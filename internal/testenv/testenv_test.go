package testenv

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { Main(m) }

func TestDecide(t *testing.T) {
	missing := errors.New("redis-server not found")
	tests := []struct {
		name      string
		err       error
		ci        bool
		wantFatal bool
		wantMsg   []string // substrings; none means no message (carry on)
	}{
		{name: "available locally", err: nil, ci: false},
		{name: "available in CI", err: nil, ci: true},
		{name: "missing locally skips", err: missing, ci: false, wantFatal: false,
			wantMsg: []string{"redis unavailable", "redis-server not found", "make deps", "skipping"}},
		{name: "missing in CI fails", err: missing, ci: true, wantFatal: true,
			wantMsg: []string{"redis unavailable", "make deps", "CI=true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fatal, msg := decide("redis", tt.err, tt.ci)
			if fatal != tt.wantFatal {
				t.Errorf("fatal = %v, want %v", fatal, tt.wantFatal)
			}
			if len(tt.wantMsg) == 0 && msg != "" {
				t.Errorf("msg = %q, want none", msg)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(msg, w) {
					t.Errorf("msg = %q, want it to contain %q", msg, w)
				}
			}
		})
	}
}

// recordingTB records whether Require skipped or failed; Skip/Fatal end the goroutine
// like the real ones do.
type recordingTB struct {
	testing.TB
	skipped, failed bool
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Skip(args ...any) {
	r.skipped = true
	panic(r)
}
func (r *recordingTB) Fatal(args ...any) {
	r.failed = true
	panic(r)
}

func TestRequire(t *testing.T) {
	tests := []struct {
		ci          string
		err         error
		wantSkipped bool
		wantFailed  bool
	}{
		{ci: "", err: nil},
		{ci: "true", err: nil},
		{ci: "", err: errors.New("absent"), wantSkipped: true},
		{ci: "false", err: errors.New("absent"), wantSkipped: true},
		{ci: "true", err: errors.New("absent"), wantFailed: true},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recordingTB{TB: t}
			func() {
				defer func() {
					if p := recover(); p != nil && p != r {
						panic(p)
					}
				}()
				Require(r, "docker", tt.err)
			}()
			if r.skipped != tt.wantSkipped || r.failed != tt.wantFailed {
				t.Errorf("skipped=%v failed=%v, want skipped=%v failed=%v", r.skipped, r.failed, tt.wantSkipped, tt.wantFailed)
			}
		})
	}
}

func TestResourceName(t *testing.T) {
	tests := []struct {
		prefix, test, sep string
		max               int
		want              string
	}{
		{"t", "TestFoo/sub case", "_", 63, "t7_testfoo_sub_case"},
		{"t", "TestBucket/Ünïcode--x", "-", 63, "t7-testbucket-n-code-x"},
		{"t", "", "_", 63, "t7"},
		{"t", strings.Repeat("a", 100), "_", 20, "t7_aaaaaaaaaaaaaaaaa"},
		{"t", "TestA/", "-", 9, "t7-testa"},
	}
	for _, tt := range tests {
		if got := resourceName(tt.prefix, 7, tt.test, tt.sep, tt.max); got != tt.want {
			t.Errorf("resourceName(%q) = %q, want %q", tt.test, got, tt.want)
		}
	}
}

func TestPostgres(t *testing.T) {
	ctx := context.Background()
	a, b := Postgres(t), Postgres(t)
	if a.DB == b.DB || a.Port != b.Port {
		t.Fatalf("want two databases on one server, got %s:%d and %s:%d", a.DB, a.Port, b.DB, b.Port)
	}
	if !strings.HasPrefix(a.DSN, "postgres://") {
		t.Errorf("DSN %q", a.DSN)
	}
	pool := a.Pool(t)
	var db, user string
	var super bool
	if err := pool.QueryRow(ctx, "SELECT current_database(), current_user, usesuper FROM pg_user WHERE usename = current_user").Scan(&db, &user, &super); err != nil {
		t.Fatal(err)
	}
	if db != a.DB || user != a.User || super {
		t.Errorf("connected to %s as %s (superuser %v), want %s as non-superuser %s", db, user, super, a.DB, a.User)
	}
	if _, err := pool.Exec(ctx, "CREATE TABLE t (id int)"); err != nil {
		t.Fatalf("owner cannot create tables: %v", err)
	}
	// The server uses SCRAM password auth: a wrong password is refused.
	bad := *a
	bad.DSN = strings.Replace(a.DSN, a.Password, "wrong", 1)
	p := bad.Pool(t)
	if err := p.Ping(ctx); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("ping with a wrong password: %v, want password authentication failed", err)
	}
}

func TestPostgresServerStop(t *testing.T) {
	pg := PostgresServer(t)
	pool := pg.Pool(t)
	if err := pool.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	pg.Stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool.Reset()
	if err := pool.Ping(ctx); err == nil {
		t.Fatal("ping after Stop succeeded")
	}
}

func TestRedis(t *testing.T) {
	ctx := context.Background()
	a, b := Redis(t), Redis(t)
	if a.Prefix == b.Prefix || a.DB == b.DB {
		t.Fatalf("want distinct prefix and db, got %+v and %+v", a, b)
	}
	ca, cb := a.Client(t), b.Client(t)
	if err := ca.Set(ctx, a.Prefix+"k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := cb.Exists(ctx, a.Prefix+"k").Result(); err != nil || n != 0 {
		t.Errorf("key visible in another test's db: n=%d err=%v", n, err)
	}
	o := a.Options()
	o.Password = "wrong"
	if err := newClientPing(ctx, o); err == nil {
		t.Error("ping with a wrong password succeeded")
	}
}

func TestRedisServerStop(t *testing.T) {
	r := RedisServer(t)
	c := r.Client(t)
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r.Stop(t)
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping after Stop succeeded")
	}
}

func TestMinIO(t *testing.T) {
	ctx := context.Background()
	a, b := MinIO(t), MinIO(t)
	if a.Bucket == b.Bucket {
		t.Fatalf("want distinct buckets, got %s twice", a.Bucket)
	}
	c := a.Client(t)
	data := []byte("hello")
	if _, err := c.PutObject(ctx, a.Bucket, "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	obj, err := c.GetObject(ctx, a.Bucket, "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %q, %v", got, err)
	}
}

func TestDocker(t *testing.T) {
	Docker(t)
}

func TestPingDockerBadHost(t *testing.T) {
	tests := []string{"ssh://example", "unix:///nonexistent/docker.sock"}
	for _, host := range tests {
		if err := pingDocker(host); err == nil {
			t.Errorf("pingDocker(%q) = nil, want error", host)
		}
	}
}

func newClientPing(ctx context.Context, o *redis.Options) error {
	c := redis.NewClient(o)
	defer c.Close()
	return c.Ping(ctx).Err()
}

func TestSweepStale(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("no `true` binary:", err)
	}
	tests := []struct {
		name      string
		owner     string
		wantSwept bool
	}{
		{"dead owner", strconv.Itoa(dead.Process.Pid), true},
		{"live owner", strconv.Itoa(os.Getpid()), false},
		{"garbage owner", "not-a-pid", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "corpintel-testenv-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(tt.owner), 0o644); err != nil {
				t.Fatal(err)
			}
			sweepStale()
			_, err = os.Stat(dir)
			if swept := os.IsNotExist(err); swept != tt.wantSwept {
				t.Errorf("swept = %v, want %v", swept, tt.wantSwept)
			}
		})
	}
}

func TestLookBin(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "server")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		env        string
		candidates []string
		want       string
		wantErr    bool
	}{
		{name: "env wins", env: exe, want: exe},
		{name: "env not executable", env: plain, wantErr: true},
		{name: "candidate", candidates: []string{plain, exe}, want: exe},
		{name: "nothing", candidates: []string{plain}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CORPINTEL_TEST_BIN", tt.env)
			got, err := lookBin("CORPINTEL_TEST_BIN", "corpintel-no-such-binary", tt.candidates...)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("lookBin = %q, %v; want %q (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestStopAllThenRestart(t *testing.T) {
	ctx := context.Background()
	before := Redis(t)
	StopAll()
	if err := newClientPing(ctx, before.Options()); err == nil {
		t.Fatal("shared server still answers after StopAll")
	}
	after := Redis(t)
	if err := after.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatalf("new shared server: %v", err)
	}
	if after.Addr == before.Addr {
		t.Errorf("same address %s after restart", after.Addr)
	}
}

func TestSharedServersCannotBeStopped(t *testing.T) {
	r := &recordingTB{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != r {
				panic(p)
			}
		}()
		Redis(t).Stop(r)
	}()
	if !r.failed {
		t.Error("stopping the shared Redis did not fail the test")
	}
}

func TestChromiumLookup(t *testing.T) {
	t.Setenv("CORPINTEL_CHROMIUM", "/nonexistent/chromium")
	if _, err := Chromium(); err == nil {
		t.Fatal("a missing $CORPINTEL_CHROMIUM was accepted")
	}
	t.Setenv("CORPINTEL_CHROMIUM", "")
	if p, err := Chromium(); err == nil && p == "" {
		t.Fatal("empty path without error")
	}
	if _, msg := decide("chromium", errNoChromium, true); !strings.Contains(msg, "apt-get install -y chromium") {
		t.Fatalf("hint: %s", msg)
	}
}
