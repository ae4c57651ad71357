package console

import (
	"net/http"
	"strconv"

	"github.com/corpintel/corpintel/internal/stack"
)

// serveScaleConfirm asks before a scale (and for the password before scaling to 0).
func serveScaleConfirm(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	name := r.PathValue("service")
	if !stack.IsService(name) {
		return errorf(http.StatusNotFound, "There is no service %q.", truncate(name, 64))
	}
	if !stack.Scalable(name) {
		return errorf(http.StatusBadRequest, "%s runs as exactly one container; only the API can be scaled.", name)
	}
	from, err := c.desiredReplicas(r, name)
	if err != nil {
		return err
	}
	to := from
	v := view{Title: "Scale " + name, Nav: "services"}
	if s := r.URL.Query().Get("replicas"); s != "" {
		n, err := strconv.Atoi(s)
		if err == nil {
			err = stack.ValidateScale(name, n)
		}
		if err != nil {
			v.Error = "Replicas must be a whole number from 0 to " + strconv.Itoa(stack.MaxScale) + "."
		} else {
			to = n
		}
	}
	v.Data = scaleConfirm(c, rq, name, from, to)
	status := http.StatusOK
	if v.Error != "" {
		status = http.StatusUnprocessableEntity
	}
	return c.render(w, r, rq, status, "confirm", v)
}
