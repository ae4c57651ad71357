package backup

import (
	"sync"
	"time"
)

// progress aggregates the bytes read from every source and reports them through the
// callback, at most every `every`, with a rate and an ETA from the previous backup's size.
type progress struct {
	mu     sync.Mutex
	fn     func(Progress)
	now    Clock
	every  time.Duration
	tier   string
	phase  string
	start  time.Time
	last   time.Time
	bytes  int64
	total  int64
	closed bool
}

func newProgress(fn func(Progress), now Clock, every time.Duration, tier string, total int64) *progress {
	t := now()
	return &progress{fn: fn, now: now, every: every, tier: tier, total: total, start: t, last: t}
}

func (p *progress) setPhase(phase string) {
	p.mu.Lock()
	p.phase = phase
	p.mu.Unlock()
	p.report(true)
}

func (p *progress) add(n int64) {
	p.mu.Lock()
	p.bytes += n
	p.mu.Unlock()
	p.report(false)
}

func (p *progress) report(force bool) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	t := p.now()
	if p.closed || (!force && t.Sub(p.last) < p.every) {
		p.mu.Unlock()
		return
	}
	p.last = t
	pr := Progress{Tier: p.tier, Phase: p.phase, Bytes: p.bytes, Total: p.total}
	if el := t.Sub(p.start).Seconds(); el > 0 {
		pr.Rate = float64(p.bytes) / el
	}
	if pr.Rate > 0 && p.total > p.bytes {
		pr.ETA = time.Duration(float64(p.total-p.bytes) / pr.Rate * float64(time.Second))
	}
	p.mu.Unlock()
	p.fn(pr)
}

func (p *progress) close() {
	p.report(true)
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}
