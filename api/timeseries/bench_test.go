package timeseries_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/apitest"
	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/companies"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/seed"
	"github.com/corpintel/corpintel/api/timeseries"
	"github.com/corpintel/corpintel/api/web"
)

// benchServer serves companies and metrics over 20 seeded companies with 3 years of
// daily points each.
func benchServer(b *testing.B) (*apitest.Server, []string) {
	b.Helper()
	s := apitest.New(b, func(d app.Deps) []web.Module { return []web.Module{companies.New(d), timeseries.New(d)} })
	ctx := context.Background()
	if _, err := timeseries.Prepare(ctx, s.Deps.Pool, s.Deps.Log, time.Now()); err != nil {
		b.Fatal(err)
	}
	if _, err := seed.Run(ctx, s.Deps.Pool, s.Deps.Log, seed.Options{Companies: 20, Years: 3, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	rows, err := s.Deps.Pool.Query(ctx, `SELECT id::text FROM companies ORDER BY id`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	return s, ids
}

// BenchmarkIngest10k posts batches of 10 000 new points (one metric, one point a minute).
func BenchmarkIngest10k(b *testing.B) {
	s, ids := benchServer(b)
	tok, _ := s.Token(rbac.Analyst)
	start := time.Now().UTC().Truncate(time.Hour).AddDate(0, 0, -60)
	batches := make([]timeseries.IngestRequest, b.N)
	for i := range batches {
		pts := make([]timeseries.Point, 10_000)
		for j := range pts {
			v := float64(j)
			pts[j] = timeseries.Point{Metric: fmt.Sprintf("bench_%d", i), Time: start.Add(time.Duration(j) * time.Minute), Value: &v}
		}
		batches[i] = timeseries.IngestRequest{Points: pts}
	}
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		var res timeseries.IngestResult
		r := s.Do(http.MethodPost, "/api/v1/companies/"+ids[i%len(ids)]+"/metrics", tok, batches[i])
		if r.Code != http.StatusOK {
			b.Fatalf("%d %s", r.Code, r.Body)
		}
		r.JSON(b, &res)
		if res.Inserted != 10_000 {
			b.Fatalf("%+v", res)
		}
	}
	b.ReportMetric(float64(b.N*10_000)/time.Since(t0).Seconds(), "points/s")
}

// BenchmarkAggregateYear asks for one year of daily averages of one metric, per company
// round-robin: cached after the first round. BenchmarkAggregateYearUncached bumps the
// company's cache generation before every query.
func BenchmarkAggregateYear(b *testing.B) {
	s, ids := benchServer(b)
	tok, _ := s.Token(rbac.Viewer)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r := s.Do(http.MethodGet, "/api/v1/companies/"+ids[i%len(ids)]+"/metrics?metric=share_price&bucket=1d&agg=avg", tok, nil)
			if r.Code != http.StatusOK {
				b.Fatalf("%d %s", r.Code, r.Body)
			}
			i++
		}
	})
}

func BenchmarkAggregateYearUncached(b *testing.B) {
	s, ids := benchServer(b)
	tok, _ := s.Token(rbac.Viewer)
	ctx := context.Background()
	for _, agg := range []string{"avg", "last"} {
		b.Run(agg, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				id := ids[i%len(ids)]
				if err := s.Deps.Cache.Bump(ctx, companies.MetricsNamespace(id)); err != nil {
					b.Fatal(err)
				}
				r := s.Do(http.MethodGet, "/api/v1/companies/"+id+"/metrics?metric=share_price&bucket=1d&agg="+agg, tok, nil)
				if r.Code != http.StatusOK {
					b.Fatalf("%d %s", r.Code, r.Body)
				}
			}
		})
	}
}
