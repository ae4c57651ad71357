package console

import (
	"net/http"
	"time"
)

// serveEvents streams a live page's fragments (Server-Sent Events): at once, then
// whenever they change. The stream ends with its session.
func serveEvents(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	build, err := c.liveView(r.URL.Query().Get("view"), rq)
	if err != nil {
		return err
	}
	updates, cancel := c.hub.subscribe()
	defer cancel()
	stream := startSSE(w)
	sent := map[string]string{}
	push := func() error {
		st, serr := c.hub.latest(ctx)
		frags, err := build(st, serr)
		if err != nil {
			return err
		}
		for _, f := range frags {
			if sent[f.ID] == f.HTML {
				continue
			}
			sent[f.ID] = f.HTML
			if err := stream.event("fragment", f); err != nil {
				return err
			}
		}
		return nil
	}
	hb := time.NewTicker(c.heartbeat)
	defer hb.Stop()
	for {
		if err := push(); err != nil {
			if ctx.Err() == nil {
				c.log.Warn("console: live update", "err", err)
			}
			return errHandled
		}
		select {
		case <-ctx.Done():
			return errHandled
		case <-updates:
		case <-hb.C:
			if !c.sessionValid(ctx, rq) {
				_ = stream.event("expired", map[string]string{"login": "/admin/login?expired=1"})
				return errHandled
			}
			if err := stream.comment("ping"); err != nil {
				return errHandled
			}
		}
	}
}
