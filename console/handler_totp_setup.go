package console

import (
	"html/template"
	"net/http"

	"github.com/pquerna/otp"
)

type totpSetupData struct {
	QR     template.URL
	Secret string
}

// serveTOTPSetup shows a new TOTP key (kept with the session until confirmed, so a
// reload shows the same one).
func serveTOTPSetup(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	if rq.user.TOTPEnabled() {
		return seeOther(w, r, "/admin/account")
	}
	key, err := c.pendingTOTPKey(r, rq)
	if err != nil {
		return err
	}
	qr, err := qrDataURL(key)
	if err != nil {
		return err
	}
	return c.render(w, r, rq, http.StatusOK, "totp_setup", view{Title: "Set up TOTP", Nav: "account", Data: totpSetupData{QR: qr, Secret: key.Secret()}})
}

// pendingTOTPKey returns the session's key being set up, making one if there is none.
func (c *Console) pendingTOTPKey(r *http.Request, rq *request) (*otp.Key, error) {
	if rq.session.TOTPPending != "" {
		if key, err := otp.NewKeyFromURL(rq.session.TOTPPending); err == nil {
			return key, nil
		}
	}
	key, err := c.newTOTPKey(rq.user.Name)
	if err != nil {
		return nil, err
	}
	rq.session.TOTPPending = key.URL()
	if err := c.opts.Store.UpdateSession(r.Context(), *rq.session); err != nil {
		return nil, err
	}
	return key, nil
}
