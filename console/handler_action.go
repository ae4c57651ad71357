package console

import "net/http"

// serveAction shows the progress of a restart or scale (live; reloading without
// JavaScript while it runs).
func serveAction(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	id := r.PathValue("id")
	a, ok := c.actions.get(id)
	if !ok {
		return errorf(http.StatusNotFound, "This action is not known here (the supervisor may have restarted since); the audit log records every action.")
	}
	st, _ := c.hub.latest(r.Context())
	v := view{Title: a.Title(), Nav: "services", Live: "/admin/events?view=action:" + id, Data: actionDataOf(a, st)}
	if !a.Done() {
		v.Refresh = 2
	}
	return c.render(w, r, rq, http.StatusOK, "action", v)
}
