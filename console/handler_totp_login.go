package console

import (
	"net/http"
	"strconv"
)

// serveTOTPLogin checks the second factor: a TOTP code (each accepted once) or an
// unused recovery code. Failures count towards the account's throttle.
func serveTOTPLogin(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	u := *rq.user
	next := r.PostFormValue("next")
	again := func(status int, msg string) error {
		return c.render(w, r, rq, status, "login_totp", view{Title: "Second factor", Error: msg, Data: loginData{Name: u.Name, Next: next}})
	}
	if msg, err := c.lockout(ctx, u.Name, rq.client); err != nil {
		return err
	} else if msg != "" {
		c.audit(ctx, rq, "locked", "user:"+u.Name, "second factor refused while locked")
		return again(http.StatusTooManyRequests, msg)
	}
	code := r.PostFormValue("code")
	how := ""
	if step, ok := totpStep(u.TOTPSecret, code, c.now()); ok {
		fresh, err := c.opts.Store.AcceptTOTPStep(ctx, u.ID, step)
		if err != nil {
			return err
		}
		if fresh {
			how, u.TOTPLastStep = "password and TOTP", step
		}
	} else if len(code) >= 10 {
		used, err := c.opts.Store.UseRecoveryCode(ctx, u.ID, recoveryHash(code))
		if err != nil {
			return err
		}
		if used {
			left, err := c.opts.Store.RecoveryCodesLeft(ctx, u.ID)
			if err != nil {
				return err
			}
			how = "password and a recovery code (" + strconv.Itoa(left) + " left)"
		}
	}
	if how == "" {
		c.recordFailure(ctx, u.Name, rq.client)
		c.audit(ctx, rq, "failure", "user:"+u.Name, "wrong or reused second-factor code")
		return again(http.StatusUnauthorized, "That code is wrong (or was used already). Enter the current code from your app.")
	}
	if err := c.opts.Store.ClearLoginFailures(ctx, accountKey(u.Name)); err != nil {
		return err
	}
	return c.completeLogin(w, r, rq, u, how, next)
}
