package reconcile

import (
	"sync"
	"time"
)

// BackoffPolicy says how long a service waits before a failing container of it is
// replaced again. The first replacements are immediate (a killed PostgreSQL comes back
// at once); from the Free-th consecutive failure on the wait doubles from First up to
// Max; a service that has been healthy for Reset starts over.
type BackoffPolicy struct {
	Free  int
	First time.Duration
	Max   time.Duration
	Reset time.Duration
}

// DefaultBackoff is the policy of the supervisor.
var DefaultBackoff = BackoffPolicy{Free: 2, First: 5 * time.Second, Max: 3 * time.Minute, Reset: 2 * time.Minute}

// delay is the wait after the n-th consecutive failure.
func (p BackoffPolicy) delay(n int) time.Duration {
	if n <= p.Free {
		return 0
	}
	d := p.First
	for i := p.Free + 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// backoffs tracks one backoff per service. The reconciler feeds it after every pass:
// which services were healthy, which had a failing container replaced. Decisions are
// taken by the plan from the snapshot (Observed.Backoff and Now).
type backoffs struct {
	policy BackoffPolicy
	mu     sync.Mutex
	m      map[string]*serviceBackoff
}

type serviceBackoff struct {
	failures  int
	until     time.Time
	unhealthy time.Time // last time the service had a failing container
}

func newBackoffs(p BackoffPolicy) *backoffs {
	return &backoffs{policy: p, m: map[string]*serviceBackoff{}}
}

func (b *backoffs) get(svc string) *serviceBackoff {
	s := b.m[svc]
	if s == nil {
		s = &serviceBackoff{}
		b.m[svc] = s
	}
	return s
}

// snapshot returns the backoffs that still count (a failure recorded).
func (b *backoffs) snapshot() map[string]Backoff {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]Backoff{}
	for svc, s := range b.m {
		if s.failures > 0 {
			out[svc] = Backoff{Failures: s.failures, Until: s.until}
		}
	}
	return out
}

// observe notes whether the service is healthy now; Reset of health forgives its
// failures.
func (b *backoffs) observe(svc string, healthy bool, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.get(svc)
	switch {
	case !healthy:
		s.unhealthy = now
	case s.failures > 0 && now.Sub(s.unhealthy) >= b.policy.Reset:
		*s = serviceBackoff{}
	}
}

// replaced records that a failing container of svc was replaced (or its replacement
// was attempted) at now.
func (b *backoffs) replaced(svc string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.get(svc)
	s.failures++
	s.unhealthy = now
	s.until = now.Add(b.policy.delay(s.failures))
}

// nextWake is the earliest backoff end after now (zero when none): the loop runs a
// pass then, so a failing container is replaced as soon as its wait is over.
func (b *backoffs) nextWake(now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	var next time.Time
	for _, s := range b.m {
		if s.until.After(now) && (next.IsZero() || s.until.Before(next)) {
			next = s.until
		}
	}
	return next
}

// forget drops the backoff of svc (the operator restarted it).
func (b *backoffs) forget(svc string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, svc)
}
