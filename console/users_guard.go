package console

import (
	"context"
	"errors"
	"net/http"
	"strconv"
)

// targetUser reads the {id} of a user route.
func (c *Console) targetUser(ctx context.Context, r *http.Request) (User, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return User{}, errorf(http.StatusNotFound, "No such user.")
	}
	u, err := c.opts.Store.UserByID(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return User{}, errorf(http.StatusNotFound, "No such user.")
	}
	return u, err
}

// lastAdmin reports whether u is the only active admin (who must stay one: someone has
// to be able to manage users without a shell on the host).
func (c *Console) lastAdmin(ctx context.Context, u User) (bool, error) {
	if u.Role != "admin" || !u.Active {
		return false, nil
	}
	users, err := c.opts.Store.Users(ctx)
	if err != nil {
		return false, err
	}
	for _, o := range users {
		if o.ID != u.ID && o.Active && o.Role == "admin" {
			return false, nil
		}
	}
	return true, nil
}

// usersPageError re-renders the users page with a message.
func (c *Console) usersPageError(w http.ResponseWriter, r *http.Request, rq *request, msg string) error {
	d, err := c.usersData(r)
	if err != nil {
		return err
	}
	return c.render(w, r, rq, http.StatusUnprocessableEntity, "users", view{Title: "Users", Nav: "users", Error: msg, Data: d})
}
