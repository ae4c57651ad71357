package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
)

// Claims are the access token's claims: sub (user id), role, jti, iss, aud, exp, nbf,
// iat, and sid, the refresh-token family (login session) the token belongs to.
type Claims struct {
	Role string `json:"role"`
	SID  string `json:"sid"`
	jwt.RegisteredClaims
}

// issueAccess signs an access token for user in family sid.
func (s *Service) issueAccess(userID string, role rbac.Role, sid string, now time.Time) (token, jti string, exp time.Time, err error) {
	kr := s.keys.Load()
	jti = newUUID()
	now = now.Truncate(time.Second)
	exp = now.Add(s.accessTTL)
	c := Claims{Role: string(role), SID: sid, RegisteredClaims: jwt.RegisteredClaims{
		Subject: userID, ID: jti, Issuer: s.issuer, Audience: jwt.ClaimStrings{s.audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
	}}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = kr.activeKID
	token, err = t.SignedString(kr.signer)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("auth: sign access token: %w", err)
	}
	return token, jti, exp, nil
}

// errUnknownKID marks a token whose kid is not (yet) in this replica's keyring.
var errUnknownKID = errors.New("unknown kid")

// parse verifies the signature and the registered claims of an access token.
func (s *Service) parse(token string, kr *keyring) (*Claims, error) {
	var c Claims
	_, err := s.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := kr.public[kid]
		if !ok {
			return nil, errUnknownKID
		}
		return k, nil
	})
	if err != nil {
		return nil, err
	}
	if c.NotBefore == nil || c.IssuedAt == nil || c.Subject == "" || c.ID == "" || c.SID == "" || !rbac.Role(c.Role).Valid() {
		return nil, errors.New("missing claims")
	}
	// A token cannot outlive the access TTL, whatever exp claims.
	if c.ExpiresAt.Sub(c.IssuedAt.Time) > s.accessTTL {
		return nil, errors.New("lifetime exceeds the access-token TTL")
	}
	return &c, nil
}

// Authenticate implements web.Authenticator: it verifies an access token and returns its
// caller, or a 401 problem. A token seen before on this replica is answered from the
// in-process cache (while notifications flow); otherwise its signature and claims are
// checked, and PostgreSQL confirms that the token and its session are not revoked and
// that the user still exists, is active and still has the token's role.
func (s *Service) Authenticate(ctx context.Context, token string) (*web.Principal, error) {
	now := s.now()
	useCache := s.listening.Load()
	if useCache {
		if p, ok := s.cache.get(token, now); ok {
			return p, nil // no metric here: a shared counter would cost more than the lookup
		}
	}
	s.metrics.verifications.Inc()
	gen := s.cache.generation()
	c, err := s.parse(token, s.keys.Load())
	if errors.Is(err, errUnknownKID) && s.reloadForUnknownKID(ctx) {
		c, err = s.parse(token, s.keys.Load())
	}
	if err != nil {
		return nil, web.ErrUnauthorized()
	}
	p, err := s.checkLive(ctx, c)
	if err != nil {
		return nil, err
	}
	if useCache {
		s.cache.put(token, &cacheEntry{p: p, sid: c.SID, exp: p.ExpiresAt}, gen, now)
	}
	return p, nil
}

// checkLive asks PostgreSQL whether the token may still be used.
func (s *Service) checkLive(ctx context.Context, c *Claims) (*web.Principal, error) {
	if !web.ValidUUID(c.Subject) || !web.ValidUUID(c.SID) || !web.ValidUUID(c.ID) {
		return nil, web.ErrUnauthorized()
	}
	var email, role string
	var active, sessionOK, revoked bool
	err := s.pool.QueryRow(ctx, `SELECT u.email, u.role, u.active,
			EXISTS (SELECT 1 FROM auth_refresh_families f WHERE f.id = $2 AND f.user_id = u.id AND f.revoked_at IS NULL),
			EXISTS (SELECT 1 FROM auth_revoked_tokens r WHERE r.jti = $3)
		FROM users u WHERE u.id = $1`, c.Subject, c.SID, c.ID).Scan(&email, &role, &active, &sessionOK, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, web.ErrUnauthorized()
	}
	if err != nil {
		return nil, fmt.Errorf("auth: check token: %w", err)
	}
	if !active || !sessionOK || revoked || role != c.Role {
		return nil, web.ErrUnauthorized()
	}
	return &web.Principal{UserID: c.Subject, Email: email, Role: rbac.Role(role), TokenID: c.ID, ExpiresAt: c.ExpiresAt.Time}, nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
