package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type company struct {
	ID   int      `json:"id"`
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

func newTestCache(t *testing.T, r *testenv.RedisDB) *Cache {
	t.Helper()
	opts := clientOptions(r.Addr, r.Password)
	opts.DB = r.DB
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := New(rdb, r.Prefix, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// counts returns the hit, miss and error counters.
func counts(c *Cache) [3]int {
	return [3]int{int(testutil.ToFloat64(c.hits)), int(testutil.ToFloat64(c.misses)), int(testutil.ToFloat64(c.errs))}
}

// loader returns a load function counting its calls and returning a company named after
// the call number.
func loader(calls *atomic.Int32) func(context.Context) (company, error) {
	return func(context.Context) (company, error) {
		n := calls.Add(1)
		return company{ID: 1, Name: "v" + string(rune('0'+n)), Tags: []string{"a"}}, nil
	}
}

func TestGetOrLoad(t *testing.T) {
	type step struct {
		op        string // get, getIn, delete, bump, dropGen
		ns, key   string
		wantName  string
		wantCount [3]int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"miss then hit", []step{
			{op: "get", key: "c1", wantName: "v1", wantCount: [3]int{0, 1, 0}},
			{op: "get", key: "c1", wantName: "v1", wantCount: [3]int{1, 1, 0}},
		}},
		{"delete invalidates", []step{
			{op: "get", key: "c1", wantName: "v1", wantCount: [3]int{0, 1, 0}},
			{op: "delete", key: "c1"},
			{op: "get", key: "c1", wantName: "v2", wantCount: [3]int{0, 2, 0}},
			{op: "get", key: "c1", wantName: "v2", wantCount: [3]int{1, 2, 0}},
		}},
		{"bump invalidates the namespace only", []step{
			{op: "getIn", ns: "search", key: "q=a", wantName: "v1", wantCount: [3]int{0, 1, 0}},
			{op: "getIn", ns: "other", key: "q=a", wantName: "v2", wantCount: [3]int{0, 2, 0}},
			{op: "getIn", ns: "search", key: "q=a", wantName: "v1", wantCount: [3]int{1, 2, 0}},
			{op: "bump", ns: "search"},
			{op: "getIn", ns: "search", key: "q=a", wantName: "v3", wantCount: [3]int{1, 3, 0}},
			{op: "getIn", ns: "other", key: "q=a", wantName: "v2", wantCount: [3]int{2, 3, 0}},
		}},
		{"plain and namespaced keys do not collide", []step{
			{op: "get", key: "x", wantName: "v1", wantCount: [3]int{0, 1, 0}},
			{op: "getIn", ns: "k", key: "x", wantName: "v2", wantCount: [3]int{0, 2, 0}},
		}},
		{"evicted generation never revives old entries", []step{
			{op: "getIn", ns: "search", key: "q", wantName: "v1", wantCount: [3]int{0, 1, 0}},
			{op: "dropGen", ns: "search"},
			{op: "getIn", ns: "search", key: "q", wantName: "v2", wantCount: [3]int{0, 2, 0}},
			{op: "dropGen", ns: "search"},
			{op: "bump", ns: "search"},
			{op: "getIn", ns: "search", key: "q", wantName: "v3", wantCount: [3]int{0, 3, 0}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c := newTestCache(t, testenv.Redis(t))
			var calls atomic.Int32
			load := loader(&calls)
			for i, s := range tt.steps {
				var got company
				var err error
				switch s.op {
				case "get":
					got, err = GetOrLoad(ctx, c, s.key, time.Minute, load)
				case "getIn":
					got, err = GetOrLoadIn(ctx, c, s.ns, s.key, time.Minute, load)
				case "delete":
					err = c.Delete(ctx, s.key)
				case "bump":
					err = c.Bump(ctx, s.ns)
				case "dropGen":
					err = c.rdb.Del(ctx, c.genKey(s.ns)).Err()
				}
				if err != nil {
					t.Fatalf("step %d %s: %v", i, s.op, err)
				}
				if s.wantName == "" {
					continue
				}
				if got.Name != s.wantName || len(got.Tags) != 1 {
					t.Errorf("step %d %s %s: got %+v, want name %s", i, s.op, s.key, got, s.wantName)
				}
				if cnt := counts(c); cnt != s.wantCount {
					t.Errorf("step %d: hit/miss/error = %v, want %v", i, cnt, s.wantCount)
				}
			}
		})
	}
}

func TestLoadErrorNotCached(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, testenv.Redis(t))
	boom := errors.New("db down")
	if _, err := GetOrLoad(ctx, c, "k", time.Minute, func(context.Context) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	v, err := GetOrLoad(ctx, c, "k", time.Minute, func(context.Context) (int, error) { return 7, nil })
	if err != nil || v != 7 {
		t.Fatalf("after a failed load: %v, %v; want 7", v, err)
	}
}

func TestTTL(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, testenv.Redis(t))
	if _, err := GetOrLoad(ctx, c, "k", 90*time.Second, func(context.Context) (int, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
	ttl, err := c.rdb.TTL(ctx, c.prefix+"k:k").Result()
	if err != nil || ttl <= 80*time.Second || ttl > 90*time.Second {
		t.Errorf("TTL = %v, %v; want about 90s", ttl, err)
	}
}

func TestSingleflight(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, testenv.Redis(t))
	const callers = 8
	var joined atomic.Int32
	c.joined = func(string) { joined.Add(1) }
	release := make(chan struct{})
	var calls atomic.Int32
	load := func(context.Context) ([]string, error) {
		calls.Add(1)
		<-release
		return []string{"x"}, nil
	}
	results := make([][]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { results[i], errs[i] = GetOrLoad(ctx, c, "hot", time.Minute, load) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for joined.Load() < callers {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d callers joined", joined.Load(), callers)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("loader ran %d times, want 1", n)
	}
	for i := range callers {
		if errs[i] != nil || len(results[i]) != 1 {
			t.Errorf("caller %d: %v, %v", i, results[i], errs[i])
		}
	}
	// Each caller got its own copy.
	results[0][0] = "mutated"
	if results[1][0] != "x" {
		t.Error("callers share one slice")
	}
}

func TestRedisDownServesFromLoader(t *testing.T) {
	ctx := context.Background()
	r := testenv.RedisServer(t)
	c := newTestCache(t, r)
	var calls atomic.Int32
	load := loader(&calls)
	if _, err := GetOrLoad(ctx, c, "k", time.Minute, load); err != nil {
		t.Fatal(err)
	}
	r.Stop(t)
	for i := range 3 {
		got, err := GetOrLoad(ctx, c, "k", time.Minute, load)
		if err != nil || got.ID != 1 {
			t.Fatalf("get %d with Redis down: %+v, %v", i, got, err)
		}
		if _, err := GetOrLoadIn(ctx, c, "ns", "k", time.Minute, load); err != nil {
			t.Fatalf("getIn %d with Redis down: %v", i, err)
		}
	}
	if cnt := counts(c); cnt != [3]int{0, 1, 6} {
		t.Errorf("hit/miss/error = %v, want [0 1 6]", cnt)
	}
	if n := calls.Load(); n != 7 {
		t.Errorf("loader calls = %d, want 7", n)
	}
	if err := c.Bump(ctx, "ns"); err == nil {
		t.Error("Bump with Redis down succeeded")
	}
	if err := c.Delete(ctx, "k"); err == nil {
		t.Error("Delete with Redis down succeeded")
	}
}

func TestConnect(t *testing.T) {
	r := testenv.Redis(t)
	ctx := context.Background()
	c, err := Connect(ctx, r.Addr, r.Password)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if _, err := Connect(ctx, r.Addr, "wrong"); err == nil {
		t.Error("Connect with a wrong password succeeded")
	}
}

func TestNewRequiresRegistry(t *testing.T) {
	if _, err := New(NewClient("127.0.0.1:1", ""), "p:", nil); err == nil {
		t.Error("New without registry succeeded")
	}
	reg := prometheus.NewRegistry()
	if _, err := New(NewClient("127.0.0.1:1", ""), "p:", reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(NewClient("127.0.0.1:1", ""), "p:", reg); err == nil {
		t.Error("second New on one registry succeeded")
	}
}
