package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// hub keeps the latest status for the live pages: one collection per change of the
// stack (the supervisor's change feed) or per refresh tick, shared by every connected
// page — never one per browser. It idles while nobody watches.
type hub struct {
	c    *Console
	wake chan struct{}
	// maxAge is how old a status pages may be given (the refresh interval; tests: 0).
	maxAge time.Duration

	mu     sync.Mutex
	subs   map[chan struct{}]struct{}
	status Status
	err    error
	at     time.Time
}

func newHub(c *Console) *hub {
	return &hub{c: c, wake: make(chan struct{}, 1), subs: map[chan struct{}]struct{}{}, maxAge: c.opts.Refresh}
}

// subscribe returns a channel that receives after every new status or action change.
func (h *hub) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	poke(h.wake)
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (h *hub) watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// broadcast wakes every subscriber.
func (h *hub) broadcast() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		poke(ch)
	}
}

// latest returns the last collected status, collecting one when there is none yet or
// the last is older than the refresh interval.
func (h *hub) latest(ctx context.Context) (Status, error) {
	st, err, _ := h.current(ctx)
	return st, err
}

// current is latest, and whether it collected the status now. Pages use it: a status
// costs a second (the engine answers one-shot container stats at its own 1 s tick), and
// while anyone watches a live page the hub's is never older than the refresh interval.
func (h *hub) current(ctx context.Context) (Status, error, bool) {
	h.mu.Lock()
	st, err, at, maxAge := h.status, h.err, h.at, h.maxAge
	h.mu.Unlock()
	if !at.IsZero() && time.Since(at) < maxAge {
		return st, err, false
	}
	st, err = h.collect(ctx)
	return st, err, true
}

func (h *hub) collect(ctx context.Context) (Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now() // the age of what is observed
	st, err := h.c.opts.Ops.Status(ctx)
	h.mu.Lock()
	h.status, h.err, h.at = st, err, start
	h.mu.Unlock()
	return st, err
}

// run collects a new status whenever the stack changes, and every refresh interval
// while someone watches, and wakes the watchers.
func (h *hub) run(ctx context.Context) {
	changes, stop := h.c.opts.Ops.WatchStatus()
	defer stop()
	t := time.NewTicker(h.c.opts.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes:
			h.mu.Lock()
			h.at = time.Time{} // pages must not be given what just changed
			h.mu.Unlock()
		case <-t.C:
		case <-h.wake:
		}
		if h.watchers() == 0 {
			continue
		}
		if _, err := h.collect(ctx); err != nil && ctx.Err() == nil {
			h.c.log.Warn("console: status for live pages", "err", err)
		}
		h.broadcast()
	}
}

// sse is a Server-Sent Events response.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w)}
	_ = s.rc.Flush()
	return s
}

// event sends one event whose data is v as JSON (one line: JSON has no raw newlines).
func (s *sse) event(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, b); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sse) comment(text string) error {
	if _, err := fmt.Fprintf(s.w, ": %s\n\n", strings.ReplaceAll(text, "\n", " ")); err != nil {
		return err
	}
	return s.rc.Flush()
}

// heartbeat is how often a stream sends a comment and checks that its session still
// holds.
const heartbeat = 25 * time.Second

// sessionValid re-reads the stream's session: a stream ends with its session (logout
// elsewhere, idle timeout, deactivated user).
func (c *Console) sessionValid(ctx context.Context, rq *request) bool {
	if rq.session == nil {
		return false
	}
	s, err := c.opts.Store.Session(ctx, rq.session.IDHash)
	if err != nil {
		return !errors.Is(err, ErrNotFound) // a store hiccup is not a logout
	}
	now := c.now()
	if !now.Before(s.ExpiresAt) || now.Sub(s.LastSeenAt) >= c.opts.SessionIdle {
		return false
	}
	u, err := c.opts.Store.UserByID(ctx, s.UserID)
	return err != nil && !errors.Is(err, ErrNotFound) || err == nil && u.Active
}

// fragmentEvent replaces the element with id ID by HTML (rendered from the same
// templates as the page, so it is escaped the same way).
type fragmentEvent struct {
	ID   string `json:"id"`
	HTML string `json:"html"`
}
