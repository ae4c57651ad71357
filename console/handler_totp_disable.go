package console

import (
	"errors"
	"net/http"
)

// serveTOTPDisable turns TOTP off after the password and a current code.
func serveTOTPDisable(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	if !rq.user.TOTPEnabled() {
		return seeOther(w, r, "/admin/account")
	}
	// Always ask, whatever the last re-authentication: this weakens the account.
	rq.session.ReauthAt = rq.session.ReauthAt.Add(-reauthWindow)
	if err := c.reauthenticate(ctx, r, rq); err != nil {
		var fe *formError
		if !errors.As(err, &fe) {
			return err
		}
		c.audit(ctx, rq, "failure", "user:"+rq.user.Name, fe.msg)
		return errorf(http.StatusUnprocessableEntity, "%s Go back to your account and try again.", fe.msg)
	}
	u := *rq.user
	u.TOTPSecret, u.TOTPLastStep = "", 0
	if err := c.opts.Store.UpdateUser(ctx, u); err != nil {
		return err
	}
	if err := c.opts.Store.SetRecoveryCodes(ctx, u.ID, nil); err != nil {
		return err
	}
	c.audit(ctx, rq, "success", "user:"+u.Name, "")
	return seeOther(w, r, "/admin/account?done=totp-off")
}
