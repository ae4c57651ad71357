package console

import (
	"net/http"
	"time"
)

// serveOverview shows the whole stack at a glance: what needs attention first, every
// service, and what backups, alerts and certificates will show.
func serveOverview(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	t := time.Now()
	st, err, fresh := c.hub.current(r.Context())
	rq.statusDur, rq.statusFresh = time.Since(t), fresh
	return c.render(w, r, rq, http.StatusOK, "overview", view{Title: "Overview", Nav: "overview", Live: "/admin/events?view=overview",
		Refresh: 15, Data: c.overviewData(st, err, rq.user)})
}
