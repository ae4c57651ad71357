package console

import (
	"context"
	"errors"
	"net/http"

	"github.com/corpintel/corpintel/internal/stack"
)

// serveRestart restarts a service in the background and shows its progress. A stateful
// service needs a fresh password (re-authentication).
func serveRestart(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	name := r.PathValue("service")
	if !stack.IsService(name) {
		return errorf(http.StatusNotFound, "There is no service %q.", truncate(name, 64))
	}
	again := func(err error) error {
		var fe *formError
		if !errors.As(err, &fe) {
			return err
		}
		c.audit(ctx, rq, "denied", name, fe.msg)
		return c.render(w, r, rq, http.StatusUnprocessableEntity, "confirm", view{Title: "Restart " + name, Nav: "services", Error: fe.msg,
			Data: restartConfirm(c, rq, name)})
	}
	if a, ok := c.actions.running(name); ok {
		return again(invalid("%s by %s is still running; wait for it to end.", a.Title(), a.By))
	}
	if stack.Stateful(name) {
		if err := c.reauthenticate(ctx, r, rq); err != nil {
			return again(err)
		}
	}
	c.audit(ctx, rq, "started", name, "")
	id := c.actions.start(rq, &action{Kind: "restart", Service: name, By: rq.user.Name}, "restart "+name,
		func(ctx context.Context) error { return c.opts.Ops.Restart(ctx, name) })
	return seeOther(w, r, "/admin/actions/"+id)
}
