package health

import (
	"testing"
	"time"

	"github.com/corpintel/corpintel/supervisor/alerts"
)

func TestRing(t *testing.T) {
	r := ring{max: 3}
	if _, ok := r.last(); ok {
		t.Fatal("empty ring has a last point")
	}
	for i := range 5 {
		r.push(pt{t: int64(i)})
	}
	if r.len() != 3 || r.at(0).t != 2 || r.at(2).t != 4 {
		t.Fatalf("after wrapping: %+v", r)
	}
	r.setLast(pt{t: 9})
	if l, _ := r.last(); l.t != 9 || r.at(0).t != 2 {
		t.Errorf("setLast: %+v", r)
	}
}

func TestHistoryCoarseFineAndRetention(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// 10-minute fine ring at 30 s, per-minute coarse ring for 2 h.
	h := newHistory(time.Minute, 2*time.Hour, 10*time.Minute, 30*time.Second)
	at := start
	for i := range 3 * 60 * 2 { // 3 h at 30 s
		vals := []value{{fam: famTestCounter, labels: []string{"a"}, v: float64(i)}}
		if i < 10 {
			vals = append(vals, value{fam: famTestGauge, labels: []string{"short"}, v: 1})
		}
		h.record(at, vals)
		at = at.Add(30 * time.Second)
	}
	now := at.Add(-30 * time.Second)
	series, points := h.size()
	if series != 1 {
		t.Errorf("a series unseen for longer than the retention was kept: %d series", series)
	}
	s := h.series[seriesKey(famTestCounter.name, []string{"a"})]
	if s.coarse.len() != 121 || s.fine.len() != h.fineMax || points != 121+h.fineMax {
		t.Errorf("coarse %d, fine %d (max %d), points %d", s.coarse.len(), s.fine.len(), h.fineMax, points)
	}
	if l, _ := s.coarse.last(); l.v != 359 {
		t.Errorf("the coarse point holds the newest value of its minute, got %v", l.v)
	}

	// A 1 h window: per-minute points before the fine ring, every point inside it,
	// and the baseline at its start; the increase is exact.
	w := h.window(s, now.Add(-time.Hour).UnixMilli())
	if inc, secs := alerts.Increase(w, time.Hour, now); inc != 120 || secs != 3600 {
		t.Errorf("increase over 1 h: %v over %v s (%d points)", inc, secs, len(w))
	}
	for i := 1; i < len(w); i++ {
		if !w[i].T.After(w[i-1].T) {
			t.Fatalf("points out of order at %d: %v", i, w[i-1:i+1])
		}
	}
	// A 5-minute window lies in the fine ring: every 30 s.
	if w := h.window(s, now.Add(-5*time.Minute).UnixMilli()); len(w) != 11 {
		t.Errorf("5 minutes at 30 s: %d points", len(w))
	}
	// A window longer than everything kept starts at the oldest point, no baseline.
	if w := h.window(s, now.Add(-10*time.Hour).UnixMilli()); !w[0].T.Equal(now.Add(-2 * time.Hour).Truncate(time.Minute).Add(30 * time.Second)) {
		t.Errorf("oldest point %v", w[0].T)
	}
}

func TestHistoryFineRingBounded(t *testing.T) {
	h := newHistory(time.Minute, time.Hour, 24*time.Hour, time.Second)
	if h.fineMax != maxFinePoints {
		t.Errorf("fine ring of %d points for a day at 1 s", h.fineMax)
	}
}
