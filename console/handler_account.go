package console

import "net/http"

type accountData struct {
	User      *User
	CodesLeft int
	Sessions  []sessionRow
}

type sessionRow struct {
	Session
	Handle  string
	Current bool
}

// sessionHandle names a session in a form without giving away its id (a prefix of the
// id's hash).
func sessionHandle(s Session) string { return s.IDHash[:16] }

// accountFlash is what the account page says after a change sent it there.
var accountFlash = map[string]string{
	"password": "Your password is changed; your other sessions have ended.",
	"totp-off": "TOTP is off.",
	"session":  "The session has ended.",
}

// serveAccount shows the user's own account: password, TOTP, sessions.
func serveAccount(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	d := accountData{User: rq.user}
	if rq.user.TOTPEnabled() {
		n, err := c.opts.Store.RecoveryCodesLeft(ctx, rq.user.ID)
		if err != nil {
			return err
		}
		d.CodesLeft = n
	}
	list, err := c.opts.Store.UserSessions(ctx, rq.user.ID)
	if err != nil {
		return err
	}
	for _, s := range list {
		if s.Stage != stageFull {
			continue
		}
		d.Sessions = append(d.Sessions, sessionRow{Session: s, Handle: sessionHandle(s), Current: s.IDHash == rq.session.IDHash})
	}
	return c.render(w, r, rq, http.StatusOK, "account", view{Title: "Account", Nav: "account", Flash: accountFlash[r.URL.Query().Get("done")], Data: d})
}
