package seed

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/db"
	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func migrated(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := testenv.Postgres(t).Pool(t)
	if err := db.Migrate(context.Background(), pool, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return pool
}

// fingerprint hashes every seeded row in a stable order.
func fingerprint(t *testing.T, pool *pgxpool.Pool) (string, int) {
	t.Helper()
	h := sha256.New()
	n := 0
	for _, q := range []string{
		`SELECT id::text || name || coalesce(ticker,'') || sector || industry || country || website || description || employees || founded_year FROM companies ORDER BY id`,
		`SELECT company_id::text || metric || time::text || value::text FROM financial_metrics ORDER BY company_id, metric, time`,
	} {
		rows, err := pool.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			h.Write([]byte(s))
			n++
		}
		rows.Close()
	}
	return fmt.Sprintf("%x", h.Sum(nil)), n
}

func TestRunDeterministicAndIdempotent(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	end := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{Companies: 12, Years: 1, Seed: 7, End: end, BatchSize: 5}
	a, b := migrated(t), migrated(t)
	st, err := Run(ctx, a, log, opts)
	if err != nil {
		t.Fatal(err)
	}
	days := int64(end.Sub(end.AddDate(-1, 0, 0)).Hours() / 24)
	if st.Companies != 12 || st.Skipped != 0 || st.Points != 12*(days*2+4*2) {
		t.Fatalf("stats %+v (days %d)", st, days)
	}
	opts.BatchSize, opts.Workers = 3, 1 // batching and concurrency must not change the data
	if _, err := Run(ctx, b, log, opts); err != nil {
		t.Fatal(err)
	}
	fa, na := fingerprint(t, a)
	fb, _ := fingerprint(t, b)
	if fa != fb {
		t.Fatal("same seed gave different data")
	}
	again, err := Run(ctx, a, log, opts)
	if err != nil || again.Companies != 0 || again.Skipped != 12 || again.Points != 0 {
		t.Fatalf("re-run: %+v %v", again, err)
	}
	if f, n := fingerprint(t, a); f != fa || n != na {
		t.Fatal("re-run changed the data")
	}
	// More companies later: the first ones stay, the new ones are added.
	more, err := Run(ctx, a, log, Options{Companies: 15, Years: 1, Seed: 7, End: end})
	if err != nil || more.Companies != 3 || more.Skipped != 12 {
		t.Fatalf("grow: %+v %v", more, err)
	}
	// Every point sits in a monthly partition.
	var stray int
	if err := a.QueryRow(ctx, `SELECT count(*) FROM financial_metrics_default`).Scan(&stray); err != nil || stray != 0 {
		t.Fatalf("%d points in the default partition (%v)", stray, err)
	}
	// Plausible values and unique tickers.
	var bad int
	if err := a.QueryRow(ctx, `SELECT count(*) FROM financial_metrics WHERE metric = 'share_price' AND value <= 0`).Scan(&bad); err != nil || bad != 0 {
		t.Fatalf("%d non-positive prices (%v)", bad, err)
	}
	other := migrated(t)
	if _, err := Run(ctx, other, log, Options{Companies: 12, Years: 1, Seed: 8, End: end}); err != nil {
		t.Fatal(err)
	}
	if fo, _ := fingerprint(t, other); fo == fa {
		t.Fatal("different seeds gave the same data")
	}
}

func TestRunOptions(t *testing.T) {
	for _, o := range []Options{{Companies: 0, Years: 1}, {Companies: MaxCompanies + 1}, {Companies: 1, Years: -1}, {Companies: 1, Years: MaxYears + 1}} {
		if _, err := Run(context.Background(), nil, slog.New(slog.DiscardHandler), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestNames(t *testing.T) {
	n := newNamer(1)
	seenT := map[string]bool{}
	seenN := map[string]bool{}
	for i := 0; i < 5000; i++ {
		c := genCompany(1, i, n)
		if seenT[c.ticker] || seenN[c.name] {
			t.Fatalf("duplicate %q / %q", c.name, c.ticker)
		}
		seenT[c.ticker], seenN[c.name] = true, true
		if len(c.ticker) < 2 || len(c.ticker) > 12 || strings.ToUpper(c.ticker) != c.ticker || len(c.country) != 2 {
			t.Fatalf("bad company %+v", c)
		}
	}
	if asciiLetters("東京") != "X" || domainPart("Müller AG") != "mllerag" {
		t.Fatal("ascii helpers")
	}
}

func BenchmarkSeed(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		pool := migrated(b)
		b.StartTimer()
		st, err := Run(ctx, pool, slog.New(slog.DiscardHandler), Options{Companies: 100, Years: 3, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Points)/st.Duration.Seconds(), "points/s")
	}
}
