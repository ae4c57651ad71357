package timeseries

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/corpintel/corpintel/api/web"
)

// Limits of the time series API.
const (
	// MaxPoints is the largest ingest batch.
	MaxPoints = 10_000
	// MaxIngestBody bounds the ingest body: 10 000 points of ~70 bytes, with room for
	// long metric names and whitespace.
	MaxIngestBody int64 = 2 << 20
	// MaxBuckets bounds the rows one aggregation query returns per metric.
	MaxBuckets = 10_000
	// MinBucket and MaxBucket bound the bucket width.
	MinBucket = time.Minute
	MaxBucket = 366 * 24 * time.Hour
	// DefaultRange is the span queried when from is not given.
	DefaultRange = 365 * 24 * time.Hour
)

// Origin aligns buckets (a Monday, so 7d buckets are ISO weeks); both storage paths
// pass it explicitly so time_bucket and date_bin agree.
var Origin = time.Date(2000, 1, 3, 0, 0, 0, 0, time.UTC)

// Earliest and latest accepted point times: partitions are created per month touched,
// so the range is bounded.
var Earliest = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// MaxFuture is how far past now a point may lie.
const MaxFuture = 2 * 365 * 24 * time.Hour

var metricRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// ValidMetric reports whether name is a metric name: lower-case snake case, at most 63
// characters.
func ValidMetric(name string) bool { return metricRe.MatchString(name) }

// Agg is an aggregation function.
type Agg string

// Aggregations.
const (
	Avg  Agg = "avg"
	Min  Agg = "min"
	Max  Agg = "max"
	Sum  Agg = "sum"
	Last Agg = "last"
)

// ParseAgg parses avg|min|max|sum|last (default avg).
func ParseAgg(s string) (Agg, error) {
	switch a := Agg(strings.ToLower(s)); a {
	case "":
		return Avg, nil
	case Avg, Min, Max, Sum, Last:
		return a, nil
	}
	return "", web.Validation(web.FieldError{Field: "agg", Message: "one of avg, min, max, sum, last"})
}

var daysRe = regexp.MustCompile(`^([0-9]{1,4})([dw])$`)

// ParseBucket parses a bucket width: Go durations ("15m", "1h", "1h30m") or whole days
// and weeks ("1d", "7d", "30d", "2w"); between 1 minute and 366 days, in whole seconds.
func ParseBucket(s string) (time.Duration, error) {
	bad := web.Validation(web.FieldError{Field: "bucket", Message: "a width like 1h, 1d, 7d or 30d, between 1m and 366d"})
	if s == "" {
		return 24 * time.Hour, nil
	}
	if len(s) > 32 {
		return 0, bad
	}
	var d time.Duration
	if m := daysRe.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		d = time.Duration(n) * 24 * time.Hour
		if m[2] == "w" {
			d *= 7
		}
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, bad
		}
	}
	if d < MinBucket || d > MaxBucket || d%time.Second != 0 {
		return 0, bad
	}
	return d, nil
}

// FormatBucket is the canonical text of a bucket width ("1d", "7d", "1h", "90s").
func FormatBucket(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.String() // "1h30m0s", "1m30s", "2h0m0s"
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ParseTime accepts RFC 3339 or a plain date (midnight UTC).
func ParseTime(field, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, web.Validation(web.FieldError{Field: field, Message: "an RFC 3339 time (2024-01-31T00:00:00Z) or a date (2024-01-31)"})
}

// Query is a validated aggregation query.
type Query struct {
	Metric string // "" means every metric
	From   time.Time
	To     time.Time
	Bucket time.Duration
	Agg    Agg
}

// floorBucket returns the start of the bucket holding t.
func floorBucket(t time.Time, b time.Duration) time.Time {
	n := t.Sub(Origin) / b
	if t.Before(Origin) && t.Sub(Origin)%b != 0 {
		n--
	}
	return Origin.Add(n * b)
}

// ParseQuery validates the query string of GET /companies/{id}/metrics. Without to, the
// range ends at the end of the bucket holding now; without from, it starts a year
// earlier (bucket-aligned). Both defaults are stable within a bucket, so repeated
// dashboard reads hit the cache.
func ParseQuery(q url.Values, now time.Time) (Query, error) {
	var errs []web.FieldError
	for k, v := range q {
		switch k {
		case "metric", "from", "to", "bucket", "agg":
			if len(v) > 1 {
				errs = append(errs, web.FieldError{Field: k, Message: "give it at most once"})
			}
		default:
			errs = append(errs, web.FieldError{Field: k, Message: "unknown query parameter"})
		}
	}
	if len(errs) > 0 {
		return Query{}, web.Validation(errs...)
	}
	var out Query
	var err error
	if out.Metric = q.Get("metric"); out.Metric != "" && !ValidMetric(out.Metric) {
		return Query{}, web.Validation(web.FieldError{Field: "metric", Message: "lower-case letters, digits and _, starting with a letter"})
	}
	if out.Bucket, err = ParseBucket(q.Get("bucket")); err != nil {
		return Query{}, err
	}
	if out.Agg, err = ParseAgg(q.Get("agg")); err != nil {
		return Query{}, err
	}
	if v := q.Get("to"); v != "" {
		if out.To, err = ParseTime("to", v); err != nil {
			return Query{}, err
		}
	} else {
		out.To = floorBucket(now.UTC(), out.Bucket).Add(out.Bucket)
	}
	if v := q.Get("from"); v != "" {
		if out.From, err = ParseTime("from", v); err != nil {
			return Query{}, err
		}
	} else {
		out.From = floorBucket(out.To.Add(-DefaultRange), out.Bucket)
	}
	if !out.From.Before(out.To) {
		return Query{}, web.Validation(web.FieldError{Field: "from", Message: "must be before to"})
	}
	if out.From.Year() < 1900 || out.To.Year() > 2200 {
		return Query{}, web.Validation(web.FieldError{Field: "from", Message: "from and to must lie between 1900 and 2200"})
	}
	if span := out.To.Sub(out.From); span/out.Bucket > MaxBuckets {
		p := web.NewProblem(http.StatusUnprocessableEntity, "the range holds too many buckets; use a wider bucket or a shorter range")
		p.Errors = []web.FieldError{{Field: "bucket", Message: "at most " + strconv.Itoa(MaxBuckets) + " buckets per query"}}
		return Query{}, p
	}
	return out, nil
}

// Point is one ingested value.
type Point struct {
	Metric string    `json:"metric"`
	Time   time.Time `json:"time"`
	Value  *float64  `json:"value"`
}

// IngestRequest is the body of POST /companies/{id}/metrics.
type IngestRequest struct {
	Points []Point `json:"points"`
}

// Check validates a decoded batch against now. Oversized batches are 413; bad points are
// 422 naming at most the first ten offenders.
func (r *IngestRequest) Check(now time.Time) error {
	if len(r.Points) == 0 {
		return web.Validation(web.FieldError{Field: "points", Message: "at least one point"})
	}
	if len(r.Points) > MaxPoints {
		return web.Problemf(http.StatusRequestEntityTooLarge, "%d points in one request; send at most %d per request", len(r.Points), MaxPoints)
	}
	latest := now.Add(MaxFuture)
	var errs []web.FieldError
	for i, p := range r.Points {
		if len(errs) == 10 {
			break
		}
		f := "points[" + strconv.Itoa(i) + "]"
		switch {
		case !ValidMetric(p.Metric):
			errs = append(errs, web.FieldError{Field: f + ".metric", Message: "lower-case letters, digits and _, starting with a letter, at most 63"})
		case p.Value == nil:
			errs = append(errs, web.FieldError{Field: f + ".value", Message: "required (a number)"})
		case p.Time.IsZero():
			errs = append(errs, web.FieldError{Field: f + ".time", Message: "required (RFC 3339)"})
		case p.Time.Before(Earliest) || p.Time.After(latest):
			errs = append(errs, web.FieldError{Field: f + ".time", Message: "between 1970-01-01 and two years from now"})
		}
	}
	if len(errs) > 0 {
		return web.Validation(errs...)
	}
	return nil
}

// DecodeIngest decodes and validates an ingest body (strict JSON).
func DecodeIngest(r *http.Request, now time.Time) (*IngestRequest, error) {
	var req IngestRequest
	if err := web.Decode(r, &req); err != nil {
		return nil, err
	}
	if err := req.Check(now); err != nil {
		return nil, err
	}
	return &req, nil
}
