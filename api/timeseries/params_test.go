package timeseries

import (
	"bytes"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

func TestParseBucket(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		text string
	}{
		{"", 24 * time.Hour, "1d"}, {"1d", 24 * time.Hour, "1d"}, {"7d", 7 * 24 * time.Hour, "7d"}, {"2w", 14 * 24 * time.Hour, "14d"},
		{"30d", 30 * 24 * time.Hour, "30d"}, {"1h", time.Hour, "1h"}, {"15m", 15 * time.Minute, "15m"}, {"90m", 90 * time.Minute, "1h30m"},
		{"366d", 366 * 24 * time.Hour, "366d"}, {"1m", time.Minute, "1m"}, {"90s", 90 * time.Second, "1m30s"},
	} {
		got, err := ParseBucket(c.in)
		if err != nil || got != c.want || FormatBucket(got) != c.text {
			t.Errorf("ParseBucket(%q) = %v %q %v", c.in, got, FormatBucket(got), err)
		}
	}
	for _, bad := range []string{"0d", "367d", "59s", "1.5s", "-1h", "1y", "1mo", "d", "10000d", "1h1ns", "abc", "9999999999999h"} {
		if _, err := ParseBucket(bad); err == nil {
			t.Errorf("ParseBucket(%q) accepted", bad)
		}
	}
}

func TestParseQuery(t *testing.T) {
	now := time.Date(2026, 5, 17, 13, 45, 0, 0, time.UTC)
	q, err := ParseQuery(url.Values{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if q.Agg != Avg || q.Bucket != 24*time.Hour || !q.To.Equal(time.Date(2026, 5, 18, 0, 0, 0, 0, time.UTC)) ||
		!q.From.Equal(q.To.Add(-DefaultRange)) {
		t.Fatalf("defaults %+v", q)
	}
	// Defaults are stable within a bucket (cache keys do not change every second).
	q2, _ := ParseQuery(url.Values{}, now.Add(5*time.Hour))
	if q2.cacheKey() != q.cacheKey() {
		t.Fatal("default range moves within a bucket")
	}
	q, err = ParseQuery(url.Values{"bucket": {"7d"}, "from": {"2026-01-01"}, "to": {"2026-03-01T12:00:00+01:00"}, "agg": {"LAST"}, "metric": {"revenue"}}, now)
	if err != nil || q.Agg != Last || q.Metric != "revenue" || !q.To.Equal(time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)) || q.To.Location() != time.UTC {
		t.Fatalf("%+v %v", q, err)
	}
	for _, bad := range []url.Values{
		{"from": {"yesterday"}}, {"to": {"2026-13-01"}}, {"metric": {"A"}}, {"agg": {"p99"}}, {"bucket": {"1y"}},
		{"from": {"2026-01-01"}, "to": {"2026-01-01"}}, {"x": {"1"}}, {"agg": {"avg", "sum"}},
		{"bucket": {"1m"}, "from": {"2000-01-01"}, "to": {"2026-01-01"}},
		{"from": {"0001-01-01"}, "to": {"9999-12-31"}, "bucket": {"366d"}},
	} {
		if _, err := ParseQuery(bad, now); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}

func TestFloorBucket(t *testing.T) {
	week := 7 * 24 * time.Hour
	for _, c := range []struct{ in, want time.Time }{
		{time.Date(2026, 5, 17, 13, 0, 0, 0, time.UTC), time.Date(2026, 5, 11, 0, 0, 0, 0, time.UTC)},  // Monday
		{time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(1999, 12, 27, 0, 0, 0, 0, time.UTC)}, // before the origin
		{Origin, Origin},
	} {
		if got := floorBucket(c.in, week); !got.Equal(c.want) {
			t.Errorf("floorBucket(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if m := months([]Point{pt("a", time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC), 1), pt("a", time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), 1), pt("b", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 1)}); len(m) != 2 || m[0].Month() != 1 {
		t.Fatalf("months %v", m)
	}
}

func FuzzParseBucket(f *testing.F) {
	for _, s := range []string{"1d", "7d", "1h30m", "0d", "-1h", "1e9h", "9999w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseBucket(s)
		if err != nil {
			return
		}
		if d < MinBucket || d > MaxBucket || d%time.Second != 0 {
			t.Fatalf("ParseBucket(%q) = %v", s, d)
		}
		if again, err := ParseBucket(FormatBucket(d)); err != nil || again != d {
			t.Fatalf("FormatBucket(%v) = %q does not parse back (%v, %v)", d, FormatBucket(d), again, err)
		}
	})
}

func FuzzParseQuery(f *testing.F) {
	f.Add("metric=revenue&from=2026-01-01&to=2026-02-01&bucket=1d&agg=sum")
	f.Add("bucket=1m&from=1970-01-01")
	f.Add("agg=LAST&to=2026-01-01T00:00:00%2B14:00")
	now := time.Date(2026, 5, 17, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v, now)
		if err != nil {
			return
		}
		if !q.From.Before(q.To) || q.To.Sub(q.From)/q.Bucket > MaxBuckets {
			t.Fatalf("accepted %+v", q)
		}
	})
}

func FuzzDecodeIngest(f *testing.F) {
	f.Add([]byte(`{"points":[{"metric":"revenue","time":"2026-01-01T00:00:00Z","value":1.5}]}`))
	f.Add([]byte(`{"points":[{"metric":"r","time":"2026-01-01T00:00:00Z","value":1e308}]}`))
	f.Add([]byte(`{"points":null}`))
	f.Add([]byte(`{"points":[{"metric":"r","time":"2026-01-01T00:00:00Z","value":null}]}`))
	now := time.Date(2026, 5, 17, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		req, err := DecodeIngest(r, now)
		if err != nil {
			return
		}
		if len(req.Points) == 0 || len(req.Points) > MaxPoints {
			t.Fatalf("accepted %d points", len(req.Points))
		}
		for _, p := range req.Points {
			if !ValidMetric(p.Metric) || p.Value == nil || p.Time.Before(Earliest) || p.Time.After(now.Add(MaxFuture)) {
				t.Fatalf("accepted %+v", p)
			}
		}
	})
}
