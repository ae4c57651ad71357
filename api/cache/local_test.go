package cache

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

// replica is one API replica's cache with a local layer, following invalidations.
func replica(t *testing.T, r *testenv.RedisDB, maxBytes int64) *Cache {
	t.Helper()
	opts := clientOptions(r.Addr, r.Password)
	opts.DB = r.DB
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := New(rdb, r.Prefix, prometheus.NewRegistry(), WithLocal(maxBytes))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Follow(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "the local layer to switch on", c.Local)
	return c
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func localHits(c *Cache) int { return int(testutil.ToFloat64(c.localHits)) }

// named returns a loader answering a company with the current value of *name.
func named(name *atomic.Value, calls *atomic.Int32) func(context.Context) (company, error) {
	return func(context.Context) (company, error) {
		calls.Add(1)
		return company{ID: 1, Name: name.Load().(string)}, nil
	}
}

func TestLocalLayerAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	r := testenv.Redis(t)
	a, b := replica(t, r, 1<<20), replica(t, r, 1<<20)
	var name atomic.Value
	name.Store("old")
	var calls atomic.Int32
	load := named(&name, &calls)

	read := func(c *Cache, namespaced bool) string {
		t.Helper()
		var v company
		var err error
		if namespaced {
			v, err = GetOrLoadIn(ctx, c, "ns", "x", time.Minute, load)
		} else {
			v, err = GetOrLoad(ctx, c, "x", time.Minute, load)
		}
		if err != nil {
			t.Fatal(err)
		}
		return v.Name
	}
	for _, namespaced := range []bool{false, true} {
		name.Store("old")
		calls.Store(0)
		for _, c := range []*Cache{a, b, a, b} {
			if got := read(c, namespaced); got != "old" {
				t.Fatalf("namespaced=%v: read %q, want old", namespaced, got)
			}
		}
		if calls.Load() != 1 {
			t.Errorf("namespaced=%v: loader ran %d times, want 1", namespaced, calls.Load())
		}
		if localHits(a) == 0 || localHits(b) == 0 {
			t.Errorf("namespaced=%v: local hits a=%d b=%d, want both > 0", namespaced, localHits(a), localHits(b))
		}
		// A write on a, then its invalidation: a sees the new value at once, b as soon
		// as the message arrives — and never the old one again after that.
		name.Store("new")
		var err error
		if namespaced {
			err = a.Bump(ctx, "ns")
		} else {
			err = a.Delete(ctx, "x")
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := read(a, namespaced); got != "new" {
			t.Errorf("namespaced=%v: the writing replica read %q after invalidating", namespaced, got)
		}
		eventually(t, "the other replica to see the write", func() bool { return read(b, namespaced) == "new" })
		for range 3 {
			if got := read(b, namespaced); got != "new" {
				t.Errorf("namespaced=%v: b read %q after it had seen the new value", namespaced, got)
			}
		}
	}
	// Bumping one namespace leaves the other namespaces' entries alone.
	if _, err := GetOrLoadIn(ctx, b, "other", "y", time.Minute, load); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.local.size(); n == 0 {
		t.Fatal("nothing in b's local layer")
	}
	before := localHits(b)
	if err := a.Bump(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b to drop namespace ns", func() bool {
		b.local.mu.RLock()
		defer b.local.mu.RUnlock()
		return len(b.local.byNS["ns"]) == 0
	})
	if _, err := GetOrLoadIn(ctx, b, "other", "y", time.Minute, load); err != nil || localHits(b) != before+1 {
		t.Errorf("namespace other after bumping ns: local hits %d → %d, err %v", before, localHits(b), err)
	}
}

func TestLocalLayerOffWithoutSubscription(t *testing.T) {
	ctx := context.Background()
	r := testenv.RedisServer(t)
	c := replica(t, r, 1<<20)
	var calls atomic.Int32
	if _, err := GetOrLoadJSON(ctx, c, "k", time.Minute, loader(&calls)); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.local.size(); n != 1 {
		t.Fatalf("local entries = %d, want 1", n)
	}
	r.Stop(t)
	// Without the subscription an invalidation could be missed: the layer empties and
	// stops answering, and reads go to the loader.
	eventually(t, "the local layer to switch off", func() bool { return !c.Local() })
	if n, _ := c.local.size(); n != 0 {
		t.Errorf("local entries after Redis went away = %d, want 0", n)
	}
	b, err := GetOrLoadJSON(ctx, c, "k", time.Minute, loader(&calls))
	if err != nil || !strings.Contains(string(b), `"id":1`) || calls.Load() != 2 {
		t.Errorf("read with Redis down: %s, %v, loader calls %d (want 2)", b, err, calls.Load())
	}
}

func TestLocalLayerUnit(t *testing.T) {
	now := time.Unix(1000, 0)
	l := &local{maxBytes: 100, entries: map[string]*localEntry{}, byNS: map[string]map[string]struct{}{}}
	l.put("k:a", "", "s", []byte("x"), time.Minute, l.generation(), now)
	if _, ok := l.get("k:a", "s", now); ok {
		t.Error("an off layer stored a value")
	}
	l.reset(true)
	gen := l.generation()
	l.invalidate("k:zzz") // any invalidation after gen was read
	l.put("k:a", "", "s", []byte("x"), time.Minute, gen, now)
	if _, ok := l.get("k:a", "s", now); ok {
		t.Error("a value read before an invalidation was stored after it")
	}
	l.put("k:a", "", "s", []byte("0123456789"), time.Minute, l.generation(), now)
	if b, ok := l.get("k:a", "s", now); !ok || string(b) != "0123456789" {
		t.Errorf("get = %q, %v", b, ok)
	}
	if _, ok := l.get("k:a", "other shape", now); ok {
		t.Error("a value of another shape was served")
	}
	if _, ok := l.get("k:a", "s", now.Add(LocalMaxTTL)); ok {
		t.Error("a value outlived LocalMaxTTL")
	}
	// The byte budget holds: 100 bytes, values of 10.
	for i := range 30 {
		l.put("n:ns:"+string(rune('a'+i)), "ns", "s", []byte("0123456789"), time.Minute, l.generation(), now)
	}
	if n, size := l.size(); size > 100 || n > 10 {
		t.Errorf("%d entries of %d bytes over a budget of 100", n, size)
	}
	l.put("k:big", "", "s", make([]byte, localMaxValue+1), time.Minute, l.generation(), now)
	if _, ok := l.get("k:big", "s", now); ok {
		t.Error("a value over localMaxValue was kept")
	}
	l.put("k:keep", "", "s", []byte("0123456789"), time.Minute, l.generation(), now)
	l.invalidate("n:ns")
	if n, size := l.size(); size != 10 || n != 1 {
		t.Errorf("after invalidating ns: %d entries, %d bytes; want only k:keep", n, size)
	}
	if _, ok := l.get("k:keep", "s", now); !ok {
		t.Error("invalidating ns dropped a plain key")
	}
	var nilLayer *local
	nilLayer.invalidate("k:a")
	nilLayer.reset(true)
	if _, ok := nilLayer.get("k:a", "s", now); ok || nilLayer.generation() != 0 {
		t.Error("a nil layer answered")
	}
}
