package console

import (
	"context"
	"errors"
	"net/http"
)

type inviteData struct {
	Token, Role, Email, Name, FullName string
}

// openInvite finds the open invite of the URL's token (a used, revoked or expired
// one is as good as unknown).
func (c *Console) openInvite(ctx context.Context, token string) (Invite, error) {
	inv, err := c.opts.Store.InviteByToken(ctx, tokenHash(token))
	if errors.Is(err, ErrNotFound) || (err == nil && inv.State(c.now()) != "open") {
		return Invite{}, errorf(http.StatusNotFound, "This invite link is not valid: it was used already, revoked, has expired or never existed. Ask an admin for a new one.")
	}
	return inv, err
}

// serveInviteForm shows the form that turns an invite into an account.
func serveInviteForm(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	token := r.PathValue("token")
	inv, err := c.openInvite(r.Context(), token)
	if err != nil {
		return err
	}
	return c.render(w, r, rq, http.StatusOK, "invite", view{Title: "Create your account", Data: inviteData{Token: token, Role: inv.Role}})
}
