package users

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/corpintel/corpintel/api/auth"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/corpintel/corpintel/internal/password"
	"github.com/jackc/pgx/v5"
)

// Page is one page of the user list.
type Page struct {
	Items      []User `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// List returns up to limit users ordered by creation (then id), after cursor.
func List(ctx context.Context, q Querier, limit int, cursor string) (Page, error) {
	after, afterID, err := decodeCursor(cursor)
	if err != nil {
		return Page{}, err
	}
	rows, err := q.Query(ctx, `SELECT `+userCols+` FROM users
		WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2::uuid))
		ORDER BY created_at, id LIMIT $3`, after, afterID, limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("users: list: %w", err)
	}
	defer rows.Close()
	p := Page{Items: []User{}}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return Page{}, fmt.Errorf("users: list: %w", err)
		}
		p.Items = append(p.Items, u)
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("users: list: %w", err)
	}
	if len(p.Items) > limit {
		p.Items = p.Items[:limit]
		last := p.Items[limit-1]
		p.NextCursor = encodeCursor(last.CreatedAt, last.ID)
	}
	return p, nil
}

func encodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(t.UTC().Format(time.RFC3339Nano) + "|" + id))
}

var errBadCursor = web.Validation(web.FieldError{Field: "cursor", Message: "not a cursor returned by this endpoint"})

func decodeCursor(c string) (*time.Time, *string, error) {
	if c == "" {
		return nil, nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, nil, errBadCursor
	}
	ts, id, ok := strings.Cut(string(b), "|")
	t, err := time.Parse(time.RFC3339Nano, ts)
	if !ok || err != nil || !web.ValidUUID(id) {
		return nil, nil, errBadCursor
	}
	return &t, &id, nil
}

// Update is a partial change of a user; nil fields stay as they are.
type Update struct {
	Name     *string    `json:"name,omitempty"`
	Role     *rbac.Role `json:"role,omitempty"`
	Active   *bool      `json:"active,omitempty"`
	Password *string    `json:"password,omitempty"`
}

// Validate implements web.Validator.
func (u Update) Validate() []web.FieldError {
	var errs []web.FieldError
	if u.Name == nil && u.Role == nil && u.Active == nil && u.Password == nil {
		errs = append(errs, web.FieldError{Field: "", Message: "set at least one of name, role, active, password"})
	}
	if u.Name != nil {
		if msg := checkName(*u.Name); msg != "" {
			errs = append(errs, web.FieldError{Field: "name", Message: msg})
		}
	}
	if u.Role != nil && !u.Role.Valid() {
		errs = append(errs, web.FieldError{Field: "role", Message: "must be admin, analyst or viewer"})
	}
	if u.Password != nil {
		if msg := checkPassword(*u.Password); msg != "" {
			errs = append(errs, web.FieldError{Field: "password", Message: msg})
		}
	}
	return errs
}

// lockForChange locks the user row and, when the change could remove the last active
// admin, the admin rows too, and refuses that change. It returns the current user.
func lockForChange(ctx context.Context, tx pgx.Tx, id string, losesAdmin func(User) bool) (User, error) {
	if !web.ValidUUID(id) {
		return User{}, ErrNotFound
	}
	// Lock every active admin first (in id order) so that two concurrent demotions cannot
	// both see another admin left.
	if _, err := tx.Exec(ctx, `SELECT id FROM users WHERE role = 'admin' AND active ORDER BY id FOR UPDATE`); err != nil {
		return User{}, fmt.Errorf("users: lock admins: %w", err)
	}
	cur, err := scanUser(tx.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("users: lock %s: %w", id, err)
	}
	if cur.Role == rbac.Admin && cur.Active && losesAdmin(cur) {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE role = 'admin' AND active AND id <> $1`, id).Scan(&n); err != nil {
			return User{}, fmt.Errorf("users: count admins: %w", err)
		}
		if n == 0 {
			return User{}, ErrLastAdmin
		}
	}
	return cur, nil
}

// Apply changes a user. A role change, a deactivation or a password reset ends the
// user's sessions. It returns the changed user and the names of the changed fields.
func Apply(ctx context.Context, tx pgx.Tx, id string, ch Update) (User, []string, error) {
	if errs := ch.Validate(); len(errs) > 0 {
		return User{}, nil, web.Validation(errs...)
	}
	cur, err := lockForChange(ctx, tx, id, func(u User) bool {
		return (ch.Role != nil && *ch.Role != rbac.Admin) || (ch.Active != nil && !*ch.Active)
	})
	if err != nil {
		return User{}, nil, err
	}
	if cur.AnonymizedAt != nil {
		return User{}, nil, ErrAnonymized
	}
	var changed []string
	revoke := false
	var hash *string
	if ch.Name != nil && strings.TrimSpace(*ch.Name) != cur.Name {
		changed = append(changed, "name")
	}
	if ch.Role != nil && *ch.Role != cur.Role {
		changed, revoke = append(changed, "role"), true
	}
	if ch.Active != nil && *ch.Active != cur.Active {
		changed = append(changed, "active")
		revoke = revoke || !*ch.Active
	}
	if ch.Password != nil {
		h, err := password.Hash([]byte(*ch.Password))
		if err != nil {
			return User{}, nil, err
		}
		hash = &h
		changed, revoke = append(changed, "password"), true
	}
	var name *string
	if ch.Name != nil {
		n := strings.TrimSpace(*ch.Name)
		name = &n
	}
	var role *string
	if ch.Role != nil {
		r := string(*ch.Role)
		role = &r
	}
	u, err := scanUser(tx.QueryRow(ctx, `UPDATE users SET
			name = coalesce($2, name), role = coalesce($3, role), active = coalesce($4, active),
			password_hash = coalesce($5, password_hash)
		WHERE id = $1 RETURNING `+userCols, id, name, role, ch.Active, hash))
	if err != nil {
		return User{}, nil, fmt.Errorf("users: update %s: %w", id, err)
	}
	if revoke {
		if err := auth.RevokeUser(ctx, tx, id, "user "+strings.Join(changed, ", ")+" changed"); err != nil {
			return User{}, nil, err
		}
	}
	return u, changed, nil
}

// Delete removes a user; their sessions go with them (and every replica drops their
// cached tokens).
func Delete(ctx context.Context, tx pgx.Tx, id string) error {
	if _, err := lockForChange(ctx, tx, id, func(User) bool { return true }); err != nil {
		return err
	}
	if err := auth.RevokeUser(ctx, tx, id, "user deleted"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, id); err != nil {
		return fmt.Errorf("users: delete %s: %w", id, err)
	}
	return nil
}
