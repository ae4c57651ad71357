package users

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/corpintel/corpintel/api/auth"
	"github.com/jackc/pgx/v5"
)

// AnonymizedDomain is the domain of anonymized users' email addresses (RFC 2606: never
// deliverable).
const AnonymizedDomain = "anonymized.invalid"

// Anonymize irreversibly replaces a user's personal data inside tx (the GDPR module's
// transaction): the email becomes <pseudonym>@anonymized.invalid (or pseudonym itself if
// it contains '@'), the name becomes the pseudonym, the password hash is wiped, the user
// is deactivated and every session revoked, and failed-login records keyed by the old
// email are deleted. The row and its id stay, so audit records keep pointing at it.
// Anonymizing an anonymized user again is allowed (it renames). It refuses the last
// active admin (ErrLastAdmin) and returns ErrNotFound for an unknown id.
func Anonymize(ctx context.Context, tx pgx.Tx, userID, pseudonym string) error {
	pseudonym = strings.TrimSpace(pseudonym)
	if pseudonym == "" || len(pseudonym) > 200 {
		return errors.New("users: anonymize: the pseudonym must be 1 to 200 bytes")
	}
	email := pseudonym
	if !strings.Contains(email, "@") {
		email = pseudonym + "@" + AnonymizedDomain
	}
	cur, err := lockForChange(ctx, tx, userID, func(User) bool { return true })
	if err != nil {
		return withProblem(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM auth_login_failures WHERE scope = 'account' AND key = lower($1)`, cur.Email); err != nil {
		return fmt.Errorf("users: anonymize %s: forget failed logins: %w", userID, err)
	}
	_, err = tx.Exec(ctx, `UPDATE users SET email = $2, name = $3, password_hash = NULL, active = false,
		anonymized_at = coalesce(anonymized_at, now()) WHERE id = $1`, userID, email, pseudonym)
	if isUniqueViolation(err) {
		return fmt.Errorf("users: anonymize %s: %w (pseudonym %q in use)", userID, withProblem(ErrEmailTaken), pseudonym)
	}
	if err != nil {
		return fmt.Errorf("users: anonymize %s: %w", userID, err)
	}
	return auth.RevokeUser(ctx, tx, userID, "user anonymized")
}

// withProblem makes the package's sentinel errors carry their HTTP problem too, so a
// caller that only wraps them (the GDPR module) still answers 404/409, not 500, while
// errors.Is keeps working.
func withProblem(err error) error {
	var p error
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrEmailTaken), errors.Is(err, ErrLastAdmin), errors.Is(err, ErrAnonymized):
		p = problem(err)
	default:
		return err
	}
	return fmt.Errorf("%w: %w", err, p)
}

// Export returns everything the users and auth tables hold about a user, for a GDPR
// access request: the profile (never the password hash; "has_password" says whether
// one is set), the login sessions, and failed logins recorded against their email.
// It returns ErrNotFound for an unknown id.
func Export(ctx context.Context, db Querier, userID string) (map[string]any, error) {
	u, err := Get(ctx, db, userID)
	if err != nil {
		return nil, err
	}
	var hasPassword bool
	if err := db.QueryRow(ctx, `SELECT password_hash IS NOT NULL FROM users WHERE id = $1`, userID).Scan(&hasPassword); err != nil {
		return nil, fmt.Errorf("users: export %s: %w", userID, err)
	}
	profile := map[string]any{
		"id": u.ID, "email": u.Email, "name": u.Name, "role": string(u.Role), "active": u.Active,
		"created_at": u.CreatedAt, "updated_at": u.UpdatedAt, "has_password": hasPassword,
	}
	if u.AnonymizedAt != nil {
		profile["anonymized_at"] = *u.AnonymizedAt
	}
	sessions, err := collect(ctx, db, `SELECT id::text, created_at, expires_at, revoked_at, revoke_reason
		FROM auth_refresh_families WHERE user_id = $1 ORDER BY created_at`, []string{"id", "created_at", "expires_at", "revoked_at", "revoke_reason"}, userID)
	if err != nil {
		return nil, fmt.Errorf("users: export %s: sessions: %w", userID, err)
	}
	failures, err := collect(ctx, db, `SELECT at FROM auth_login_failures WHERE scope = 'account' AND key = lower($1) ORDER BY at`,
		[]string{"at"}, u.Email)
	if err != nil {
		return nil, fmt.Errorf("users: export %s: failed logins: %w", userID, err)
	}
	return map[string]any{"user": profile, "sessions": sessions, "failed_logins": failures}, nil
}

func collect(ctx context.Context, db Querier, sql string, cols []string, args ...any) ([]map[string]any, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []map[string]any{}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		m := make(map[string]any, len(cols))
		for i, c := range cols {
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
