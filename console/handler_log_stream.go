package console

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/corpintel/corpintel/internal/stack"
)

// linesPerSecond bounds what a followed log sends; a container that logs faster gets
// its excess counted ("… 1200 lines skipped") rather than flooding the browser.
const linesPerSecond = 200

// serveLogStream follows a service's log as Server-Sent Events ("line" events of
// capped, cleaned lines matching the filter) until the browser goes or the session
// ends.
func serveLogStream(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	name := r.PathValue("service")
	if !stack.IsService(name) {
		return errorf(http.StatusNotFound, "There is no service %q.", truncate(name, 64))
	}
	filter := truncate(strings.TrimSpace(r.URL.Query().Get("q")), 200)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stream := startSSE(w)
	var mu sync.Mutex // the log goroutine and the heartbeat both write
	window, sentInWindow, skipped := time.Now(), 0, 0
	sp := newLineSplitter(maxLine, func(l logLine) error {
		if !matches(l.Text, filter) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(window) >= time.Second {
			if skipped > 0 {
				if err := stream.event("skipped", map[string]int{"lines": skipped}); err != nil {
					return err
				}
			}
			window, sentInWindow, skipped = now, 0, 0
		}
		if sentInWindow >= linesPerSecond {
			skipped++
			return nil
		}
		sentInWindow++
		return stream.event("line", l)
	})
	done := make(chan error, 1)
	go func() { done <- c.opts.Ops.Logs(ctx, name, 0, true, sp) }()
	hb := time.NewTicker(c.heartbeat)
	defer hb.Stop()
	for {
		select {
		case err := <-done:
			mu.Lock()
			_ = sp.Flush()
			if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
				_ = stream.event("end", map[string]string{"error": err.Error()})
			} else {
				_ = stream.event("end", map[string]string{})
			}
			mu.Unlock()
			return errHandled
		case <-hb.C:
			mu.Lock()
			err := stream.comment("ping")
			mu.Unlock()
			if err != nil || !c.sessionValid(ctx, rq) {
				mu.Lock()
				_ = stream.event("expired", map[string]string{"login": "/admin/login?expired=1"})
				mu.Unlock()
				cancel()
				<-done
				return errHandled
			}
		case <-ctx.Done():
			<-done
			return errHandled
		}
	}
}
