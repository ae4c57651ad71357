package console

import (
	"net/http"
	"strconv"
)

// serveStatic serves an embedded asset by its checksummed name, cached forever: its
// URL changes whenever its content does.
func serveStatic(c *Console, w http.ResponseWriter, r *http.Request, _ *request) error {
	a, ok := c.assets.files[r.PathValue("file")]
	if !ok {
		return errorf(http.StatusNotFound, "No such asset.")
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body)
	}
	return nil
}
