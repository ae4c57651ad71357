package console

import (
	"net/http"

	"github.com/pquerna/otp"
)

// serveTOTPEnable turns TOTP on once a code from the new key checks out, and shows the
// recovery codes once.
func serveTOTPEnable(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	if rq.user.TOTPEnabled() {
		return seeOther(w, r, "/admin/account")
	}
	key, err := otp.NewKeyFromURL(rq.session.TOTPPending)
	if rq.session.TOTPPending == "" || err != nil {
		return seeOther(w, r, "/admin/account/totp")
	}
	step, ok := totpStep(key.Secret(), r.PostFormValue("code"), c.now())
	if !ok {
		c.audit(ctx, rq, "failure", "user:"+rq.user.Name, "wrong code")
		qr, err := qrDataURL(key)
		if err != nil {
			return err
		}
		return c.render(w, r, rq, http.StatusUnprocessableEntity, "totp_setup", view{Title: "Set up TOTP", Nav: "account",
			Error: "That code does not match; check the app's clock and enter the current code.", Data: totpSetupData{QR: qr, Secret: key.Secret()}})
	}
	u := *rq.user
	u.TOTPSecret, u.TOTPLastStep = key.Secret(), step
	if err := c.opts.Store.UpdateUser(ctx, u); err != nil {
		return err
	}
	codes, hashes := newRecoveryCodes()
	if err := c.opts.Store.SetRecoveryCodes(ctx, u.ID, hashes); err != nil {
		return err
	}
	rq.session.TOTPPending = ""
	if err := c.opts.Store.UpdateSession(ctx, *rq.session); err != nil {
		return err
	}
	*rq.user = u
	c.audit(ctx, rq, "success", "user:"+u.Name, "with 10 recovery codes")
	return c.render(w, r, rq, http.StatusOK, "totp_codes", view{Title: "TOTP is on", Nav: "account", Data: codes})
}
