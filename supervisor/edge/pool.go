package edge

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Backend is one API replica the edge may forward to: the container (so that a drain
// survives a snapshot that still lists it) and its address.
type Backend struct {
	ID   string
	Addr string // host:port
}

// backend is a Backend with the edge's view of it.
type backend struct {
	Backend
	inflight atomic.Int64
	// downUntil (unix nanos) is set by passive failure detection (a dial error); an
	// active health check clears it as soon as the replica answers again.
	downUntil atomic.Int64
	probing   atomic.Bool
}

func (b *backend) down(now time.Time) bool { return b.downUntil.Load() > now.UnixNano() }

// pool is the backend set with least-outstanding-requests balancing, passive failure
// detection, active re-checks and draining.
type pool struct {
	mu       sync.Mutex
	list     []*backend      // the set requests go to, sorted by address
	draining map[string]bool // container IDs taken out before their stop
	next     atomic.Uint64   // round-robin start among equally loaded backends

	// downFor is how long a replica that refused a connection is skipped at most;
	// probe re-checks it every recheck.
	downFor, recheck time.Duration
	probe            func(ctx context.Context, addr string) error
	ctx              context.Context
}

func newPool(probe func(ctx context.Context, addr string) error) *pool {
	return &pool{draining: map[string]bool{}, downFor: 10 * time.Second, recheck: 250 * time.Millisecond, probe: probe, ctx: context.Background()}
}

// set replaces the backend set, keeping what is known of replicas that stay (their
// in-flight counts, failures). Draining replicas stay out; a drain is forgotten once
// its container is gone from the set.
func (p *pool) set(bs []Backend) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := map[string]*backend{}
	for _, b := range p.list {
		old[b.ID+"|"+b.Addr] = b
	}
	present := map[string]bool{}
	var list []*backend
	for _, b := range bs {
		present[b.ID] = true
		if p.draining[b.ID] {
			continue
		}
		if ob, ok := old[b.ID+"|"+b.Addr]; ok {
			list = append(list, ob)
			continue
		}
		list = append(list, &backend{Backend: b})
	}
	for id := range p.draining {
		if !present[id] {
			delete(p.draining, id)
		}
	}
	slices.SortFunc(list, func(a, b *backend) int {
		switch {
		case a.Addr < b.Addr:
			return -1
		case a.Addr > b.Addr:
			return 1
		}
		return 0
	})
	p.list = list
}

// backends returns the current set.
func (p *pool) backends() []*backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.list
}

// pick returns the backend with the fewest requests in flight among those not down
// and not tried yet; when all untried ones are down it tries a down one rather than
// failing the request.
func (p *pool) pick(tried map[*backend]bool) *backend {
	list := p.backends()
	if len(list) == 0 {
		return nil
	}
	now := time.Now()
	start := p.next.Add(1)
	var best, fallback *backend
	for i := range uint64(len(list)) {
		b := list[(start+i)%uint64(len(list))]
		if tried[b] {
			continue
		}
		if b.down(now) {
			if fallback == nil {
				fallback = b
			}
			continue
		}
		if best == nil || b.inflight.Load() < best.inflight.Load() {
			best = b
		}
	}
	if best == nil {
		return fallback
	}
	return best
}

// markDown takes a replica that refused a connection out of rotation until an active
// check finds it answering (or downFor passes).
func (p *pool) markDown(b *backend) {
	b.downUntil.Store(time.Now().Add(p.downFor).UnixNano())
	if p.probe == nil || !b.probing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer b.probing.Store(false)
		t := time.NewTicker(p.recheck)
		defer t.Stop()
		for b.down(time.Now()) {
			select {
			case <-p.ctx.Done():
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(p.ctx, time.Second)
			err := p.probe(ctx, b.Addr)
			cancel()
			if err == nil {
				b.downUntil.Store(0)
				return
			}
		}
	}()
}

// drain takes a replica out of the set (it stays out while later snapshots still list
// it) and waits until its requests in flight are done or ctx ends; it returns how many
// were still running then.
func (p *pool) drain(ctx context.Context, id string) int64 {
	p.mu.Lock()
	p.draining[id] = true
	var gone []*backend
	kept := p.list[:0:0]
	for _, b := range p.list {
		if b.ID == id {
			gone = append(gone, b)
			continue
		}
		kept = append(kept, b)
	}
	p.list = kept
	p.mu.Unlock()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		var n int64
		for _, b := range gone {
			n += b.inflight.Load()
		}
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
	}
}

// trackedBody decrements a backend's in-flight count once the response body is done.
type trackedBody struct {
	rc   interface{ Read([]byte) (int, error) }
	body interface{ Close() error }
	once sync.Once
	b    *backend
}

func (t *trackedBody) Read(p []byte) (int, error) { return t.rc.Read(p) }

func (t *trackedBody) Close() error {
	t.once.Do(func() { t.b.inflight.Add(-1) })
	return t.body.Close()
}

// probeHealth is the active check of a replica: GET /health answers 200.
func probeHealth(client *http.Client) func(ctx context.Context, addr string) error {
	return func(ctx context.Context, addr string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/health", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errStatus(resp.StatusCode)
		}
		return nil
	}
}

type errStatus int

func (e errStatus) Error() string { return "answered " + http.StatusText(int(e)) }
