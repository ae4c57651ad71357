package timeseries

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/rbac"
)

func pt(metric string, t time.Time, v float64) Point {
	return Point{Metric: metric, Time: t, Value: &v}
}

// reference computes what an aggregation must return from the points themselves.
func reference(points []Point, metric string, from, to time.Time, bucket time.Duration, agg Agg) map[time.Time]float64 {
	type acc struct {
		sum, min, max, last float64
		lastT               time.Time
		n                   int
	}
	accs := map[time.Time]*acc{}
	for _, p := range dedupe(points) {
		if p.Metric != metric || p.Time.Before(from) || !p.Time.Before(to) {
			continue
		}
		b := floorBucket(p.Time, bucket)
		a := accs[b]
		if a == nil {
			a = &acc{min: math.Inf(1), max: math.Inf(-1)}
			accs[b] = a
		}
		v := *p.Value
		a.sum += v
		a.n++
		a.min, a.max = math.Min(a.min, v), math.Max(a.max, v)
		if !p.Time.Before(a.lastT) {
			a.last, a.lastT = v, p.Time
		}
	}
	out := map[time.Time]float64{}
	for b, a := range accs {
		switch agg {
		case Avg:
			out[b] = a.sum / float64(a.n)
		case Min:
			out[b] = a.min
		case Max:
			out[b] = a.max
		case Sum:
			out[b] = a.sum
		case Last:
			out[b] = a.last
		}
	}
	return out
}

func TestIngestAndAggregate(t *testing.T) {
	h := newHarness(t)
	id := h.company("Series Co")
	start := time.Date(2025, 11, 20, 0, 0, 0, 0, time.UTC)
	var points []Point
	for i := 0; i < 24*75; i++ { // hourly for 75 days, across three month boundaries
		ts := start.Add(time.Duration(i) * time.Hour)
		points = append(points, pt("share_price", ts, 100+10*math.Sin(float64(i)/17)), pt("volume", ts, float64(i%13)))
	}
	points = append(points, pt("share_price", start, 42)) // a repeat: the last one wins
	var res IngestResult
	h.must(http.StatusOK, http.MethodPost, "/companies/"+id+"/metrics", rbac.Analyst, IngestRequest{Points: points}, &res)
	if res != (IngestResult{Received: len(points), Inserted: len(points) - 1, Duplicates: 1}) {
		t.Fatalf("first ingest: %+v", res)
	}
	// Idempotent: the same batch again changes nothing.
	h.must(http.StatusOK, http.MethodPost, "/companies/"+id+"/metrics", rbac.Analyst, IngestRequest{Points: points}, &res)
	if res != (IngestResult{Received: len(points), Unchanged: len(points) - 1, Duplicates: 1}) {
		t.Fatalf("re-ingest: %+v", res)
	}
	from, to := start.AddDate(0, 0, 3), start.AddDate(0, 0, 70)
	for _, bucket := range []string{"1h", "1d", "7d", "30d"} {
		for _, agg := range []Agg{Avg, Min, Max, Sum, Last} {
			q := url.Values{"metric": {"share_price"}, "from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)},
				"bucket": {bucket}, "agg": {string(agg)}}
			var got Result
			h.must(http.StatusOK, http.MethodGet, "/companies/"+id+"/metrics?"+q.Encode(), rbac.Viewer, nil, &got)
			bw, _ := ParseBucket(bucket)
			want := reference(points, "share_price", from, to, bw, agg)
			if len(got.Series) != 1 || got.Series[0].Metric != "share_price" || len(got.Series[0].Points) != len(want) {
				t.Fatalf("%s %s: %d series, want 1 with %d buckets", bucket, agg, len(got.Series), len(want))
			}
			for _, b := range got.Series[0].Points {
				w, ok := want[b.Time]
				if !ok || math.Abs(w-b.Value) > 1e-9*math.Max(1, math.Abs(w)) {
					t.Fatalf("%s %s bucket %s: %v, want %v (present %v)", bucket, agg, b.Time, b.Value, w, ok)
				}
			}
		}
	}
	// Without metric every series comes back; the defaults cover the last year.
	var all Result
	h.must(http.StatusOK, http.MethodGet, "/companies/"+id+"/metrics?bucket=30d&from=2025-01-01&to=2026-03-01", rbac.Viewer, nil, &all)
	if len(all.Series) != 2 || all.Series[0].Metric != "share_price" || all.Series[1].Metric != "volume" {
		t.Fatalf("series %+v", all.Series)
	}
	var def Result
	h.must(http.StatusOK, http.MethodGet, "/companies/"+id+"/metrics", rbac.Viewer, nil, &def)
	if def.Bucket != "1d" || def.Agg != Avg || def.To.Sub(def.From) < DefaultRange {
		t.Fatalf("defaults: %+v", def)
	}
	// An update changes the value and is counted as such.
	h.must(http.StatusOK, http.MethodPost, "/companies/"+id+"/metrics", rbac.Analyst,
		IngestRequest{Points: []Point{pt("volume", start, 1e6), pt("volume", start.Add(-time.Hour), 7)}}, &res)
	if res != (IngestResult{Received: 2, Inserted: 1, Updated: 1}) {
		t.Fatalf("update: %+v", res)
	}
	ev := h.s.Events(t)[0]
	if ev.Action != "metrics.ingest" || ev.Target != "company:"+id || ev.Outcome != "success" {
		t.Fatalf("audit %+v", ev)
	}
	// Every point went to a monthly partition, none to the default one.
	var inDefault int
	if err := h.s.Deps.Pool.QueryRow(context.Background(), `SELECT count(*) FROM financial_metrics_default`).Scan(&inDefault); err != nil || inDefault != 0 {
		t.Fatalf("default partition holds %d rows (%v)", inDefault, err)
	}
}

func TestCacheInvalidation(t *testing.T) {
	h := newHarness(t)
	id := h.company("Cache Co")
	day := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	h.must(http.StatusOK, http.MethodPost, "/companies/"+id+"/metrics", rbac.Analyst, IngestRequest{Points: []Point{pt("revenue", day, 1)}}, nil)
	path := "/companies/" + id + "/metrics?metric=revenue&from=2026-01-01&to=2026-02-01&agg=sum&bucket=30d"
	sum := func() float64 {
		var r Result
		h.must(http.StatusOK, http.MethodGet, path, rbac.Viewer, nil, &r)
		if len(r.Series) == 0 {
			return 0
		}
		return r.Series[0].Points[0].Value
	}
	if got := sum(); got != 1 {
		t.Fatalf("sum %v", got)
	}
	// Written behind the API's back: the cached answer stands.
	if _, err := h.s.Deps.Pool.Exec(context.Background(), `UPDATE financial_metrics SET value = 5 WHERE company_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if got := sum(); got != 1 {
		t.Fatalf("not cached: %v", got)
	}
	h.must(http.StatusOK, http.MethodPost, "/companies/"+id+"/metrics", rbac.Analyst, IngestRequest{Points: []Point{pt("revenue", day.Add(time.Hour), 2)}}, nil)
	if got := sum(); got != 7 {
		t.Fatalf("after ingest sum %v, want 7", got)
	}
	// Deleting the company removes its points and answers 404 from then on.
	h.must(http.StatusNoContent, http.MethodDelete, "/companies/"+id, rbac.Analyst, nil, nil)
	h.must(http.StatusNotFound, http.MethodGet, path, rbac.Viewer, nil, nil)
	h.must(http.StatusNotFound, http.MethodPost, "/companies/"+id+"/metrics", rbac.Analyst, IngestRequest{Points: []Point{pt("revenue", day, 1)}}, nil)
}

func TestRequestErrors(t *testing.T) {
	h := newHarness(t)
	id := h.company("Errors Co")
	now := time.Now().UTC()
	many := make([]Point, MaxPoints+1)
	for i := range many {
		many[i] = pt("m", now.Add(-time.Duration(i)*time.Minute), 1)
	}
	cases := []struct {
		name   string
		method string
		path   string
		role   rbac.Role
		body   any
		status int
		detail string
	}{
		{"viewer cannot ingest", http.MethodPost, "/companies/" + id + "/metrics", rbac.Viewer, IngestRequest{Points: many[:1]}, 403, ""},
		{"too many points", http.MethodPost, "/companies/" + id + "/metrics", rbac.Analyst, IngestRequest{Points: many}, 413, "at most 10000"},
		{"empty batch", http.MethodPost, "/companies/" + id + "/metrics", rbac.Analyst, `{"points":[]}`, 422, ""},
		{"bad metric", http.MethodPost, "/companies/" + id + "/metrics", rbac.Analyst, `{"points":[{"metric":"Revenue!","time":"2026-01-01T00:00:00Z","value":1}]}`, 422, ""},
		{"missing value", http.MethodPost, "/companies/" + id + "/metrics", rbac.Analyst, `{"points":[{"metric":"r","time":"2026-01-01T00:00:00Z"}]}`, 422, ""},
		{"missing time", http.MethodPost, "/companies/" + id + "/metrics", rbac.Analyst, `{"points":[{"metric":"r","value":1}]}`, 422, ""},
		{"ancient", http.MethodPost, "/companies/" + id + "/metrics", rbac.Analyst, `{"points":[{"metric":"r","time":"1900-01-01T00:00:00Z","value":1}]}`, 422, ""},
		{"far future", http.MethodPost, "/companies/" + id + "/metrics", rbac.Analyst, `{"points":[{"metric":"r","time":"2999-01-01T00:00:00Z","value":1}]}`, 422, ""},
		{"bad time", http.MethodPost, "/companies/" + id + "/metrics", rbac.Analyst, `{"points":[{"metric":"r","time":"yesterday","value":1}]}`, 400, ""},
		{"string value", http.MethodPost, "/companies/" + id + "/metrics", rbac.Analyst, `{"points":[{"metric":"r","time":"2026-01-01T00:00:00Z","value":"1"}]}`, 422, ""},
		{"unknown field", http.MethodPost, "/companies/" + id + "/metrics", rbac.Analyst, `{"points":[],"x":1}`, 400, ""},
		{"no such company", http.MethodPost, "/companies/00000000-0000-4000-8000-000000000000/metrics", rbac.Analyst, IngestRequest{Points: many[:1]}, 404, ""},
		{"bad company id", http.MethodPost, "/companies/x'--/metrics", rbac.Analyst, IngestRequest{Points: many[:1]}, 404, ""},
		{"query no such company", http.MethodGet, "/companies/00000000-0000-4000-8000-000000000000/metrics", rbac.Viewer, nil, 404, ""},
		{"query bad id", http.MethodGet, "/companies/nope/metrics", rbac.Viewer, nil, 404, ""},
		{"bad bucket", http.MethodGet, "/companies/" + id + "/metrics?bucket=1y", rbac.Viewer, nil, 422, ""},
		{"tiny bucket", http.MethodGet, "/companies/" + id + "/metrics?bucket=1s", rbac.Viewer, nil, 422, ""},
		{"bad agg", http.MethodGet, "/companies/" + id + "/metrics?agg=median", rbac.Viewer, nil, 422, ""},
		{"too many buckets", http.MethodGet, "/companies/" + id + "/metrics?bucket=1m&from=2020-01-01&to=2026-01-01", rbac.Viewer, nil, 422, "too many buckets"},
		{"from after to", http.MethodGet, "/companies/" + id + "/metrics?from=2026-01-02&to=2026-01-01", rbac.Viewer, nil, 422, ""},
		{"injection metric", http.MethodGet, "/companies/" + id + "/metrics?metric=" + url.QueryEscape("x' OR '1'='1"), rbac.Viewer, nil, 422, ""},
		{"unknown param", http.MethodGet, "/companies/" + id + "/metrics?metrc=x", rbac.Viewer, nil, 422, ""},
		{"oversized body", http.MethodPost, "/companies/" + id + "/metrics", rbac.Analyst, `{"points":[` + strings.Repeat(" ", 3<<20) + `]}`, 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do(c.method, c.path, c.role, c.body)
			if r.Code != c.status {
				t.Fatalf("status %d, want %d: %s", r.Code, c.status, r.Body)
			}
			if c.detail != "" && !strings.Contains(string(r.Body), c.detail) {
				t.Fatalf("body %s lacks %q", r.Body, c.detail)
			}
		})
	}
}

func TestPartitions(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	pool := h.s.Deps.Pool
	id := h.company("Partition Co")
	st, err := Prepare(ctx, pool, h.s.Deps.Log, time.Date(2031, 5, 17, 0, 0, 0, 0, time.UTC))
	if err != nil || st != Native {
		t.Fatalf("prepare: %v %v", st, err)
	}
	for m := 5; m <= 5+MonthsAhead; m++ {
		name := PartitionName(time.Date(2031, time.Month(m), 1, 0, 0, 0, 0, time.UTC))
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil || !ok {
			t.Fatalf("partition %s missing (%v)", name, err)
		}
	}
	// A row that reached the default partition moves into the month's partition when it
	// is created.
	stray := time.Date(2032, 3, 15, 12, 0, 0, 0, time.UTC)
	if _, err := pool.Exec(ctx, `INSERT INTO financial_metrics VALUES ($1, 'stray', $2, 3.5)`, id, stray); err != nil {
		t.Fatal(err)
	}
	// Several managers (replicas) race for the same months: all succeed, one creates.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- NewPartitions(pool, h.s.Deps.Log).EnsureRange(ctx, stray.AddDate(0, -2, 0), stray)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var where string
	if err := pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM financial_metrics WHERE metric = 'stray'`).Scan(&where); err != nil {
		t.Fatal(err)
	}
	if where != PartitionName(stray) {
		t.Fatalf("stray row in %s, want %s", where, PartitionName(stray))
	}
	st2, err := h.mod.Storage(ctx)
	if err != nil || st2 != Native || st2.String() != "native-partitions" || Timescale.String() != "timescaledb" {
		t.Fatalf("storage %v %v", st2, err)
	}
}

func TestConcurrentIngestAndDelete(t *testing.T) {
	h := newHarness(t)
	id := h.company("Racy Co")
	var batch []Point
	for i := 0; i < 5000; i++ {
		batch = append(batch, pt("m", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Minute), float64(i)))
	}
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.s.Do(http.MethodPost, "/api/v1/companies/"+id+"/metrics", h.tokens[rbac.Analyst], IngestRequest{Points: batch})
			if r.Code != 200 && r.Code != 404 {
				t.Errorf("ingest: %d %s", r.Code, r.Body)
			}
		}()
	}
	h.must(http.StatusNoContent, http.MethodDelete, "/companies/"+id, rbac.Analyst, nil, nil)
	wg.Wait()
	var n int
	if err := h.s.Deps.Pool.QueryRow(context.Background(), `SELECT count(*) FROM financial_metrics WHERE company_id = $1`, id).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d orphaned points (%v)", n, err)
	}
}

func TestAggregateSQLShapes(t *testing.T) {
	q := Query{Metric: "revenue", Bucket: 24 * time.Hour, Agg: Last}
	native, ts := aggregateSQL(Native, q), aggregateSQL(Timescale, q)
	for _, c := range []struct {
		sql, want string
	}{
		{native, "date_bin($2::interval, time, $3::timestamptz)"},
		{native, "(array_agg(value ORDER BY time DESC))[1]"},
		{native, "AND metric = $6"},
		{ts, "time_bucket($2::interval, time, $3::timestamptz)"},
		{ts, "last(value, time)"},
		{ts, "GROUP BY metric, bucket ORDER BY metric, bucket"},
	} {
		if !strings.Contains(c.sql, c.want) {
			t.Errorf("SQL lacks %q:\n%s", c.want, c.sql)
		}
	}
	for _, agg := range []Agg{Avg, Min, Max, Sum} {
		q := Query{Bucket: time.Hour, Agg: agg}
		for _, s := range []Storage{Native, Timescale} {
			sql := aggregateSQL(s, q)
			if !strings.Contains(sql, string(agg)+"(value)") || strings.Contains(sql, "$6") {
				t.Errorf("%s %s: %s", s, agg, sql)
			}
		}
	}
	if strings.Contains(ts, "date_bin") || strings.Contains(native, "time_bucket") {
		t.Fatal("storage variants mixed")
	}
}
