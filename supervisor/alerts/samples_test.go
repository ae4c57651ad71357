package alerts

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func pts(start time.Time, step time.Duration, vs ...float64) []Point {
	out := make([]Point, len(vs))
	for i, v := range vs {
		out[i] = Point{T: start.Add(time.Duration(i) * step), V: v}
	}
	return out
}

func TestIncrease(t *testing.T) {
	now := t0.Add(10 * time.Minute)
	start := now.Add(-5 * time.Minute) // points every minute from t0: 6 fall in (start, now], one at start
	tests := []struct {
		name    string
		points  []Point
		wantInc float64
		wantSec float64
	}{
		{"steady", pts(t0, time.Minute, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100), 50, 300},
		{"reset counts from zero, never negative", pts(t0, time.Minute, 0, 10, 20, 30, 40, 50, 60, 5, 15, 25, 35), 5 + 10 + 10 + 10 + 10, 300},
		{"reset to a higher value is still no spike", pts(t0, time.Minute, 0, 0, 0, 0, 0, 1000, 1010, 3, 4, 5, 6), 10 + 3 + 3, 300},
		{"new series inside the window counts from its first point", pts(start.Add(2*time.Minute), time.Minute, 500, 510, 530, 560), 60, 180},
		{"single point", pts(now, time.Minute, 7), 0, 0},
		{"no points", nil, 0, 0},
		{"all before the window but the baseline", pts(t0, time.Minute, 1, 2, 3), 0, 0},
		{"future points ignored", pts(now.Add(-time.Minute), time.Minute, 1, 2, 100), 1, 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inc, secs := Increase(tt.points, 5*time.Minute, now)
			if inc != tt.wantInc || secs != tt.wantSec {
				t.Errorf("Increase = %v over %vs, want %v over %vs", inc, secs, tt.wantInc, tt.wantSec)
			}
			if inc < 0 {
				t.Error("negative increase")
			}
		})
	}
	if r := Rate(pts(t0, time.Minute, 0, 60, 120), 5*time.Minute, t0.Add(2*time.Minute)); r != 1 {
		t.Errorf("Rate = %v, want 1/s", r)
	}
	if r := Rate(nil, time.Minute, now); r != 0 {
		t.Errorf("Rate of nothing = %v", r)
	}
}

func TestLinearFit(t *testing.T) {
	now := t0.Add(time.Hour)
	// v = 0.5 + 0.1 per hour, sampled each 10 minutes, ending now.
	var points []Point
	for m := 0; m <= 60; m += 10 {
		points = append(points, Point{T: t0.Add(time.Duration(m) * time.Minute), V: 0.4 + 0.1*float64(m)/60})
	}
	slope, at, ok := LinearFit(points, 2*time.Hour, now, 3)
	if !ok || math.Abs(slope*3600-0.1) > 1e-9 || math.Abs(at-0.5) > 1e-9 {
		t.Fatalf("fit = %v/h, %v at now (ok %v); want 0.1/h, 0.5", slope*3600, at, ok)
	}
	if _, _, ok := LinearFit(points, 2*time.Hour, now, 10); ok {
		t.Error("fit with fewer points than asked for")
	}
	same := []Point{{T: now, V: 1}, {T: now, V: 2}}
	if _, _, ok := LinearFit(same, time.Hour, now, 2); ok {
		t.Error("fit of points at one instant")
	}
}

func TestSamples(t *testing.T) {
	var s Samples
	s.At = t0
	s.Set(MetricDiskUsedRatio, Labels{"mount": "/"}, 0.5)
	s.Add(MetricDiskUsedRatio, Labels{"mount": "/"}, t0.Add(time.Minute), 0.6)
	s.Set(MetricDiskUsedRatio, Labels{"mount": "/srv"}, 0.7)
	s.Series = append(s.Series, Series{Name: "empty"})
	if got := len(s.Find(MetricDiskUsedRatio, nil)); got != 2 {
		t.Errorf("Find = %d series, want 2", got)
	}
	if v, ok := s.Latest(MetricDiskUsedRatio, Labels{"mount": "/"}); !ok || v != 0.6 {
		t.Errorf("Latest = %v %v, want 0.6", v, ok)
	}
	if _, ok := s.Latest("empty", nil); ok {
		t.Error("a series without points has a latest value")
	}
	if _, ok := s.Latest("missing", nil); ok {
		t.Error("a missing series has a latest value")
	}
	if got := (Labels{"b": `x"y`, "a": "1"}).String(); got != `{a="1",b="x\"y"}` {
		t.Errorf("Labels.String = %s", got)
	}
}

func TestMetricNames(t *testing.T) {
	names := MetricNames()
	if len(names) != 18 || !slices.IsSorted(names) {
		t.Errorf("MetricNames = %v", names)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "corpintel_") {
			t.Errorf("%s lacks the corpintel_ prefix", n)
		}
	}
}
