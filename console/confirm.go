package console

import (
	"fmt"
	"net/http"

	"github.com/corpintel/corpintel/internal/stack"
)

// confirmData fills the confirmation page of a restart or a scale.
type confirmData struct {
	Service  string
	Heading  string
	Explain  string
	Warnings []string
	Action   string
	Button   string
	Danger   bool
	Reauth   bool
	Scale    bool
	From, To int
}

func restartConfirm(c *Console, rq *request, service string) confirmData {
	d := confirmData{Service: service, Heading: "Restart " + service + "?", Action: "/admin/services/" + service + "/restart",
		Button: "Restart " + service}
	if stack.Stateful(service) {
		d.Explain = fmt.Sprintf("The %s container is stopped and created again on the same data; clients lose their connection for a few seconds and reconnect.", service)
		d.Warnings = []string{service + " holds the stack's data: the API cannot reach it while it restarts."}
		d.Danger, d.Reauth = true, c.needsReauth(rq)
	} else {
		d.Explain = "Each replica is replaced by a new one; the edge drains a replica before it stops, so requests in flight finish."
	}
	return d
}

func scaleConfirm(c *Console, rq *request, service string, from, to int) confirmData {
	d := confirmData{Service: service, Heading: fmt.Sprintf("Scale %s from %d to %d replicas?", service, from, to),
		Action: "/admin/services/" + service + "/scale", Button: fmt.Sprintf("Scale to %d", to), Scale: true, From: from, To: to}
	switch {
	case to == 0:
		d.Explain = "Every replica stops: the API answers 503 until you scale it up again."
		d.Warnings = []string{"Scaling to 0 takes the API down."}
		d.Danger, d.Reauth = true, c.needsReauth(rq)
	case to > from:
		n := to - from
		d.Explain = fmt.Sprintf("%d new replica%s start%s and join%s the edge once healthy.", n, plural(n), sIf(n == 1), sIf(n == 1))
	case to < from:
		n := from - to
		d.Explain = fmt.Sprintf("%d replica%s leave%s the edge, finish%s what is in flight and stop%s.", n, plural(n), sIf(n == 1), sIf(n == 1), sIf(n == 1))
	default:
		d.Explain = "That is the current number; nothing changes."
	}
	return d
}

func sIf(b bool) string {
	if b {
		return "s"
	}
	return ""
}

// desiredReplicas is the service's current desired count (from the status).
func (c *Console) desiredReplicas(r *http.Request, service string) (int, error) {
	st, err := c.hub.collect(r.Context())
	if err != nil {
		return 0, err
	}
	s, ok := findService(st, service)
	if !ok {
		return 0, errorf(http.StatusConflict, "The supervisor reports no service %s right now.", service)
	}
	return s.Desired, nil
}
