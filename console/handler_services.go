package console

import (
	"net/http"
	"time"
)

// serveServices lists the services with their state, replicas and resources.
func serveServices(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	t := time.Now()
	st, err, fresh := c.hub.current(r.Context())
	rq.statusDur, rq.statusFresh = time.Since(t), fresh
	return c.render(w, r, rq, http.StatusOK, "services", view{Title: "Services", Nav: "services", Live: "/admin/events?view=services",
		Refresh: 15, Data: servicesData{Status: st, Err: errText(err), User: rq.user}})
}
