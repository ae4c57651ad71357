// Command apibench is bench/api.sh's load driver for what wrk cannot do:
//
//	apibench rate   -base URL -token T -paths FILE -rate 1000 -duration 15s
//	    open loop: issues GETs of random paths from FILE at a fixed rate, whatever the
//	    latency (latency is measured from the scheduled start, so a stall is not hidden
//	    by coordinated omission);
//	apibench each   -base URL -token T -paths FILE -conc 8
//	    GETs every path of FILE once (a cache prefill);
//	apibench ingest -base URL -token T -ids FILE -conc 4 -duration 15s -points 10000
//	    closed loop: POST /api/v1/companies/{id}/metrics with batches of new points;
//	apibench upload -base URL -token T -ids FILE -conc 4 -duration 10s -size 1048576
//	    closed loop: multipart POST /api/v1/companies/{id}/documents (field file).
//
// Each prints one JSON object: requests, errors (with the first few causes), the
// achieved rate, and latency p50/p90/p99/max in milliseconds (exact, from every sample).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Mode       string   `json:"mode"`
	Target     string   `json:"target"`
	Duration   float64  `json:"duration_s"`
	Requests   int64    `json:"requests"`
	Errors     int64    `json:"errors"`
	ErrorCases []string `json:"error_samples,omitempty"`
	RPS        float64  `json:"rps"`
	TargetRate float64  `json:"target_rps,omitempty"`
	Conc       int      `json:"concurrency,omitempty"`
	Points     int64    `json:"points,omitempty"`
	PointsPS   float64  `json:"points_per_s,omitempty"`
	Bytes      int64    `json:"bytes,omitempty"`
	MBPS       float64  `json:"mb_per_s,omitempty"`
	P50        float64  `json:"p50_ms"`
	P90        float64  `json:"p90_ms"`
	P99        float64  `json:"p99_ms"`
	Max        float64  `json:"max_ms"`
}

// timeout bounds one request, including its wait for a connection (-timeout).
var timeout = 30 * time.Second

type recorder struct {
	mu      sync.Mutex
	lat     []time.Duration
	errs    int64
	samples []string
}

func (r *recorder) ok(d time.Duration) {
	r.mu.Lock()
	r.lat = append(r.lat, d)
	r.mu.Unlock()
}

func (r *recorder) fail(d time.Duration, why string) {
	r.mu.Lock()
	r.lat = append(r.lat, d)
	r.errs++
	if len(r.samples) < 5 {
		r.samples = append(r.samples, why)
	}
	r.mu.Unlock()
}

func (r *recorder) fill(res *result, elapsed time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	slices.Sort(r.lat)
	pct := func(p float64) float64 {
		if len(r.lat) == 0 {
			return 0
		}
		i := int(p * float64(len(r.lat)-1))
		return float64(r.lat[i].Microseconds()) / 1000
	}
	res.Duration = elapsed.Seconds()
	res.Requests = int64(len(r.lat))
	res.Errors = r.errs
	res.ErrorCases = r.samples
	res.RPS = float64(len(r.lat)) / elapsed.Seconds()
	res.P50, res.P90, res.P99, res.Max = pct(0.50), pct(0.90), pct(0.99), pct(1)
}

func client(conns int) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns, // beyond that, requests queue here (and the wait counts)
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// do sends req and drains the answer; non-2xx is an error.
func do(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty", path)
	}
	return out, nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: apibench rate|ingest|upload [flags]")
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	base := fs.String("base", "http://127.0.0.1:8000", "API base URL")
	token := fs.String("token", os.Getenv("TOKEN"), "bearer token (default $TOKEN)")
	paths := fs.String("paths", "", "rate: file of request paths, one a line")
	ids := fs.String("ids", "", "ingest/upload: file of company ids, one a line")
	rate := fs.Float64("rate", 1000, "rate: requests per second")
	conc := fs.Int("conc", 4, "concurrent requests (rate: connections at most; give 64)")
	dur := fs.Duration("duration", 15*time.Second, "how long to load")
	warm := fs.Duration("warmup", 0, "rate: load this long first without recording")
	points := fs.Int("points", 10_000, "ingest: points per request")
	size := fs.Int("size", 1<<20, "upload: document size in bytes")
	runID := fs.Int64("run", time.Now().Unix(), "ingest: distinguishes runs (seconds offset of the points)")
	fs.DurationVar(&timeout, "timeout", timeout, "give up on a request after this long (counted as an error)")
	_ = fs.Parse(os.Args[2:])
	*base = strings.TrimRight(*base, "/")

	var res result
	var err error
	switch mode {
	case "rate":
		res, err = runRate(*base, *token, *paths, *rate, *dur, *warm, *conc)
		res.Conc = *conc
	case "each":
		res, err = runEach(*base, *token, *paths, *conc)
	case "ingest":
		res, err = runIngest(*base, *token, *ids, *conc, *dur, *points, *runID)
	case "upload":
		res, err = runUpload(*base, *token, *ids, *conc, *dur, *size)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apibench:", err)
		os.Exit(1)
	}
	res.Mode, res.Target = mode, *base
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

// runRate is an open-loop constant-rate GET load.
func runRate(base, token, pathFile string, rate float64, dur, warm time.Duration, conns int) (result, error) {
	paths, err := readLines(pathFile)
	if err != nil {
		return result{}, err
	}
	if rate <= 0 {
		return result{}, errors.New("rate must be positive")
	}
	c := client(conns)
	var rec recorder
	interval := time.Duration(float64(time.Second) / rate)
	var inflight sync.WaitGroup
	var measuring atomic.Bool
	phase := func(length time.Duration, record bool) time.Duration {
		measuring.Store(record)
		start := time.Now()
		for i := 0; ; i++ {
			at := start.Add(time.Duration(i) * interval)
			if at.Sub(start) >= length {
				break
			}
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			}
			p := paths[mrand.IntN(len(paths))]
			inflight.Add(1)
			go func(at time.Time, rec0 bool) {
				defer inflight.Done()
				req := authorized(http.MethodGet, base+p, nil, token)
				err := do(c, req)
				if !rec0 {
					return
				}
				if d := time.Since(at); err != nil {
					rec.fail(d, err.Error())
				} else {
					rec.ok(d)
				}
			}(at, record)
		}
		inflight.Wait()
		return time.Since(start)
	}
	if warm > 0 {
		phase(warm, false)
	}
	elapsed := phase(dur, true)
	var res result
	rec.fill(&res, elapsed)
	res.TargetRate = rate
	return res, nil
}

// runEach GETs every path once with conc workers.
func runEach(base, token, pathFile string, conc int) (result, error) {
	paths, err := readLines(pathFile)
	if err != nil {
		return result{}, err
	}
	c := client(conc)
	var rec recorder
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(paths) {
					return
				}
				t0 := time.Now()
				req := authorized(http.MethodGet, base+paths[i], nil, token)
				if err := do(c, req); err != nil {
					rec.fail(time.Since(t0), err.Error())
				} else {
					rec.ok(time.Since(t0))
				}
			}
		}()
	}
	wg.Wait()
	var res result
	rec.fill(&res, time.Since(start))
	res.Conc = conc
	return res, nil
}

// closedLoop runs conc workers calling one() until dur has passed.
func closedLoop(conc int, dur time.Duration, one func(worker, seq int) error) (*recorder, time.Duration) {
	var rec recorder
	start := time.Now()
	deadline := start.Add(dur)
	var seq atomic.Int64
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				n := int(seq.Add(1) - 1)
				t0 := time.Now()
				if err := one(w, n); err != nil {
					rec.fail(time.Since(t0), err.Error())
				} else {
					rec.ok(time.Since(t0))
				}
			}
		}()
	}
	wg.Wait()
	return &rec, time.Since(start)
}

// runIngest posts batches of points that are new every time: request n goes to company
// n mod len(ids) with metric bench_ingest and one point per second starting at
// 2 years ago + run offset + (n / len(ids)) * points seconds, inside the seeded range.
func runIngest(base, token, idFile string, conc int, dur time.Duration, points int, runID int64) (result, error) {
	ids, err := readLines(idFile)
	if err != nil {
		return result{}, err
	}
	c := client(conc)
	origin := time.Now().UTC().Truncate(24*time.Hour).AddDate(-2, 0, 0).Add(time.Duration(runID%86400) * time.Second)
	var sent atomic.Int64
	rec, elapsed := closedLoop(conc, dur, func(_, n int) error {
		id := ids[n%len(ids)]
		t0 := origin.Add(time.Duration((n/len(ids))*points) * time.Second)
		var b bytes.Buffer
		b.Grow(points * 72)
		b.WriteString(`{"points":[`)
		for i := range points {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"metric":"bench_ingest","time":"`)
			b.WriteString(t0.Add(time.Duration(i) * time.Second).Format(time.RFC3339))
			b.WriteString(`","value":`)
			b.WriteString(strconv.FormatFloat(100+float64(i%1000)/10, 'f', 1, 64))
			b.WriteByte('}')
		}
		b.WriteString(`]}`)
		req := authorized(http.MethodPost, base+"/api/v1/companies/"+id+"/metrics", &b, token)
		req.Header.Set("Content-Type", "application/json")
		if err := do(c, req); err != nil {
			return err
		}
		sent.Add(int64(points))
		return nil
	})
	var res result
	rec.fill(&res, elapsed)
	res.Conc = conc
	res.Points = sent.Load()
	res.PointsPS = float64(res.Points) / elapsed.Seconds()
	return res, nil
}

// runUpload uploads documents of size bytes (random content, a text header so the
// sniffed type is text/plain) through multipart/form-data.
func runUpload(base, token, idFile string, conc int, dur time.Duration, size int) (result, error) {
	ids, err := readLines(idFile)
	if err != nil {
		return result{}, err
	}
	payload := make([]byte, size)
	_, _ = rand.Read(payload)
	for i := range payload { // printable, so the sniffed type is text/plain
		payload[i] = 'a' + payload[i]%26
	}
	c := client(conc)
	var bytesSent atomic.Int64
	rec, elapsed := closedLoop(conc, dur, func(_, n int) error {
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			fw, err := mw.CreateFormFile("file", "bench-"+strconv.Itoa(n)+".txt")
			if err == nil {
				_, err = fw.Write(payload)
			}
			if err == nil {
				err = mw.Close()
			}
			pw.CloseWithError(err)
		}()
		req := authorized(http.MethodPost, base+"/api/v1/companies/"+ids[n%len(ids)]+"/documents", pr, token)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		if err := do(c, req); err != nil {
			return err
		}
		bytesSent.Add(int64(size))
		return nil
	})
	var res result
	rec.fill(&res, elapsed)
	res.Conc = conc
	res.Bytes = bytesSent.Load()
	res.MBPS = float64(res.Bytes) / elapsed.Seconds() / (1 << 20)
	return res, nil
}

// authorized is a request to url carrying the bearer token.
func authorized(method, url string, body io.Reader, token string) *http.Request {
	req, _ := http.NewRequestWithContext(context.Background(), method, url, body)
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}
