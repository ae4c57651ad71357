// Package seed generates deterministic sample data for development and benchmarks:
// companies with plausible names, tickers, sectors and countries, and daily metric
// points for each over a number of years. The same options give the same data; a
// re-run skips companies that already exist (with their points, which are written in
// the same transaction), so seeding is idempotent.
package seed

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/corpintel/corpintel/api/timeseries"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options say how much to generate.
type Options struct {
	Companies int
	Years     int
	Seed      int64
	// End is the day after the last generated day (default: today, UTC midnight).
	// Data is a function of (Seed, Companies, Years, End).
	End time.Time
	// BatchSize is the number of companies written per transaction (default 20).
	BatchSize int
	// Workers is the number of concurrent writers (default 2). Every batch is
	// independent, so the data does not depend on it.
	Workers int
}

// Stats report what Run did.
type Stats struct {
	Companies int           // created by this run
	Skipped   int           // already present (or clashing with an existing ticker)
	Points    int64         // metric points written
	Duration  time.Duration // wall time
}

// Metrics generated for every company: two daily series and two quarterly ones
// (1 000 companies over 3 years ≈ 2.2 M points).
var (
	DailyMetrics     = []string{"share_price", "trading_volume"}
	QuarterlyMetrics = []string{"revenue", "net_income"}
)

// Limits of Options.
const (
	MaxCompanies = 100_000
	MaxYears     = 30
)

// Run seeds pool. It logs progress through log.
func Run(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, o Options) (Stats, error) {
	start := time.Now()
	if o.Companies < 1 || o.Companies > MaxCompanies {
		return Stats{}, fmt.Errorf("seed: companies must be between 1 and %d", MaxCompanies)
	}
	if o.Years < 0 || o.Years > MaxYears {
		return Stats{}, fmt.Errorf("seed: years must be between 0 and %d", MaxYears)
	}
	if o.End.IsZero() {
		o.End = time.Now().UTC().Truncate(24 * time.Hour)
	}
	o.End = o.End.UTC().Truncate(24 * time.Hour)
	if o.BatchSize <= 0 {
		o.BatchSize = 20
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	first := o.End.AddDate(-o.Years, 0, 0)
	if o.Years > 0 {
		st, err := timeseries.DetectStorage(ctx, pool)
		if err != nil {
			return Stats{}, fmt.Errorf("seed: %w", err)
		}
		if st == timeseries.Native {
			if err := timeseries.NewPartitions(pool, log).EnsureRange(ctx, first, o.End.Add(-time.Nanosecond)); err != nil {
				return Stats{}, fmt.Errorf("seed: %w", err)
			}
		}
	}
	log.Info("seeding", "companies", o.Companies, "years", o.Years, "seed", o.Seed,
		"from", first.Format(time.DateOnly), "to", o.End.Format(time.DateOnly))
	var stats Stats
	names := newNamer(o.Seed)
	all := make([]company, o.Companies)
	for i := range all {
		all[i] = genCompany(o.Seed, i, names)
	}
	type batch struct{ lo, hi int }
	work := make(chan batch)
	var (
		mu       sync.Mutex
		done     int
		lastLog  = time.Now()
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				created, points, err := writeBatch(ctx, pool, o, first, all[b.lo:b.hi])
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("seed: companies %d-%d: %w", b.lo, b.hi-1, err)
						cancel()
					}
					mu.Unlock()
					continue
				}
				stats.Companies += created
				stats.Skipped += (b.hi - b.lo) - created
				stats.Points += points
				done += b.hi - b.lo
				if time.Since(lastLog) > 2*time.Second || done == len(all) {
					el := time.Since(start)
					log.Info("seed progress", "companies_done", done, "of", len(all), "points", stats.Points,
						"points_per_sec", int(float64(stats.Points)/el.Seconds()), "elapsed", el.Round(time.Millisecond).String())
					lastLog = time.Now()
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for lo := 0; lo < len(all); lo += o.BatchSize {
		select {
		case work <- batch{lo, min(lo+o.BatchSize, len(all))}:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return stats, firstErr
	}
	if err := ctx.Err(); err != nil {
		return stats, fmt.Errorf("seed: %w", err)
	}
	stats.Duration = time.Since(start)
	log.Info("seed done", "created", stats.Companies, "skipped", stats.Skipped, "points", stats.Points,
		"duration", stats.Duration.Round(time.Millisecond).String())
	return stats, nil
}

// writeBatch inserts the companies that do not exist yet and COPYs the points of exactly
// those, in one transaction: a company is never left without its points.
func writeBatch(ctx context.Context, pool *pgxpool.Pool, o Options, first time.Time, batch []company) (int, int64, error) {
	var created int
	var points int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var (
			ids, names, tickers, secs, inds, ctrs, webs, descs []string
			emps                                               []int32
			founded                                            []int16
		)
		for _, c := range batch {
			ids, names, tickers = append(ids, c.id), append(names, c.name), append(tickers, c.ticker)
			secs, inds, ctrs = append(secs, c.sector), append(inds, c.industry), append(ctrs, c.country)
			webs, descs = append(webs, c.website), append(descs, c.description)
			emps, founded = append(emps, c.employees), append(founded, c.founded)
		}
		rows, err := tx.Query(ctx, `INSERT INTO companies (id, name, ticker, sector, industry, country, website, description, employees, founded_year)
			SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::smallint[])
			ON CONFLICT DO NOTHING RETURNING id::text`,
			ids, names, tickers, secs, inds, ctrs, webs, descs, emps, founded)
		if err != nil {
			return fmt.Errorf("insert companies: %w", err)
		}
		fresh := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			fresh[id] = true
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("insert companies: %w", err)
		}
		created = len(fresh)
		if o.Years == 0 || created == 0 {
			return nil
		}
		var todo []company
		for _, c := range batch {
			if fresh[c.id] {
				todo = append(todo, c)
			}
		}
		src := newPointSource(o.Seed, first, o.End, todo)
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"financial_metrics"}, []string{"company_id", "metric", "time", "value"}, src)
		if err != nil {
			return fmt.Errorf("copy points: %w", err)
		}
		points = n
		return nil
	})
	return created, points, err
}

// company is one generated company row.
type company struct {
	index                                                  int
	id, name, ticker, sector, industry, country, website   string
	description                                            string
	employees                                              int32
	founded                                                int16
	price, shares, volume, revenue, margin, drift, sigmaPx float64
}

// rng returns the generator of company i's stream s: every company's data depends
// only on the seed and its index, not on batch sizes.
func rng(seed int64, i int, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed)^0x9e3779b97f4a7c15, uint64(i)<<8|stream))
}

// deterministicID derives a UUID (version 8, RFC 9562 custom) from the seed and index.
func deterministicID(seed int64, i int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "corpintel-seed/%d/%d", seed, i))
	h[6] = h[6]&0x0f | 0x80
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func genCompany(seed int64, i int, names *namer) company {
	r := rng(seed, i, 0)
	sec := sectors[r.IntN(len(sectors))]
	name, ticker := names.next(r)
	c := company{
		index: i, id: deterministicID(seed, i), name: name, ticker: ticker,
		sector: sec.name, industry: sec.industries[r.IntN(len(sec.industries))],
		country:   pickCountry(r),
		employees: int32(math.Round(math.Exp(r.NormFloat64()*1.6 + 7.5))),
		founded:   int16(1850 + r.IntN(170)),
	}
	c.website = "https://www." + strings.ToLower(domainPart(name)) + ".example"
	c.description = fmt.Sprintf("%s is a %s company in %s, founded in %d.", name, strings.ToLower(c.industry), countryNames[c.country], c.founded)
	c.price = math.Exp(r.NormFloat64()*0.9 + 3.8)                       // ~45 median
	c.shares = math.Round(math.Exp(r.NormFloat64()*1.2+18.5)/1e3) * 1e3 // ~100M median
	c.volume = c.shares * (0.002 + r.Float64()*0.01)                    // daily turnover
	c.revenue = float64(c.employees) * (150e3 + r.Float64()*350e3) / 4  // quarterly
	c.margin = r.NormFloat64()*0.08 + 0.09                              // net margin
	c.drift = (r.Float64()*0.25 - 0.05) / 365                           // yearly -5…+20 %
	c.sigmaPx = 0.01 + r.Float64()*0.025                                // daily volatility
	return c
}

// pointSource streams the points of a batch of companies into COPY without holding
// them all in memory.
type pointSource struct {
	seed       int64
	first, end time.Time
	comps      []company
	ci         int
	r          *rand.Rand
	day        time.Time
	price      float64
	pending    [][]any
	row        []any
	err        error
}

func newPointSource(seed int64, first, end time.Time, comps []company) *pointSource {
	s := &pointSource{seed: seed, first: first, end: end, comps: comps, ci: -1}
	s.nextCompany()
	return s
}

func (s *pointSource) nextCompany() {
	s.ci++
	if s.ci >= len(s.comps) {
		return
	}
	c := s.comps[s.ci]
	s.r = rng(s.seed, c.index, 1)
	s.day = s.first
	s.price = c.price
}

// Next implements pgx.CopyFromSource.
func (s *pointSource) Next() bool {
	for len(s.pending) == 0 {
		if s.ci >= len(s.comps) {
			return false
		}
		if !s.day.Before(s.end) {
			s.nextCompany()
			continue
		}
		s.emitDay()
	}
	s.row, s.pending = s.pending[0], s.pending[1:]
	return true
}

func (s *pointSource) emitDay() {
	c := s.comps[s.ci]
	r := s.r
	d := s.day
	s.price *= math.Exp(c.drift - c.sigmaPx*c.sigmaPx/2 + c.sigmaPx*r.NormFloat64())
	px := math.Round(s.price*100) / 100
	vol := math.Round(c.volume * math.Exp(r.NormFloat64()*0.35))
	s.pending = append(s.pending,
		[]any{c.id, "share_price", d, px},
		[]any{c.id, "trading_volume", d, vol},
	)
	// Quarterly figures are reported on the last day of each quarter.
	if next := d.AddDate(0, 0, 1); next.Day() == 1 && next.Month()%3 == 1 {
		growth := 1 + r.NormFloat64()*0.05
		rev := math.Round(c.revenue * growth)
		s.pending = append(s.pending,
			[]any{c.id, "revenue", d, rev},
			[]any{c.id, "net_income", d, math.Round(rev * (c.margin + r.NormFloat64()*0.03))},
		)
	}
	s.day = s.day.AddDate(0, 0, 1)
}

// Values implements pgx.CopyFromSource.
func (s *pointSource) Values() ([]any, error) { return s.row, nil }

// Err implements pgx.CopyFromSource.
func (s *pointSource) Err() error { return s.err }
