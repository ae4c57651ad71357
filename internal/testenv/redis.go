package testenv

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisDB is one test's share of a Redis server: its own database number (flushed before
// the test gets it) and key prefix.
type RedisDB struct {
	Addr     string // 127.0.0.1:port
	Password string // the server runs with requirepass
	DB       int
	Prefix   string // unique per test, e.g. "t12:"

	srv *redisServer
}

// Options returns go-redis options for the test's database.
func (r *RedisDB) Options() *redis.Options {
	// One dial attempt: go-redis retries refused dials 5 times, 100ms apart, by default,
	// which makes tests of Redis outages slow.
	return &redis.Options{Addr: r.Addr, Password: r.Password, DB: r.DB, DialerRetries: 1}
}

// Client opens a go-redis client on the test's database; it is closed when the test ends.
func (r *RedisDB) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(r.Options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop shuts the Redis server down, e.g. to test that callers survive Redis outages.
// Only private servers (RedisServer) can be stopped.
func (r *RedisDB) Stop(t testing.TB) {
	t.Helper()
	if r.srv.shared {
		t.Fatal("testenv: ", errShared)
	}
	r.srv.proc.stop()
}

// redisDatabases is the number of databases the test servers have; tests get them in
// turn, and a database is flushed before it is handed out again.
const redisDatabases = 1000

// Redis returns the test's database and key prefix on the Redis server shared by this
// test binary.
func Redis(t testing.TB) *RedisDB {
	t.Helper()
	srv, err := sharedRedis.get(func() (*redisServer, error) { return startRedis(true) })
	Require(t, "redis", err)
	return srv.newDB(t)
}

// RedisServer starts a private Redis server for this test (stopped when the test ends).
func RedisServer(t testing.TB) *RedisDB {
	t.Helper()
	srv, err := startRedis(false)
	Require(t, "redis", err)
	t.Cleanup(srv.proc.stop)
	return srv.newDB(t)
}

var sharedRedis lazy[redisServer]

type redisServer struct {
	proc     *server
	addr     string
	password string
	shared   bool
}

func (s *redisServer) newDB(t testing.TB) *RedisDB {
	t.Helper()
	seq := nextSeq()
	db := 1 + seq%(redisDatabases-1)
	r := &RedisDB{Addr: s.addr, Password: s.password, DB: db, Prefix: "t" + strconv.Itoa(seq) + ":", srv: s}
	c := redis.NewClient(r.Options())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("testenv: flush redis db %d: %v", db, err)
	}
	return r
}

func startRedis(shared bool) (*redisServer, error) {
	bin, err := lookBin("CORPINTEL_REDIS_BIN", "redis-server", "/usr/bin/redis-server", "/usr/local/bin/redis-server")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := runRedis(bin)
		if err == nil {
			s.shared = shared
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func runRedis(bin string) (*redisServer, error) {
	dir, err := serverDir("redis")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	password := randomHex(16)
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--requirepass", password,
		"--save", "", "--appendonly", "no",
		"--dir", dir, "--databases", strconv.Itoa(redisDatabases),
		"--daemonize", "no", "--logfile", "",
	)
	cmd.Dir = dir
	// Test data needs no orderly shutdown, and redis-server takes seconds to exit on SIGTERM.
	proc, err := startServer("redis", dir, cmd, syscall.SIGKILL, nil)
	if err != nil {
		return nil, err
	}
	s := &redisServer{proc: proc, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), password: password}
	err = waitReady(proc, 30*time.Second, func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: s.addr, Password: password, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	})
	if err != nil {
		proc.stop()
		return nil, fmt.Errorf("redis: %w", err)
	}
	return s, nil
}
