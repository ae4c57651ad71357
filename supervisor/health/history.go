package health

import (
	"maps"
	"math"
	"slices"
	"time"

	"github.com/corpintel/corpintel/supervisor/alerts"
)

// The recent-metrics buffer: per series, a coarse ring (one point per resolution step,
// the newest value of the step, for Retention — 24 h at 1 minute by default: the
// console's charts and the disk-full forecast) and a fine ring (every cycle, for the
// windows the rules compute rates over: error rate, restart loops). Both hold compact
// points and grow only up to their capacity, so a series costs what it has seen.

type pt struct {
	t int64 // Unix milliseconds
	v float64
}

// ring is a bounded FIFO of points, oldest first.
type ring struct {
	pts   []pt
	start int
	max   int
}

func (r *ring) push(p pt) {
	if len(r.pts) < r.max {
		if len(r.pts) == cap(r.pts) { // grow by doubling, but never past max
			grown := make([]pt, len(r.pts), min(max(2*cap(r.pts), 16), r.max))
			copy(grown, r.pts)
			r.pts = grown
		}
		r.pts = append(r.pts, p)
		return
	}
	r.pts[r.start] = p
	r.start = (r.start + 1) % r.max
}

func (r *ring) len() int { return len(r.pts) }

// at returns the i-th oldest point.
func (r *ring) at(i int) pt { return r.pts[(r.start+i)%len(r.pts)] }

func (r *ring) last() (pt, bool) {
	if len(r.pts) == 0 {
		return pt{}, false
	}
	return r.at(len(r.pts) - 1), true
}

func (r *ring) setLast(p pt) { r.pts[(r.start+len(r.pts)-1)%len(r.pts)] = p }

type hseries struct {
	name   string
	labels alerts.Labels
	coarse ring
	fine   ring
	seen   int64 // the last cycle (Unix ms) that had it
}

type history struct {
	res, keep, fine time.Duration
	fineMax         int
	series          map[string]*hseries
}

// maxFinePoints bounds a series' fine ring whatever the interval and windows.
const maxFinePoints = 4096

func newHistory(res, keep, fine, interval time.Duration) *history {
	n := int(fine/interval) + 4
	return &history{res: res, keep: keep, fine: fine, fineMax: min(n, maxFinePoints), series: map[string]*hseries{}}
}

// record adds one cycle's values and forgets series not seen for the retention.
func (h *history) record(at time.Time, values []value) {
	t := at.UnixMilli()
	resMs := h.res.Milliseconds()
	for _, v := range values {
		k := v.key()
		s := h.series[k]
		if s == nil {
			l := make(alerts.Labels, len(v.labels))
			for i, name := range v.fam.labels {
				if v.labels[i] != "" {
					l[name] = v.labels[i]
				}
			}
			s = &hseries{name: v.fam.name, labels: l, coarse: ring{max: int(h.keep/h.res) + 1}, fine: ring{max: h.fineMax}}
			h.series[k] = s
		}
		s.seen = t
		p := pt{t: t, v: v.v}
		if last, ok := s.fine.last(); ok && last.t == t {
			s.fine.setLast(p)
		} else {
			s.fine.push(p)
		}
		if last, ok := s.coarse.last(); ok && last.t/resMs == t/resMs {
			s.coarse.setLast(p)
		} else {
			s.coarse.push(p)
		}
	}
	cutoff := t - h.keep.Milliseconds()
	for k, s := range h.series {
		if s.seen < cutoff {
			delete(h.series, k)
		}
	}
}

func (h *history) size() (series, points int) {
	for _, s := range h.series {
		points += s.coarse.len() + s.fine.len()
	}
	return len(h.series), points
}

func toPoint(p pt) alerts.Point { return alerts.Point{T: time.UnixMilli(p.t), V: p.v} }

// samples builds the rules' snapshot at the last cycle.
func (h *history) samples(at time.Time, needs map[string]time.Duration) alerts.Samples {
	out := alerts.Samples{At: at}
	t := at.UnixMilli()
	keys := slices.Sorted(maps.Keys(h.series))
	for _, k := range keys {
		s := h.series[k]
		need := needs[s.name]
		current := s.seen == t
		if !current && (need <= 0 || t-s.seen > need.Milliseconds()) {
			continue // gone: its last value is no longer true
		}
		var pts []alerts.Point
		if need <= 0 {
			last, _ := s.fine.last()
			pts = []alerts.Point{toPoint(last)}
		} else {
			pts = h.window(s, t-need.Milliseconds())
		}
		out.Series = append(out.Series, alerts.Series{Name: s.name, Labels: maps.Clone(s.labels), Points: pts})
	}
	return out
}

// window returns the points in (from, now] — the per-minute ones older than the fine
// ring, then the fine ones — preceded by the newest point at or before from: the
// baseline a rate over the window starts from (alerts.Increase).
func (h *history) window(s *hseries, from int64) []alerts.Point {
	fineStart := int64(math.MaxInt64)
	if s.fine.len() > 0 {
		fineStart = s.fine.at(0).t
	}
	pts := make([]alerts.Point, 1, 64) // [0] is the baseline, if any
	var base pt
	haveBase := false
	take := func(p pt) {
		if p.t <= from {
			base, haveBase = p, true
			return
		}
		pts = append(pts, toPoint(p))
	}
	for i := range s.coarse.len() {
		if p := s.coarse.at(i); p.t < fineStart {
			take(p)
		}
	}
	for i := range s.fine.len() {
		take(s.fine.at(i))
	}
	if !haveBase {
		return pts[1:]
	}
	pts[0] = toPoint(base)
	return pts
}

// coarseSeries returns the per-minute points of the matching series since a time.
func (h *history) coarseSeries(name string, match alerts.Labels, since time.Time) []alerts.Series {
	from := since.UnixMilli()
	var out []alerts.Series
	for _, k := range slices.Sorted(maps.Keys(h.series)) {
		s := h.series[k]
		if s.name != name || !containsLabels(s.labels, match) {
			continue
		}
		sr := alerts.Series{Name: s.name, Labels: maps.Clone(s.labels)}
		for i := range s.coarse.len() {
			if p := s.coarse.at(i); p.t >= from {
				sr.Points = append(sr.Points, toPoint(p))
			}
		}
		out = append(out, sr)
	}
	return out
}

func containsLabels(l, sub alerts.Labels) bool {
	for k, v := range sub {
		if l[k] != v {
			return false
		}
	}
	return true
}
