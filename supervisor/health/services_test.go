package health

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/corpintel/corpintel/supervisor/reconcile"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func loopback() string { return "127.0.0.1" }

func fixed(s string) Secret { return func() (string, error) { return s, nil } }

func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func TestPostgresCollector(t *testing.T) {
	pg := testenv.Postgres(t)
	p := NewPostgres(PostgresOptions{Target: loopback, Port: pg.Port, User: pg.User, DB: pg.DB, Password: fixed(pg.Password),
		Probe: &reconcile.ReadyProbe{Kind: reconcile.ProbePostgres, Port: pg.Port, User: pg.User, DB: pg.DB}})
	t.Cleanup(p.Close)

	// A session holding a lock and one waiting for it.
	ctx := context.Background()
	pool := pg.Pool(t)
	if _, err := pool.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) //nolint:errcheck
	if _, err := holder.Exec(ctx, "LOCK TABLE t IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancelWait := context.WithCancel(ctx)
	waiting := make(chan error, 1)
	go func() { _, err := pool.Exec(waitCtx, "SELECT * FROM t"); waiting <- err }()
	defer func() { cancelWait(); <-waiting }()

	var got map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		b := &Batch{}
		if err := p.Collect(ctx, b); err != nil {
			t.Fatal(err)
		}
		got = batchValues(b)
		if got["corpintel_postgres_lock_waits{}"] >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling for the waiter to queue, with a deadline
	}
	if got["corpintel_service_up{postgres}"] != 1 || got["corpintel_postgres_lock_waits{}"] < 1 {
		t.Errorf("up %v, lock waits %v", got["corpintel_service_up{postgres}"], got["corpintel_postgres_lock_waits{}"])
	}
	if got["corpintel_postgres_connections{}"] < 3 || got["corpintel_postgres_max_connections{}"] < 20 ||
		got["corpintel_postgres_database_size_bytes{}"] < 1<<20 || got["corpintel_postgres_connections_used_ratio{}"] <= 0 {
		t.Errorf("statistics %v", got)
	}
	if _, ok := got["corpintel_postgres_replication_lag_seconds{}"]; ok || got["corpintel_postgres_replicas{}"] != 0 {
		t.Error("replication lag without replicas")
	}
	if got["corpintel_postgres_transactions_total{commit}"] < 1 {
		t.Errorf("transactions %v", got["corpintel_postgres_transactions_total{commit}"])
	}

	// The session is read-only: the supervisor's metrics can never write.
	p.mu.Lock()
	_, err = p.conn.Exec(ctx, "CREATE TABLE written_by_metrics (x int)")
	p.mu.Unlock()
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("a write through the metrics session: %v", err)
	}

	// A wrong password: up (the probe answers), statistics fail and say why.
	bad := NewPostgres(PostgresOptions{Target: loopback, Port: pg.Port, User: pg.User, DB: pg.DB, Password: fixed("wrong"),
		Probe: &reconcile.ReadyProbe{Kind: reconcile.ProbePostgres, Port: pg.Port, User: pg.User, DB: pg.DB}})
	b := &Batch{}
	if err := bad.Collect(ctx, b); err == nil || !strings.Contains(err.Error(), "connect for statistics") {
		t.Errorf("wrong password: %v", err)
	}
	if got := batchValues(b); got["corpintel_service_up{postgres}"] != 1 || len(got) != 1 {
		t.Errorf("wrong password: %v", got)
	}
	noSecret := NewPostgres(PostgresOptions{Target: loopback, Port: pg.Port, User: pg.User, DB: pg.DB,
		Password: func() (string, error) { return "", errors.New("no secret file") },
		Probe:    &reconcile.ReadyProbe{Kind: reconcile.ProbePostgres, Port: pg.Port, User: pg.User, DB: pg.DB}})
	if err := noSecret.Collect(ctx, &Batch{}); err == nil || !strings.Contains(err.Error(), "no secret file") {
		t.Errorf("missing secret: %v", err)
	}
}

func TestPostgresCollectorDown(t *testing.T) {
	pg := testenv.PostgresServer(t)
	p := NewPostgres(PostgresOptions{Target: loopback, Port: pg.Port, User: pg.User, DB: pg.DB, Password: fixed(pg.Password),
		Probe: &reconcile.ReadyProbe{Kind: reconcile.ProbePostgres, Port: pg.Port, User: pg.User, DB: pg.DB}})
	t.Cleanup(p.Close)
	if err := p.Collect(context.Background(), &Batch{}); err != nil {
		t.Fatal(err)
	}
	pg.Stop(t)
	b := &Batch{}
	if err := p.Collect(context.Background(), b); err == nil {
		t.Fatal("a stopped server collected fine")
	}
	if got := batchValues(b); got["corpintel_service_up{postgres}"] != 0 || len(got) != 1 {
		t.Errorf("down: %v", got)
	}
	// No container at all.
	none := NewPostgres(PostgresOptions{Target: func() string { return "" }})
	b = &Batch{}
	if err := none.Collect(context.Background(), b); err == nil || batchValues(b)["corpintel_service_up{postgres}"] != 0 {
		t.Errorf("no container: %v %v", err, batchValues(b))
	}
}

func TestRedisCollector(t *testing.T) {
	rdb := testenv.Redis(t)
	host, port := hostPort(t, rdb.Addr)
	r := NewRedis(RedisOptions{Target: func() string { return host }, Port: port, Password: fixed(rdb.Password),
		Probe: &reconcile.ReadyProbe{Kind: reconcile.ProbeRedis, Port: port}})
	t.Cleanup(r.Close)
	c := rdb.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, rdb.Prefix+"k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c.Get(ctx, rdb.Prefix+"k")
	c.Get(ctx, rdb.Prefix+"missing")
	b := &Batch{}
	if err := r.Collect(ctx, b); err != nil {
		t.Fatal(err)
	}
	got := batchValues(b)
	if got["corpintel_service_up{redis}"] != 1 || got["corpintel_redis_keyspace_hits_total{}"] < 1 || got["corpintel_redis_keyspace_misses_total{}"] < 1 ||
		got["corpintel_redis_memory_used_bytes{}"] <= 0 || got["corpintel_redis_connected_clients{}"] < 1 {
		t.Errorf("redis %v", got)
	}
	if hr := got["corpintel_redis_hit_ratio{}"]; hr <= 0 || hr >= 1 {
		t.Errorf("hit ratio %v", hr)
	}
	if _, ok := got["corpintel_redis_evicted_keys_total{}"]; !ok {
		t.Error("no evictions counter")
	}

	wrong := NewRedis(RedisOptions{Target: func() string { return host }, Port: port, Password: fixed("wrong"),
		Probe: &reconcile.ReadyProbe{Kind: reconcile.ProbeRedis, Port: port}})
	t.Cleanup(wrong.Close)
	if err := wrong.Collect(ctx, &Batch{}); err == nil || !strings.Contains(err.Error(), "INFO") {
		t.Errorf("wrong password: %v", err)
	}
	if err := NewRedis(RedisOptions{Target: func() string { return host }, Port: port, Probe: &reconcile.ReadyProbe{Kind: reconcile.ProbeRedis, Port: port},
		Password: func() (string, error) { return "", errors.New("no secret") }}).Collect(ctx, &Batch{}); err == nil {
		t.Error("missing secret")
	}
}

func TestRedisCollectorDown(t *testing.T) {
	rdb := testenv.RedisServer(t)
	host, port := hostPort(t, rdb.Addr)
	r := NewRedis(RedisOptions{Target: func() string { return host }, Port: port, Password: fixed(rdb.Password),
		Probe: &reconcile.ReadyProbe{Kind: reconcile.ProbeRedis, Port: port}})
	t.Cleanup(r.Close)
	if err := r.Collect(context.Background(), &Batch{}); err != nil {
		t.Fatal(err)
	}
	rdb.Stop(t)
	b := &Batch{}
	if err := r.Collect(context.Background(), b); err == nil || batchValues(b)["corpintel_service_up{redis}"] != 0 {
		t.Errorf("down: %v %v", err, batchValues(b))
	}
}

func TestParseRedisInfo(t *testing.T) {
	got := parseRedisInfo("# Stats\r\nkeyspace_hits:10\r\nweird\r\nused_memory:2048\r\n\r\n# Clients\nconnected_clients:3")
	if got["keyspace_hits"] != "10" || got["used_memory"] != "2048" || got["connected_clients"] != "3" || len(got) != 3 {
		t.Errorf("parsed %v", got)
	}
}

func TestMinIOCollector(t *testing.T) {
	m := testenv.MinIO(t)
	host, port := hostPort(t, m.Endpoint)
	c := NewMinIO(MinIOOptions{Target: func() string { return host }, Port: port, AccessKey: fixed(m.AccessKey), SecretKey: fixed(m.SecretKey),
		Probe: &reconcile.ReadyProbe{Kind: reconcile.ProbeHTTP, Port: port, Path: "/minio/health/live"}})
	b := &Batch{}
	if err := c.Collect(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got := batchValues(b)
	if got["corpintel_service_up{minio}"] != 1 || got["corpintel_minio_free_bytes{}"] <= 0 || got["corpintel_minio_total_bytes{}"] < got["corpintel_minio_free_bytes{}"] {
		t.Errorf("minio %v", got)
	}
	wrong := NewMinIO(MinIOOptions{Target: func() string { return host }, Port: port, AccessKey: fixed(m.AccessKey), SecretKey: fixed("not-the-secret"),
		Probe: &reconcile.ReadyProbe{Kind: reconcile.ProbeHTTP, Port: port, Path: "/minio/health/live"}})
	if err := wrong.Collect(context.Background(), &Batch{}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a token signed with the wrong key: %v", err)
	}
	down := NewMinIO(MinIOOptions{Target: func() string { return host }, Port: 1, AccessKey: fixed("a"), SecretKey: fixed("b"),
		Probe: &reconcile.ReadyProbe{Kind: reconcile.ProbeHTTP, Port: 1, Path: "/minio/health/live"}})
	b = &Batch{}
	if err := down.Collect(context.Background(), b); err == nil || batchValues(b)["corpintel_service_up{minio}"] != 0 {
		t.Errorf("down: %v %v", err, batchValues(b))
	}
}

type pinger struct{ err error }

func (p pinger) Ping(context.Context) error { return p.err }

func TestDockerCollector(t *testing.T) {
	for _, c := range []struct {
		err  error
		want float64
	}{{nil, 1}, {errors.New("cannot connect"), 0}} {
		b := &Batch{}
		err := Docker{Engine: pinger{c.err}}.Collect(context.Background(), b)
		if (err != nil) != (c.err != nil) || batchValues(b)["corpintel_docker_up{}"] != c.want {
			t.Errorf("ping %v: %v %v", c.err, err, batchValues(b))
		}
	}
}

// A service that has not answered since the supervisor started is "not known" during
// the start grace, "down" after it; one that answered is down at its first failure.
func TestServiceStartGrace(t *testing.T) {
	clk := newClock()
	rdb := testenv.Redis(t)
	host, port := hostPort(t, rdb.Addr)
	ip := ""
	r := NewRedis(RedisOptions{Target: func() string { return ip }, Port: port, Password: fixed(rdb.Password), StartGrace: time.Minute, Now: clk.Now,
		Probe: &reconcile.ReadyProbe{Kind: reconcile.ProbeRedis, Port: port}})
	t.Cleanup(r.Close)
	up := func() (float64, bool) {
		b := &Batch{}
		_ = r.Collect(context.Background(), b)
		v, ok := batchValues(b)["corpintel_service_up{redis}"]
		return v, ok
	}
	if _, ok := up(); ok {
		t.Error("down reported inside the start grace")
	}
	clk.Add(2 * time.Minute)
	if v, ok := up(); !ok || v != 0 {
		t.Errorf("after the grace: %v %v", v, ok)
	}
	ip = host
	if v, _ := up(); v != 1 {
		t.Errorf("answering: %v", v)
	}
	ip = ""
	if v, ok := up(); !ok || v != 0 {
		t.Errorf("gone after answering: %v %v", v, ok)
	}
}
