package console

import (
	"net/http"
	"time"

	"github.com/corpintel/corpintel/internal/stack"
)

// serveService shows one service: its containers and what an operator can do.
func serveService(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	name := r.PathValue("service")
	if !stack.IsService(name) {
		return errorf(http.StatusNotFound, "There is no service %q.", truncate(name, 64))
	}
	t := time.Now()
	st, err, fresh := c.hub.current(r.Context())
	rq.statusDur, rq.statusFresh = time.Since(t), fresh
	d := serviceDataOf(name, st, err, rq.user)
	d.Actions = c.actions.recent(name, 5)
	return c.render(w, r, rq, http.StatusOK, "service", view{Title: name, Nav: "services", Live: "/admin/events?view=service:" + name,
		Refresh: 15, Data: d})
}
