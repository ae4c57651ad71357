package console

import "net/http"

// serveRootRedirect sends /admin to /admin/, where relative links work.
func serveRootRedirect(_ *Console, w http.ResponseWriter, r *http.Request, _ *request) error {
	http.Redirect(w, r, "/admin/", http.StatusMovedPermanently)
	return errHandled
}
