package health

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/corpintel/corpintel/supervisor/alerts"
	"github.com/corpintel/corpintel/supervisor/reconcile"
)

// The metric names the API replicas export (api/web/middleware.go, api/db/metrics.go);
// the supervisor does not import the workload, cmd/corpintel's tests keep them equal.
const (
	APIRequestsName       = "corpintel_api_http_requests_total"
	APIRequestDuration    = "corpintel_api_http_request_duration_seconds"
	APIQueryDurationName  = "corpintel_api_db_query_duration_seconds"
	processStartTimeName  = "process_start_time_seconds"
	apiMetricsRoute       = "/metrics"
	maxReplicaExposition  = 16 << 20
	defaultAPIWindow      = 5 * time.Minute
	edgeReplicaLabelValue = "edge"
)

var (
	famAPIUp          = gauge("corpintel_api_up", "1 when the last health check of the API through the edge (GET /health) answered 200.")
	famAPIHealthFails = gauge(alerts.MetricAPIHealthFailures, "Consecutive failed health checks of the API through the edge (0 after a success).")
	famAPIReplicaUp   = gauge("corpintel_api_replica_scrape_up", "1 when the replica's /metrics answered the supervisor's last scrape.", "replica")
	famAPIRequests    = counter(alerts.MetricAPIRequests, "Requests answered, per replica and status class; replica \"edge\" counts what the edge answered itself because no replica did. A replica's count continues across replacements of its container while this supervisor runs.", "replica", "code_class")
	famAPIRate        = gauge("corpintel_api_request_rate_per_second", "Requests per second over the last 5 minutes, all replicas and the edge.")
	famAPIErrorRatio  = gauge("corpintel_api_error_ratio", "Share of requests answered with 5xx over the last 5 minutes (including those the edge answered because no replica did).")
	famAPILatencyP50  = gauge("corpintel_api_request_duration_p50_seconds", "Median API request duration over the last 5 minutes, all replicas.")
	famAPILatencyP95  = gauge("corpintel_api_request_duration_p95_seconds", "95th percentile of API request durations over the last 5 minutes, all replicas.")
	famAPILatencyP99  = gauge("corpintel_api_request_duration_p99_seconds", "99th percentile of API request durations over the last 5 minutes, all replicas.")
	famDBQueryP95     = gauge(alerts.MetricDBQueryP95, "95th percentile of the API's database query durations over the last 5 minutes, all replicas (Database Slow).")
	famAPIWindowSpan  = gauge("corpintel_api_window_seconds", "Seconds the 5-minute API aggregates actually cover (less right after the supervisor started).")
	// apiCodeClasses are the classes counted; every replica has all of them from its
	// first scrape, so its first errors count from a zero baseline (1xx are interim
	// answers, not requests answered).
	apiCodeClasses     = []string{"2xx", "3xx", "4xx", "5xx"}
	errNoHealthURL     = errors.New("api: no health URL")
	apiScrapeTransport = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}
)

// APIOptions configure the API collector.
type APIOptions struct {
	// Snapshot gives the replicas (their addresses on the stack network).
	Snapshot func() reconcile.Snapshot
	// Port is the replicas' port (8080).
	Port int
	// HealthURL is GET /health through the supervisor's own edge: what a client sees.
	HealthURL string
	// ProbeHeader is set on the health checks so the edge does not count them as
	// client requests (edge.ProbeHeader).
	ProbeHeader string
	// Desired says whether the API should run; while it should not (stopped, scaled
	// to 0) failed checks do not count.
	Desired Desired
	// StartGrace: after the API is (re)started (the supervisor starts, or the API is
	// wanted again), failed checks count only once it answered or this long passed —
	// a cold start with migrations is not an outage (default 0: always count).
	StartGrace time.Duration
	// EdgeAnswered counts the requests the edge answered itself, by status class.
	EdgeAnswered func() map[string]float64
	// Window is the span of the aggregates (default 5m).
	Window time.Duration
	Now    func() time.Time
}

// API checks the API's health through the edge, scrapes every replica's /metrics and
// keeps the aggregates: request rate, 5xx share, latency quantiles and the database
// query p95 over the window. Counters of a replica whose container was replaced (or
// whose process restarted) continue from where the old one stopped, so rates never go
// negative or spike; two containers of one replica side by side (a rollout) both
// count; the sums over all replicas keep what replicas that went away counted.
type API struct {
	o      APIOptions
	client *http.Client

	grace    startGrace
	mu       sync.Mutex
	failures int
	slots    map[string]*apiSlot
	ring     []apiPoint
}

// apiSlot is one replica number's counters: every container that served as that
// replica (two side by side during a rollout) counts, and what a container counted
// stays when it goes (base), so the sums never go down.
type apiSlot struct {
	base  map[string]float64
	conts map[string]*apiContainer
}

// apiContainer is one container's counters; a process restart inside it (a new start
// time, or a counter going down) moves what it counted so far into the offset.
type apiContainer struct {
	start        float64
	last, offset map[string]float64
}

// apiPoint is one cycle's sums over every replica (and the edge).
type apiPoint struct {
	t             time.Time
	total, errors float64
	latency, db   map[float64]float64 // cumulative bucket counts by upper bound
}

// NewAPI returns the API collector.
func NewAPI(o APIOptions) *API {
	if o.Window <= 0 {
		o.Window = defaultAPIWindow
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.EdgeAnswered == nil {
		o.EdgeAnswered = func() map[string]float64 { return nil }
	}
	return &API{o: o, grace: startGrace{grace: o.StartGrace, now: o.Now}, client: &http.Client{Transport: apiScrapeTransport}, slots: map[string]*apiSlot{}}
}

// Name implements Source.
func (a *API) Name() string { return "api" }

// Collect implements Source.
func (a *API) Collect(ctx context.Context, b *Batch) error {
	var wg sync.WaitGroup
	var healthErr error
	wg.Go(func() { healthErr = a.checkHealth(ctx, b) })

	type scrape struct {
		replica, id string
		start       float64
		raw         map[string]float64
		err         error
	}
	var scrapes []*scrape
	for _, c := range a.o.Snapshot().Observed.ServiceContainers("api") {
		if c.State != reconcile.StateRunning || c.IP == "" {
			continue
		}
		s := &scrape{replica: strconv.Itoa(c.Replica), id: c.ID}
		scrapes = append(scrapes, s)
		wg.Go(func() { s.raw, s.start, s.err = a.scrape(ctx, c.IP) })
	}
	wg.Wait()
	slices.SortFunc(scrapes, func(x, y *scrape) int { return compareReplica(x.replica, y.replica) })

	a.mu.Lock()
	defer a.mu.Unlock()
	errs := []error{healthErr}
	up := map[string]bool{}
	present := map[string]map[string]bool{} // replica → its running containers
	for _, s := range scrapes {
		if present[s.replica] == nil {
			present[s.replica] = map[string]bool{}
		}
		present[s.replica][s.id] = true
		if s.err != nil {
			errs = append(errs, fmt.Errorf("api: replica %s: %w", s.replica, s.err))
			continue
		}
		up[s.replica] = true
		a.slot(s.replica).update(s.id, s.start, s.raw)
	}
	for replica, sl := range a.slots {
		sl.retire(present[replica])
	}
	for _, replica := range slices.SortedFunc(maps.Keys(present), compareReplica) {
		b.add(famAPIReplicaUp, bool01(up[replica]), replica)
		sl := a.slots[replica]
		for _, class := range apiCodeClasses {
			v := 0.0
			if sl != nil {
				v = sl.total("req/" + class)
			}
			b.add(famAPIRequests, v, replica, class)
		}
	}
	edge := a.o.EdgeAnswered()
	for _, class := range apiCodeClasses {
		b.add(famAPIRequests, edge[class], edgeReplicaLabelValue, class)
	}
	a.aggregate(b, edge)
	return errors.Join(errs...)
}

func compareReplica(x, y string) int {
	// numbers: "2" before "10"
	a, _ := strconv.Atoi(x)
	b, _ := strconv.Atoi(y)
	return a - b
}

func (a *API) checkHealth(ctx context.Context, b *Batch) error {
	wanted := a.o.Desired.wanted("api")
	a.grace.observe(wanted)
	if !wanted {
		a.mu.Lock()
		a.failures = 0
		a.mu.Unlock()
		b.add(famAPIHealthFails, 0)
		return nil
	}
	err := errNoHealthURL
	if a.o.HealthURL != "" {
		err = a.get(ctx, a.o.HealthURL, nil)
	}
	counts := a.grace.counts(err == nil)
	a.mu.Lock()
	switch {
	case err == nil:
		a.failures = 0
	case counts:
		a.failures++
	}
	n := a.failures
	a.mu.Unlock()
	b.add(famAPIUp, bool01(err == nil))
	b.add(famAPIHealthFails, float64(n))
	if err != nil {
		return fmt.Errorf("api: health check: %w", err)
	}
	return nil
}

func (a *API) get(ctx context.Context, url string, body func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "corpintel-supervisor")
	if a.o.ProbeHeader != "" && url == a.o.HealthURL {
		req.Header.Set(a.o.ProbeHeader, "1")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	if body == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil
	}
	return body(io.LimitReader(resp.Body, maxReplicaExposition))
}

// scrape reads one replica's exposition into flat series: "req/<class>" (requests by
// status class), "lat/<le>" and "db/<le>" (cumulative bucket counts); the supervisor's
// own scrapes (route /metrics) are left out.
func (a *API) scrape(ctx context.Context, ip string) (map[string]float64, float64, error) {
	var fams map[string]*dto.MetricFamily
	url := "http://" + net.JoinHostPort(ip, strconv.Itoa(a.o.Port)) + apiMetricsRoute
	err := a.get(ctx, url, func(r io.Reader) error {
		wanted, err := keepFamilies(r, APIRequestsName, APIRequestDuration, APIQueryDurationName, processStartTimeName)
		if err != nil {
			return err
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err = p.TextToMetricFamilies(bytes.NewReader(wanted))
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	raw := map[string]float64{}
	if f := fams[APIRequestsName]; f != nil {
		for _, m := range f.Metric {
			if label(m, "route") == apiMetricsRoute || m.Counter == nil {
				continue
			}
			code, _ := strconv.Atoi(label(m, "code"))
			if code >= 200 || code < 100 {
				raw["req/"+codeClass(code)] += m.Counter.GetValue()
			}
		}
	}
	addBuckets(raw, "lat/", fams[APIRequestDuration], func(m *dto.Metric) bool { return label(m, "route") != apiMetricsRoute })
	addBuckets(raw, "db/", fams[APIQueryDurationName], func(*dto.Metric) bool { return true })
	start, _ := firstGauge(fams[processStartTimeName])
	return raw, start, nil
}

// keepFamilies copies only the lines of the named families (samples, HELP and TYPE)
// out of an exposition: the replicas' Go runtime and pool metrics are most of it, and
// parsing them every cycle would be garbage for nothing.
func keepFamilies(r io.Reader, names ...string) ([]byte, error) {
	var out bytes.Buffer
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		name := line
		if rest, ok := bytes.CutPrefix(line, []byte("# HELP ")); ok {
			name = rest
		} else if rest, ok := bytes.CutPrefix(line, []byte("# TYPE ")); ok {
			name = rest
		}
		for _, n := range names {
			if bytes.HasPrefix(name, []byte(n)) && len(name) > len(n) && strings.ContainsRune(" {_", rune(name[len(n)])) {
				out.Write(line)
				out.WriteByte('\n')
				break
			}
		}
	}
	return out.Bytes(), sc.Err()
}

func codeClass(code int) string {
	if code < 100 || code > 599 {
		return "5xx"
	}
	return strconv.Itoa(code/100) + "xx"
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func addBuckets(raw map[string]float64, prefix string, f *dto.MetricFamily, keep func(*dto.Metric) bool) {
	if f == nil {
		return
	}
	for _, m := range f.Metric {
		h := m.GetHistogram()
		if h == nil || !keep(m) {
			continue
		}
		hasInf := false
		for _, bk := range h.Bucket {
			hasInf = hasInf || math.IsInf(bk.GetUpperBound(), 1)
			raw[prefix+strconv.FormatFloat(bk.GetUpperBound(), 'g', -1, 64)] += float64(bk.GetCumulativeCount())
		}
		if !hasInf {
			raw[prefix+"+Inf"] += float64(h.GetSampleCount())
		}
	}
}

func (a *API) slot(replica string) *apiSlot {
	s := a.slots[replica]
	if s == nil {
		s = &apiSlot{base: map[string]float64{}, conts: map[string]*apiContainer{}}
		a.slots[replica] = s
	}
	return s
}

// update folds in a reading of one of the replica's containers.
func (s *apiSlot) update(id string, start float64, raw map[string]float64) {
	c := s.conts[id]
	if c == nil {
		c = &apiContainer{start: start, last: map[string]float64{}, offset: map[string]float64{}}
		s.conts[id] = c
	}
	if start != c.start { // the process restarted inside the container
		for k, v := range c.last {
			c.offset[k] += v
		}
		clear(c.last)
		c.start = start
	}
	for k, v := range raw {
		if prev, ok := c.last[k]; ok && v < prev {
			c.offset[k] += prev
		}
		c.last[k] = v
	}
}

// retire moves what containers that no longer run counted into the base.
func (s *apiSlot) retire(running map[string]bool) {
	for id, c := range s.conts {
		if running[id] {
			continue
		}
		for k := range keysOf(c) {
			s.base[k] += c.last[k] + c.offset[k]
		}
		delete(s.conts, id)
	}
}

func keysOf(c *apiContainer) map[string]bool {
	keys := make(map[string]bool, len(c.last))
	for k := range c.last {
		keys[k] = true
	}
	for k := range c.offset {
		keys[k] = true
	}
	return keys
}

// keys lists every series the replica has counted.
func (s *apiSlot) keys() map[string]bool {
	keys := map[string]bool{}
	for k := range s.base {
		keys[k] = true
	}
	for _, c := range s.conts {
		for k := range keysOf(c) {
			keys[k] = true
		}
	}
	return keys
}

func (s *apiSlot) total(k string) float64 {
	v := s.base[k]
	for _, c := range s.conts {
		v += c.last[k] + c.offset[k]
	}
	return v
}

// aggregate adds this cycle's sums to the window and exposes the window's aggregates.
func (a *API) aggregate(b *Batch, edge map[string]float64) {
	now := a.o.Now()
	p := apiPoint{t: now, latency: map[float64]float64{}, db: map[float64]float64{}}
	for _, class := range apiCodeClasses {
		p.total += edge[class]
	}
	p.errors = edge["5xx"]
	for _, s := range a.slots {
		for k := range s.keys() {
			v := s.total(k)
			switch {
			case len(k) > 4 && k[:4] == "req/":
				p.total += v
				if k == "req/5xx" {
					p.errors += v
				}
			case len(k) > 4 && k[:4] == "lat/":
				p.latency[bound(k[4:])] += v
			case len(k) > 3 && k[:3] == "db/":
				p.db[bound(k[3:])] += v
			}
		}
	}
	a.ring = append(a.ring, p)
	// Keep the window plus the newest point at or before its start (the baseline).
	from := now.Add(-a.o.Window)
	cut := 0
	for i, q := range a.ring {
		if !q.t.After(from) {
			cut = i
		}
	}
	a.ring = a.ring[cut:]
	if len(a.ring) < 2 {
		return
	}
	base := a.ring[0]
	span := now.Sub(base.t).Seconds()
	if span <= 0 {
		return
	}
	b.add(famAPIWindowSpan, span)
	total := p.total - base.total
	b.add(famAPIRate, max(total, 0)/span)
	if total > 0 {
		b.add(famAPIErrorRatio, max(p.errors-base.errors, 0)/total)
	}
	lat := deltaBuckets(p.latency, base.latency)
	for _, q := range []struct {
		f *Family
		q float64
	}{{famAPILatencyP50, 0.5}, {famAPILatencyP95, 0.95}, {famAPILatencyP99, 0.99}} {
		if v, ok := histogramQuantile(q.q, lat); ok {
			b.add(q.f, v)
		}
	}
	if v, ok := histogramQuantile(0.95, deltaBuckets(p.db, base.db)); ok {
		b.add(famDBQueryP95, v)
	}
}

func bound(s string) float64 {
	if s == "+Inf" {
		return math.Inf(1)
	}
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

func deltaBuckets(cur, base map[float64]float64) map[float64]float64 {
	out := make(map[float64]float64, len(cur))
	for le, v := range cur {
		out[le] = max(v-base[le], 0)
	}
	return out
}

// histogramQuantile is Prometheus's histogram_quantile over cumulative buckets: linear
// interpolation inside the bucket the rank falls in; the highest finite bound when it
// falls in +Inf. ok is false without observations.
func histogramQuantile(q float64, buckets map[float64]float64) (float64, bool) {
	bounds := slices.Sorted(maps.Keys(buckets))
	if len(bounds) == 0 {
		return 0, false
	}
	// Cumulative counts must not decrease (sums over replicas with different bucket
	// layouts could); Prometheus enforces the same.
	counts := make([]float64, len(bounds))
	for i, le := range bounds {
		counts[i] = buckets[le]
		if i > 0 && counts[i] < counts[i-1] {
			counts[i] = counts[i-1]
		}
	}
	total := counts[len(counts)-1]
	if total <= 0 {
		return 0, false
	}
	rank := q * total
	i, _ := slices.BinarySearchFunc(counts, rank, func(c, r float64) int {
		switch {
		case c < r:
			return -1
		case c > r:
			return 1
		}
		return 0
	})
	i = min(i, len(counts)-1)
	if math.IsInf(bounds[i], 1) {
		if len(bounds) < 2 {
			return 0, false
		}
		return bounds[len(bounds)-2], true
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = bounds[i-1], counts[i-1]
	}
	inBucket := counts[i] - below
	if inBucket <= 0 {
		return bounds[i], true
	}
	return lower + (bounds[i]-lower)*(rank-below)/inBucket, true
}
