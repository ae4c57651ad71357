package console

import "net/http"

// loginData fills the login form.
type loginData struct {
	Name, Next, Notice string
}

// serveLoginForm shows the login form (or sends a logged-in user on).
func serveLoginForm(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	if rq.session != nil && rq.session.Stage == stageFull {
		return seeOther(w, r, safeNext(q.Get("next")))
	}
	d := loginData{Next: q.Get("next")}
	switch {
	case rq.expired || q.Get("expired") == "1":
		d.Notice = "Your session has ended. Log in again."
	case q.Get("bye") == "1":
		d.Notice = "You are logged out."
	case q.Get("created") == "1":
		d.Notice = "Your account is ready. Log in."
	}
	return c.render(w, r, rq, http.StatusOK, "login", view{Title: "Log in", Data: d})
}
