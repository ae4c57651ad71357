package console

import "net/http"

// serveNotFound answers every path the route table does not have.
func serveNotFound(_ *Console, _ http.ResponseWriter, r *http.Request, _ *request) error {
	return errorf(http.StatusNotFound, "There is no page %s in the console.", truncate(r.URL.Path, 200))
}
