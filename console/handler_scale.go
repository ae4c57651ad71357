package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/corpintel/corpintel/internal/stack"
)

// serveScale scales a service in the background and shows the progress until the new
// number of replicas is healthy. Scaling to 0 needs a fresh password.
func serveScale(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	name := r.PathValue("service")
	if !stack.IsService(name) {
		return errorf(http.StatusNotFound, "There is no service %q.", truncate(name, 64))
	}
	from, err := c.desiredReplicas(r, name)
	if err != nil {
		return err
	}
	to, convErr := strconv.Atoi(r.PostFormValue("replicas"))
	again := func(err error) error {
		var fe *formError
		if !errors.As(err, &fe) {
			return err
		}
		c.audit(ctx, rq, "denied", name, fe.msg)
		return c.render(w, r, rq, http.StatusUnprocessableEntity, "confirm", view{Title: "Scale " + name, Nav: "services", Error: fe.msg,
			Data: scaleConfirm(c, rq, name, from, max(to, 0))})
	}
	switch {
	case !stack.Scalable(name):
		return again(invalid("%s runs as exactly one container; only the API can be scaled.", name))
	case convErr != nil || stack.ValidateScale(name, to) != nil:
		to = from
		return again(invalid("Replicas must be a whole number from 0 to %d.", stack.MaxScale))
	}
	if a, ok := c.actions.running(name); ok {
		return again(invalid("%s by %s is still running; wait for it to end.", a.Title(), a.By))
	}
	if to == 0 {
		if err := c.reauthenticate(ctx, r, rq); err != nil {
			return again(err)
		}
	}
	detail := fmt.Sprintf("%s %d → %d", name, from, to)
	c.audit(ctx, rq, "started", name, detail)
	id := c.actions.start(rq, &action{Kind: "scale", Service: name, From: from, To: to, By: rq.user.Name}, detail,
		func(ctx context.Context) error { return c.opts.Ops.Scale(ctx, name, to) })
	return seeOther(w, r, "/admin/actions/"+id)
}
