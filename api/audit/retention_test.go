package audit

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5/pgxpool"
)

func countKind(t *testing.T, pool *pgxpool.Pool, kind web.Kind) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE kind = $1`, string(kind)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEnforceArchivesThenDeletes(t *testing.T) {
	pool := testDB(t)
	store := testStore(t)
	ctx := context.Background()
	rec := NewRecorder(pool, store, nil, fixedClock(t0))
	rec.ret.batch = 2 // several batches per day
	day := 24 * time.Hour
	seed := []web.Event{
		{Time: t0.Add(-100 * day), Action: "app.old1", Kind: web.KindApplication, ActorID: "u1"},
		{Time: t0.Add(-100*day + time.Hour), Action: "app.old2", Kind: web.KindApplication},
		{Time: t0.Add(-100*day + 2*time.Hour), Action: "app.old3", Kind: web.KindApplication},
		{Time: t0.Add(-95 * day), Action: "app.old4", Kind: web.KindApplication},
		{Time: t0.Add(-80 * day), Action: "app.keep", Kind: web.KindApplication},
		{Time: t0.Add(-400 * day), Action: "access.old", Kind: web.KindAccess},
		{Time: t0.Add(-200 * day), Action: "access.keep", Kind: web.KindAccess},
		{Time: t0.Add(-500 * day), Action: "sec.old", Kind: web.KindSecurity},
		{Time: t0.Add(-499 * day), Action: "sec.old2", Kind: web.KindSecurity},
		{Time: t0.Add(-30 * time.Minute), Action: "sec.fresh", Kind: web.KindSecurity},
	}
	for _, e := range seed {
		if err := rec.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	st, err := rec.Enforce(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Deleted[web.KindApplication] != 4 || st.Deleted[web.KindAccess] != 1 || st.Deleted[web.KindSecurity] != 0 ||
		st.Archived[web.KindSecurity] != 2 {
		t.Fatalf("stats %+v", st)
	}
	if n := countKind(t, pool, web.KindApplication); n != 1 {
		t.Fatalf("%d application events left", n)
	}
	if n := countKind(t, pool, web.KindAccess); n != 1 {
		t.Fatalf("%d access events left", n)
	}
	if n := countKind(t, pool, web.KindSecurity); n != 3 {
		t.Fatalf("security events deleted: %d left", n)
	}
	keys := store.keys(t, "audit/")
	if len(keys) != len(st.Objects) {
		t.Fatalf("objects %v, stats %v", keys, st.Objects)
	}
	// Every archived record is in exactly one object, under its kind and day.
	archived := map[string]string{}
	for _, k := range keys {
		rc, err := store.GetObject(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := DecodeArchive(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		for _, r := range recs {
			if want := ArchiveKey(r.Kind, r.Time.Truncate(day), 0); !strings.HasPrefix(k, strings.TrimSuffix(want, "0.jsonl.gz")) {
				t.Fatalf("%s (%s) archived in %s", r.Action, r.Time, k)
			}
			if prev, dup := archived[r.Action]; dup {
				t.Fatalf("%s archived twice (%s, %s)", r.Action, prev, k)
			}
			archived[r.Action] = k
		}
	}
	var names []string
	for a := range archived {
		names = append(names, a)
	}
	sort.Strings(names)
	if got := strings.Join(names, ","); got != "access.old,app.old1,app.old2,app.old3,app.old4,sec.old,sec.old2" {
		t.Fatalf("archived %s", got)
	}
	if !strings.HasPrefix(archived["app.old1"], "audit/application/2026/03/07-") {
		t.Fatalf("key %s", archived["app.old1"])
	}

	// A second pass finds nothing to do; the fresh security event settles later.
	st, err = rec.Enforce(ctx, t0)
	if err != nil || len(st.Objects) != 0 {
		t.Fatalf("second pass %+v %v", st, err)
	}
	st, err = rec.Enforce(ctx, t0.Add(2*time.Hour))
	if err != nil || st.Archived[web.KindSecurity] != 1 {
		t.Fatalf("settled pass %+v %v", st, err)
	}
}

func TestEnforceKeepsRecordsWhenArchiveFails(t *testing.T) {
	pool := testDB(t)
	store := testStore(t)
	ctx := context.Background()
	rec := NewRecorder(pool, store, nil, fixedClock(t0))
	if err := rec.Record(ctx, web.Event{Time: t0.Add(-100 * 24 * time.Hour), Action: "app.old"}); err != nil {
		t.Fatal(err)
	}
	store.failPut = errors.New("disk full")
	if _, err := rec.Enforce(ctx, t0); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("enforce with a failing store: %v", err)
	}
	if n := countKind(t, pool, web.KindApplication); n != 1 {
		t.Fatal("record deleted although its archive failed")
	}
	store.failPut, store.corrupt = nil, true
	if _, err := rec.Enforce(ctx, t0); err == nil || !strings.Contains(err.Error(), "verify") {
		t.Fatalf("enforce with a corrupting store: %v", err)
	}
	if n := countKind(t, pool, web.KindApplication); n != 1 {
		t.Fatal("record deleted although its archive did not verify")
	}
	store.corrupt = false
	if _, err := rec.Enforce(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if n := countKind(t, pool, web.KindApplication); n != 0 {
		t.Fatal("record kept after a good archive")
	}
	if _, err := NewRecorder(pool, nil, nil, nil).Enforce(ctx, t0); err == nil {
		t.Fatal("enforce without a store succeeded")
	}
}

func TestRetentionLock(t *testing.T) {
	pool := testDB(t)
	store := testStore(t)
	ctx := context.Background()
	rec := NewRecorder(pool, store, nil, fixedClock(t0))
	if err := rec.Record(ctx, web.Event{Time: t0.Add(-100 * 24 * time.Hour), Action: "app.old"}); err != nil {
		t.Fatal(err)
	}
	other, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, "SELECT pg_advisory_lock($1)", retentionLockKey); err != nil {
		t.Fatal(err)
	}
	ran, _, err := rec.EnforceLocked(ctx, t0)
	if err != nil || ran {
		t.Fatalf("ran=%v err=%v while another replica holds the lock", ran, err)
	}
	if _, err := other.Exec(ctx, "SELECT pg_advisory_unlock($1)", retentionLockKey); err != nil {
		t.Fatal(err)
	}
	other.Release()

	// RunRetention does a pass right away and then one per interval.
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { rec.RunRetention(runCtx, 10*time.Millisecond); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for countKind(t, pool, web.KindApplication) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("RunRetention did not enforce")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}
