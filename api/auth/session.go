package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/corpintel/corpintel/api/rbac"
	"github.com/jackc/pgx/v5"
)

// TokenResponse is the answer of login and refresh.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

// newRefreshToken returns a random opaque token and the SHA-256 hash that is stored.
func newRefreshToken() (token string, hash []byte) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashRefresh(token)
}

func hashRefresh(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// newSession starts a login session (a refresh-token family) and returns its first pair.
func (s *Service) newSession(ctx context.Context, userID string, role rbac.Role, now time.Time) (*TokenResponse, error) {
	var familyID, refresh string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO auth_refresh_families (user_id, created_at, expires_at)
			VALUES ($1, $2, $3) RETURNING id`, userID, now, now.Add(s.sessionAge)).Scan(&familyID); err != nil {
			return fmt.Errorf("auth: start session: %w", err)
		}
		var hash []byte
		refresh, hash = newRefreshToken()
		return insertRefresh(ctx, tx, hash, familyID, now, minTime(now.Add(RefreshTTL), now.Add(s.sessionAge)))
	})
	if err != nil {
		return nil, err
	}
	return s.pair(userID, role, familyID, refresh, now)
}

func insertRefresh(ctx context.Context, tx pgx.Tx, hash []byte, familyID string, now, exp time.Time) error {
	if _, err := tx.Exec(ctx, `INSERT INTO auth_refresh_tokens (token_hash, family_id, issued_at, expires_at)
		VALUES ($1, $2, $3, $4)`, hash, familyID, now, exp); err != nil {
		return fmt.Errorf("auth: store refresh token: %w", err)
	}
	return nil
}

func (s *Service) pair(userID string, role rbac.Role, familyID, refresh string, now time.Time) (*TokenResponse, error) {
	access, _, _, err := s.issueAccess(userID, role, familyID, now)
	if err != nil {
		return nil, err
	}
	return &TokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: int(s.accessTTL / time.Second), RefreshToken: refresh}, nil
}

// IssueSession starts a session for an existing, active user without a password check
// and returns its token pair. It is for tests and tools that already know who the user
// is (apitest's Token helper); routes never call it.
func (s *Service) IssueSession(ctx context.Context, userID string) (*TokenResponse, error) {
	var role string
	var active bool
	if err := s.pool.QueryRow(ctx, `SELECT role, active FROM users WHERE id = $1`, userID).Scan(&role, &active); err != nil {
		return nil, fmt.Errorf("auth: issue session for %s: %w", userID, err)
	}
	if !active {
		return nil, fmt.Errorf("auth: issue session for %s: user is not active", userID)
	}
	return s.newSession(ctx, userID, rbac.Role(role), s.now().UTC())
}

// refreshOutcome tells the handler what happened to a presented refresh token.
type refreshOutcome int

const (
	refreshOK refreshOutcome = iota
	refreshInvalid
	refreshReused
)

// refresh spends a refresh token and returns the next pair of its family. A token that
// was already spent revokes the whole family (someone holds a stolen copy).
func (s *Service) refresh(ctx context.Context, token string, now time.Time) (out refreshOutcome, userID, familyID string, resp *TokenResponse, err error) {
	var role string
	var next string
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var spent, famRevoked *time.Time
		var exp, famExp time.Time
		var active bool
		err := tx.QueryRow(ctx, `SELECT t.family_id, t.spent_at, t.expires_at, f.user_id, f.revoked_at, f.expires_at, u.role, u.active
			FROM auth_refresh_tokens t
			JOIN auth_refresh_families f ON f.id = t.family_id
			JOIN users u ON u.id = f.user_id
			WHERE t.token_hash = $1
			FOR UPDATE OF t, f`, hashRefresh(token)).Scan(&familyID, &spent, &exp, &userID, &famRevoked, &famExp, &role, &active)
		if errors.Is(err, pgx.ErrNoRows) {
			out = refreshInvalid
			return nil
		}
		if err != nil {
			return fmt.Errorf("auth: look up refresh token: %w", err)
		}
		switch {
		case spent != nil:
			out = refreshReused
			if famRevoked != nil {
				return nil // already revoked (e.g. an earlier reuse); nothing more to do
			}
			return revokeFamily(ctx, tx, familyID, "refresh token reuse")
		case famRevoked != nil || !now.Before(exp) || !now.Before(famExp) || !active:
			out = refreshInvalid
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE auth_refresh_tokens SET spent_at = $2 WHERE token_hash = $1`, hashRefresh(token), now); err != nil {
			return fmt.Errorf("auth: spend refresh token: %w", err)
		}
		var hash []byte
		next, hash = newRefreshToken()
		out = refreshOK
		return insertRefresh(ctx, tx, hash, familyID, now, minTime(now.Add(RefreshTTL), famExp))
	})
	if err != nil {
		return 0, "", "", nil, err
	}
	if out == refreshReused {
		s.handle(ctx, msgFamily+familyID) // evict here at once; other replicas via NOTIFY
	}
	if out != refreshOK {
		return out, userID, familyID, nil, nil
	}
	resp, err = s.pair(userID, rbac.Role(role), familyID, next, now)
	return out, userID, familyID, resp, err
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// logout revokes one access token and its session.
func (s *Service) logout(ctx context.Context, jti string, exp time.Time, familyID string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := revokeJTI(ctx, tx, jti, exp); err != nil {
			return err
		}
		if familyID != "" {
			return revokeFamily(ctx, tx, familyID, "logout")
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.handle(ctx, msgJTI+jti)
	if familyID != "" {
		s.handle(ctx, msgFamily+familyID)
	}
	return nil
}
