package alerts

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// Labels are the labels of a series or an alert.
type Labels map[string]string

// String is the canonical form {a="1",b="2"}, sorted by name.
func (l Labels) String() string {
	keys := slices.Sorted(maps.Keys(l))
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(l[k], `\`, `\\`), `"`, `\"`))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// contains reports whether l has every label of sub with the same value.
func (l Labels) contains(sub Labels) bool {
	for k, v := range sub {
		if l[k] != v {
			return false
		}
	}
	return true
}

// Point is one observation.
type Point struct {
	T time.Time `json:"t"`
	V float64   `json:"v"`
}

// Series is one metric with one label set and its recent points, oldest first; the last
// point is the current value. Gauges need only the last point; counters (for rates) and
// the disk-full forecast need the history their rule's window covers.
type Series struct {
	Name   string  `json:"name"`
	Labels Labels  `json:"labels,omitempty"`
	Points []Point `json:"points"`
}

// Last returns the newest point.
func (s *Series) Last() (Point, bool) {
	if len(s.Points) == 0 {
		return Point{}, false
	}
	return s.Points[len(s.Points)-1], true
}

// Samples is one snapshot of everything the rules read, filled by the supervisor's
// collectors (supervisor/health). The metric names the built-in rules read are the
// Metric* constants; see metrics.go for their meaning, labels and the history each needs.
type Samples struct {
	// At is when the snapshot was taken.
	At     time.Time `json:"at"`
	Series []Series  `json:"series"`

	index map[string]int
}

func seriesKey(name string, l Labels) string { return name + l.String() }

// Add appends a point to the series name{labels}, creating the series; points of one
// series must be added oldest first.
func (s *Samples) Add(name string, labels Labels, t time.Time, v float64) {
	s.buildIndex()
	k := seriesKey(name, labels)
	i, ok := s.index[k]
	if !ok {
		i = len(s.Series)
		s.Series = append(s.Series, Series{Name: name, Labels: maps.Clone(labels)})
		s.index[k] = i
	}
	s.Series[i].Points = append(s.Series[i].Points, Point{T: t, V: v})
}

// Set records a gauge's current value at s.At.
func (s *Samples) Set(name string, labels Labels, v float64) { s.Add(name, labels, s.At, v) }

func (s *Samples) buildIndex() {
	if s.index != nil && len(s.index) == len(s.Series) {
		return
	}
	s.index = make(map[string]int, len(s.Series))
	for i := range s.Series {
		s.index[seriesKey(s.Series[i].Name, s.Series[i].Labels)] = i
	}
}

// Find returns the series called name whose labels include match, in the order added.
func (s *Samples) Find(name string, match Labels) []*Series {
	var out []*Series
	for i := range s.Series {
		if s.Series[i].Name == name && s.Series[i].Labels.contains(match) && len(s.Series[i].Points) > 0 {
			out = append(out, &s.Series[i])
		}
	}
	return out
}

// Latest returns the current value of the first series name{match…}.
func (s *Samples) Latest(name string, match Labels) (float64, bool) {
	for _, sr := range s.Find(name, match) {
		p, _ := sr.Last()
		return p.V, true
	}
	return 0, false
}

// Increase is how much a counter grew over (now-window, now]. A value lower than its
// predecessor is a counter reset (the process or replica was replaced and counts from
// zero again): the new value is counted as growth since the reset, so an increase is
// never negative and a reset never shows as a spike. The first point at or before the
// window start is the baseline; a series that starts inside the window (a new replica)
// counts from its first point, not from zero, since what it counted before it was first
// seen is unknown. Like Prometheus, apply it per series and sum afterwards: summing
// counters of several replicas first turns one replica's disappearance into a fake reset.
// It returns the increase and the seconds it covers (0 when fewer than two points fall
// in the window).
func Increase(points []Point, window time.Duration, now time.Time) (inc, seconds float64) {
	start := now.Add(-window)
	first := -1
	for i, p := range points {
		if p.T.After(now) {
			break
		}
		if !p.T.After(start) {
			first = i // latest point at or before the start: the baseline
			continue
		}
		if first < 0 {
			first = i
		}
	}
	if first < 0 {
		return 0, 0
	}
	last := first
	prev := points[first].V
	for i := first + 1; i < len(points) && !points[i].T.After(now); i++ {
		v := points[i].V
		if v >= prev {
			inc += v - prev
		} else {
			inc += v // reset: counted from zero again
		}
		prev = v
		last = i
	}
	if last == first {
		return 0, 0
	}
	return inc, points[last].T.Sub(points[first].T).Seconds()
}

// Rate is Increase per second (0 without two points).
func Rate(points []Point, window time.Duration, now time.Time) float64 {
	inc, secs := Increase(points, window, now)
	if secs <= 0 {
		return 0
	}
	return inc / secs
}

// LinearFit fits v = slope·t + intercept (t in seconds since at) by least squares over
// the points in (at-window, at], as Prometheus's predict_linear does. ok is false with
// fewer than min points or all at one instant.
func LinearFit(points []Point, window time.Duration, at time.Time, minPoints int) (slope, intercept float64, ok bool) {
	start := at.Add(-window)
	var n, sx, sy, sxx, sxy float64
	for _, p := range points {
		if !p.T.After(start) || p.T.After(at) {
			continue
		}
		x := p.T.Sub(at).Seconds()
		n++
		sx += x
		sy += p.V
		sxx += x * x
		sxy += x * p.V
	}
	if n < float64(max(minPoints, 2)) {
		return 0, 0, false
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0, 0, false
	}
	slope = (n*sxy - sx*sy) / den
	intercept = (sy - slope*sx) / n
	return slope, intercept, true
}
