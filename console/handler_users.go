package console

import (
	"net/http"
	"time"
)

type usersData struct {
	Users   []User
	Invites []inviteRow
	// The invite form, and the link of the invite just made (shown once).
	Email, Role             string
	InviteLink, InviteEmail string
	InviteExpires           time.Time
}

type inviteRow struct {
	Invite
	State string
}

func (c *Console) usersData(r *http.Request) (usersData, error) {
	ctx := r.Context()
	users, err := c.opts.Store.Users(ctx)
	if err != nil {
		return usersData{}, err
	}
	invites, err := c.opts.Store.Invites(ctx)
	if err != nil {
		return usersData{}, err
	}
	d := usersData{Users: users, Role: "viewer"}
	now := c.now()
	for _, i := range invites {
		d.Invites = append(d.Invites, inviteRow{Invite: i, State: i.State(now)})
	}
	return d, nil
}

// serveUsers lists users and invites (admins only).
func serveUsers(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	d, err := c.usersData(r)
	if err != nil {
		return err
	}
	return c.render(w, r, rq, http.StatusOK, "users", view{Title: "Users", Nav: "users", Data: d})
}
