package console

import (
	"net/http"

	"github.com/corpintel/corpintel/internal/stack"
)

// serveRestartConfirm asks before a restart (and for the password, for a stateful
// service, unless it was typed a moment ago).
func serveRestartConfirm(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	name := r.PathValue("service")
	if !stack.IsService(name) {
		return errorf(http.StatusNotFound, "There is no service %q.", truncate(name, 64))
	}
	return c.render(w, r, rq, http.StatusOK, "confirm", view{Title: "Restart " + name, Nav: "services", Data: restartConfirm(c, rq, name)})
}
