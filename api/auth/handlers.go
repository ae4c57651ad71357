package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/corpintel/corpintel/internal/password"
	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
)

// Routes implements web.Module. GET /auth/me belongs to the users module.
func (s *Service) Routes() []web.Route {
	return []web.Route{
		{Method: http.MethodPost, Path: "/auth/login", Perm: rbac.Public, Tag: "auth", Audit: "auth.login", MaxBody: 8 << 10,
			Summary: "Log in with email and password; returns an access token (15 min) and a refresh token",
			Request: LoginRequest{}, Response: TokenResponse{}, Handler: s.handleLogin},
		{Method: http.MethodPost, Path: "/auth/refresh", Perm: rbac.Public, Tag: "auth", Audit: "auth.refresh", MaxBody: 4 << 10,
			Summary: "Spend a refresh token for a new token pair (reusing a spent one ends the session)",
			Request: RefreshRequest{}, Response: TokenResponse{}, Handler: s.handleRefresh},
		{Method: http.MethodPost, Path: "/auth/logout", Perm: rbac.Authenticated, Tag: "auth", Audit: "auth.logout",
			Summary: "Revoke the presented access token and its session", Handler: s.handleLogout},
		{Method: http.MethodGet, Path: "/auth/jwks.json", Perm: rbac.Public, Tag: "auth",
			Summary: "Public keys that verify access tokens (JWK Set)", Response: JWKS{}, Handler: s.handleJWKS},
	}
}

// LoginRequest is the body of POST /auth/login.
type LoginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Validate implements web.Validator.
func (r LoginRequest) Validate() []web.FieldError {
	var errs []web.FieldError
	if e := strings.TrimSpace(r.Email); e == "" || len(e) > 254 || !utf8.ValidString(e) {
		errs = append(errs, web.FieldError{Field: "email", Message: "required, at most 254 bytes"})
	}
	if r.Password == "" || len(r.Password) > password.MaxLen {
		errs = append(errs, web.FieldError{Field: "password", Message: fmt.Sprintf("required, at most %d bytes", password.MaxLen)})
	}
	return errs
}

// RefreshRequest is the body of POST /auth/refresh.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// Validate implements web.Validator.
func (r RefreshRequest) Validate() []web.FieldError {
	if b, err := base64.RawURLEncoding.DecodeString(r.RefreshToken); err != nil || len(b) != 32 {
		return []web.FieldError{{Field: "refresh_token", Message: "must be a refresh token issued by /auth/login or /auth/refresh"}}
	}
	return nil
}

// DecodeLogin decodes and validates a login body (what the handler does; fuzzed).
func DecodeLogin(r io.Reader) (LoginRequest, error) {
	var req LoginRequest
	return req, decodeValid(r, &req)
}

// DecodeRefresh decodes and validates a refresh body (what the handler does; fuzzed).
func DecodeRefresh(r io.Reader) (RefreshRequest, error) {
	var req RefreshRequest
	return req, decodeValid(r, &req)
}

func decodeValid(r io.Reader, dst web.Validator) error {
	if err := web.DecodeJSON(r, dst); err != nil {
		return err
	}
	if errs := dst.Validate(); len(errs) > 0 {
		return web.Validation(errs...)
	}
	return nil
}

var errBadCredentials = func() *web.Problem {
	return web.NewProblem(http.StatusUnauthorized, "invalid email or password")
}

func (s *Service) handleLogin(c echo.Context) error {
	var req LoginRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	now := s.now().UTC()
	account := strings.ToLower(strings.TrimSpace(req.Email))
	ip := c.RealIP()
	web.SetAuditDetail(c, map[string]any{"email": account})

	// The attempt is counted before argon2 runs (see reserveAttempt); a failure leaves it
	// counted, a success forgives the account's failures.
	att, wait, err := s.reserveAttempt(ctx, account, ip, now)
	if err != nil {
		return err
	}
	if wait > 0 {
		p := web.NewProblem(http.StatusTooManyRequests, "too many failed logins; try again later")
		p.RetryAfter = wait
		s.metrics.logins.WithLabelValues("throttled").Inc()
		web.SetAuditDetail(c, map[string]any{"email": account, "throttled": true})
		return p
	}

	var id, role string
	var hash *string
	var active bool
	err = s.pool.QueryRow(ctx, `SELECT id, role, password_hash, active FROM users WHERE lower(email) = $1`, account).
		Scan(&id, &role, &hash, &active)
	ok := false
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		_, _ = s.verify([]byte(req.Password), password.DummyHash())
	case err != nil:
		return fmt.Errorf("auth: look up user: %w", err)
	case hash == nil || !active:
		_, _ = s.verify([]byte(req.Password), password.DummyHash())
	default:
		ok, err = s.verify([]byte(req.Password), *hash)
		if err != nil {
			s.log.ErrorContext(ctx, "stored password hash unusable", "user_id", id, "err", err)
			ok = false
		}
	}
	if id != "" {
		web.SetAuditActor(c, id)
	}
	if !ok {
		s.metrics.logins.WithLabelValues("failure").Inc()
		return errBadCredentials()
	}
	if err := s.forgiveAttempt(ctx, account, att); err != nil {
		return err
	}
	resp, err := s.newSession(ctx, id, rbac.Role(role), now)
	if err != nil {
		return err
	}
	s.metrics.logins.WithLabelValues("success").Inc()
	return web.JSON(c, http.StatusOK, resp)
}

func (s *Service) handleRefresh(c echo.Context) error {
	var req RefreshRequest
	if err := web.Bind(c, &req); err != nil {
		if p, ok := err.(*web.Problem); ok && p.Status == http.StatusUnprocessableEntity {
			return web.ErrUnauthorized() // a malformed token is just an invalid one
		}
		return err
	}
	ctx := c.Request().Context()
	out, userID, familyID, resp, err := s.refresh(ctx, req.RefreshToken, s.now().UTC())
	if err != nil {
		return err
	}
	if userID != "" {
		web.SetAuditActor(c, userID)
	}
	switch out {
	case refreshReused:
		s.metrics.refreshReuse.Inc()
		web.SetAuditDetail(c, map[string]any{"reuse_detected": true, "session": familyID})
		if s.audit != nil {
			e := web.Event{
				Time: s.now().UTC(), ActorID: userID, Action: "auth.refresh_reuse", Target: "session/" + familyID,
				Outcome: "denied", Status: http.StatusUnauthorized, ClientIP: c.RealIP(), RequestID: web.RequestID(c),
				Kind: web.KindSecurity, Detail: map[string]any{"session": familyID, "revoked": true},
			}
			if err := s.audit.Record(context.WithoutCancel(ctx), e); err != nil {
				return fmt.Errorf("auth: record refresh reuse: %w", err)
			}
		}
		s.log.WarnContext(ctx, "refresh token reuse: session revoked", "user_id", userID, "session", familyID, "request_id", web.RequestID(c))
		return web.ErrUnauthorized()
	case refreshInvalid:
		return web.ErrUnauthorized()
	}
	web.SetAuditDetail(c, map[string]any{"session": familyID})
	return web.JSON(c, http.StatusOK, resp)
}

func (s *Service) handleLogout(c echo.Context) error {
	p := web.PrincipalOf(c)
	if p == nil {
		return web.ErrUnauthorized()
	}
	// The middleware verified this token already; parse again only to learn its session.
	familyID := ""
	token, _ := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
	if cl, err := s.parse(strings.TrimSpace(token), s.keys.Load()); err == nil && cl.ID == p.TokenID {
		familyID = cl.SID
	}
	if err := s.logout(c.Request().Context(), p.TokenID, p.ExpiresAt, familyID); err != nil {
		return err
	}
	web.SetAuditDetail(c, map[string]any{"session": familyID})
	return c.NoContent(http.StatusNoContent)
}

// JWK is one public key of the JWK Set (RFC 8037 OKP/Ed25519).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// JWKS is the body of GET /auth/jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// JWKS returns the public keys of every non-retired signing key, newest first.
func (s *Service) JWKS() JWKS {
	kr := s.keys.Load()
	out := JWKS{Keys: make([]JWK, 0, len(kr.order))}
	for _, kid := range kr.order {
		out.Keys = append(out.Keys, JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(kr.public[kid]),
			Kid: kid, Use: "sig", Alg: "EdDSA"})
	}
	return out
}

func (s *Service) handleJWKS(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=60")
	return web.JSON(c, http.StatusOK, s.JWKS())
}
