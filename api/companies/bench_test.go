package companies_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/corpintel/corpintel/api/apitest"
	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/cache"
	"github.com/corpintel/corpintel/api/companies"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/seed"
	"github.com/corpintel/corpintel/api/web"
	"github.com/prometheus/client_golang/prometheus"
)

// benchServer serves the companies module over 1 000 seeded companies.
func benchServer(b *testing.B) (*apitest.Server, string, []companies.Company) {
	b.Helper()
	s := apitest.New(b, func(d app.Deps) []web.Module { return []web.Module{companies.New(d)} })
	if _, err := seed.Run(context.Background(), s.Deps.Pool, s.Deps.Log, seed.Options{Companies: 1000, Years: 0, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	tok, _ := s.Token(rbac.Viewer)
	var page companies.Page
	r := s.Do(http.MethodGet, "/api/v1/companies?limit=200", tok, nil)
	r.JSON(b, &page)
	return s, tok, page.Items
}

// cacheCounts reads the cache's hit and miss counters.
func cacheCounts(b *testing.B, reg prometheus.Gatherer) (hits, misses float64) {
	b.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != cache.RequestsName {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetValue() {
				case "hit":
					hits = m.GetCounter().GetValue()
				case "miss":
					misses = m.GetCounter().GetValue()
				}
			}
		}
	}
	return hits, misses
}

func reportHitRate(b *testing.B, s *apitest.Server, h0, m0 float64) {
	h, m := cacheCounts(b, s.Registry)
	if n := (h - h0) + (m - m0); n > 0 {
		b.ReportMetric(100*(h-h0)/n, "hit%")
	}
}

// BenchmarkGetByIDCached reads 200 companies round-robin: after the first round every
// read is a cache hit.
func BenchmarkGetByIDCached(b *testing.B) {
	s, tok, items := benchServer(b)
	h0, m0 := cacheCounts(b, s.Registry)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r := s.Do(http.MethodGet, "/api/v1/companies/"+items[i%len(items)].ID, tok, nil)
			if r.Code != http.StatusOK {
				b.Fatalf("%d %s", r.Code, r.Body)
			}
			i++
		}
	})
	b.StopTimer()
	reportHitRate(b, s, h0, m0)
}

// BenchmarkSearch searches by name fragments and tickers (cached after the first use of
// each query), and BenchmarkSearchUncached bypasses the cache by bumping its generation.
func BenchmarkSearch(b *testing.B) {
	s, tok, items := benchServer(b)
	var queries []string
	for _, c := range items[:50] {
		queries = append(queries, "/api/v1/companies?"+url.Values{"q": {c.Name[:5]}}.Encode(), "/api/v1/companies?q="+*c.Ticker)
	}
	h0, m0 := cacheCounts(b, s.Registry)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if r := s.Do(http.MethodGet, queries[i%len(queries)], tok, nil); r.Code != http.StatusOK {
				b.Fatalf("%d %s", r.Code, r.Body)
			}
			i++
		}
	})
	b.StopTimer()
	reportHitRate(b, s, h0, m0)
}

func BenchmarkSearchUncached(b *testing.B) {
	s, tok, items := benchServer(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := items[i%len(items)]
		if err := s.Deps.Cache.Bump(ctx, "companies:list"); err != nil {
			b.Fatal(err)
		}
		if r := s.Do(http.MethodGet, "/api/v1/companies?"+url.Values{"q": {c.Name[:6]}}.Encode(), tok, nil); r.Code != http.StatusOK {
			b.Fatalf("%d %s", r.Code, r.Body)
		}
	}
}

func BenchmarkListPages(b *testing.B) {
	s, tok, _ := benchServer(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		path := fmt.Sprintf("/api/v1/companies?limit=50&country=%s", []string{"US", "DE", "JP", "GB"}[i%4])
		if r := s.Do(http.MethodGet, path, tok, nil); r.Code != http.StatusOK {
			b.Fatalf("%d %s", r.Code, r.Body)
		}
	}
}
