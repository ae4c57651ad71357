// Package auth is the API's authentication: argon2id password logins, short-lived EdDSA
// access tokens signed with rotating keys kept (sealed) in PostgreSQL, rotating refresh
// tokens in families with reuse detection, revocation, failed-login throttling and the
// JWKS document. All security state is authoritative in PostgreSQL; each replica caches
// verified tokens in process and learns about revocations and new keys through
// LISTEN/NOTIFY.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corpintel/corpintel/api/web"
	"github.com/corpintel/corpintel/internal/password"
	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Token lifetimes.
const (
	DefaultAccessTTL = 15 * time.Minute
	// MaxAccessTTL caps the configurable access-token lifetime. Rotation retires a
	// verify-only key MaxAccessTTL+Leeway after its demotion, when no token it signed can
	// be valid whatever the replicas' configuration.
	MaxAccessTTL      = time.Hour
	Leeway            = 30 * time.Second
	RefreshTTL        = 7 * 24 * time.Hour  // one refresh token, unless spent earlier
	DefaultSessionAge = 30 * 24 * time.Hour // a family (login session) ends at the latest then
	DefaultRotate     = 30 * 24 * time.Hour
	reloadMinDelay    = 5 * time.Second // unknown-kid reloads at most this often
)

// Options configure a Service.
type Options struct {
	Pool     *pgxpool.Pool
	Log      *slog.Logger
	Audit    web.Auditor // for events outside a route's own record (refresh reuse)
	Issuer   string
	Audience string
	KEK      []byte
	Now      func() time.Time
	// AccessTTL is the access-token lifetime (default 15 min, at most MaxAccessTTL);
	// SessionMaxAge bounds a login session's refresh chain (default 30 days).
	AccessTTL, SessionMaxAge time.Duration
	// RotateEvery is the signing-key rotation period of Run (default 30 days).
	RotateEvery time.Duration
	// CacheSize bounds the verified-token cache (entries); 0 means 100 000.
	CacheSize int
	// Registerer, when set, gets the auth metrics (logins, token cache, refresh reuse,
	// key maintenance failures).
	Registerer prometheus.Registerer
	// Throttle limits; zero values take the defaults (5 per account, 20 per IP, 15 min).
	AccountFailures, IPFailures int
	FailureWindow               time.Duration
}

// Service issues and verifies tokens. It implements web.Authenticator and web.Module.
type Service struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	audit    web.Auditor
	issuer   string
	audience string
	kek      []byte
	now      func() time.Time

	accessTTL, sessionAge, rotateEvery time.Duration

	accountMax, ipMax int
	window            time.Duration
	// verify is password.Verify; tests wrap it to count the argon2 runs a login costs.
	verify func(pw []byte, phc string) (bool, error)

	keys       atomic.Pointer[keyring]
	reloadMu   sync.Mutex
	lastReload time.Time

	cache     *tokenCache
	listening atomic.Bool
	parser    *jwt.Parser
	metrics   *metrics
}

var (
	_ web.Authenticator = (*Service)(nil)
	_ web.Module        = (*Service)(nil)
)

// NewService checks the configuration, creates the first signing key when there is none
// and loads the keys. Call Run (or Listen and RunRotation) to follow other replicas.
func NewService(ctx context.Context, o Options) (*Service, error) {
	if o.Pool == nil {
		return nil, errors.New("auth: no database pool")
	}
	if _, err := aead(o.KEK); err != nil {
		return nil, err
	}
	if o.Issuer == "" || o.Audience == "" {
		return nil, errors.New("auth: JWT issuer and audience must be set (CORPINTEL_JWT_ISSUER, CORPINTEL_JWT_AUDIENCE)")
	}
	s := &Service{
		pool: o.Pool, log: o.Log, audit: o.Audit, issuer: o.Issuer, audience: o.Audience,
		kek: append([]byte(nil), o.KEK...), now: o.Now,
		accountMax: o.AccountFailures, ipMax: o.IPFailures, window: o.FailureWindow,
		verify:    password.Verify,
		cache:     newTokenCache(o.CacheSize),
		accessTTL: o.AccessTTL, sessionAge: o.SessionMaxAge, rotateEvery: o.RotateEvery,
	}
	if s.accessTTL <= 0 {
		s.accessTTL = DefaultAccessTTL
	}
	if s.accessTTL > MaxAccessTTL {
		return nil, fmt.Errorf("auth: access-token lifetime %s exceeds the maximum %s", s.accessTTL, MaxAccessTTL)
	}
	if s.sessionAge <= 0 {
		s.sessionAge = DefaultSessionAge
	}
	s.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(s.issuer), jwt.WithAudience(s.audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(s.now),
	)
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.accountMax <= 0 {
		s.accountMax = 5
	}
	if s.ipMax <= 0 {
		s.ipMax = 20
	}
	if s.window <= 0 {
		s.window = 15 * time.Minute
	}
	if err := ensureKey(ctx, s.pool, s.kek, s.now().UTC()); err != nil {
		return nil, err
	}
	if err := s.reloadKeys(ctx); err != nil {
		return nil, err
	}
	register(s)
	return s, nil
}

func (s *Service) reloadKeys(ctx context.Context) error {
	kr, err := loadKeyring(ctx, s.pool, s.kek)
	if err != nil {
		return err
	}
	s.keys.Store(kr)
	return nil
}

// reloadForUnknownKID reloads the keys when a token names a kid this replica does not
// know (another replica may have rotated before our NOTIFY arrived), at most once per
// reloadMinDelay so that garbage kids cannot hammer the database.
func (s *Service) reloadForUnknownKID(ctx context.Context) bool {
	s.reloadMu.Lock()
	if !s.lastReload.IsZero() && time.Since(s.lastReload) < reloadMinDelay {
		s.reloadMu.Unlock()
		return false
	}
	s.lastReload = time.Now()
	s.reloadMu.Unlock()
	if err := s.reloadKeys(ctx); err != nil {
		s.log.WarnContext(ctx, "reload signing keys", "err", err)
		return false
	}
	return true
}

// Run follows other replicas (Listen) and rotates keys every Options.RotateEvery
// (RunRotation) until ctx ends.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.Listen(ctx) })
	wg.Go(func() { s.RunRotation(ctx, s.rotateEvery) })
	wg.Wait()
}

// RunRotation rotates the signing key when the active one is older than every, retires
// keys whose tokens have expired and prunes expired security state. It checks hourly
// (or every `every`, if shorter), under an advisory lock so that one replica does it.
func (s *Service) RunRotation(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultRotate
	}
	tick := min(time.Hour, every)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if err := s.MaintainOnce(ctx, every); err != nil && ctx.Err() == nil {
			s.metrics.maintenanceErrors.Inc()
			s.log.ErrorContext(ctx, "signing key maintenance failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// MaintainOnce is one pass of RunRotation: rotate if the active key is older than every,
// retire keys whose tokens expired, prune expired security state, reload the keys.
func (s *Service) MaintainOnce(ctx context.Context, every time.Duration) error {
	now := s.now().UTC()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var got bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, keysLockID).Scan(&got); err != nil {
			return fmt.Errorf("auth: lock signing keys: %w", err)
		}
		if !got {
			return nil // another replica is at it
		}
		var newest time.Time
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(created_at), '-infinity') FROM auth_signing_keys WHERE state = 'active'`).Scan(&newest); err != nil {
			return fmt.Errorf("auth: active key age: %w", err)
		}
		if now.Sub(newest) >= every {
			kid, err := rotateTx(ctx, tx, s.kek, now)
			if err != nil {
				return err
			}
			s.log.InfoContext(ctx, "rotated JWT signing key", "kid", kid)
		} else {
			n, err := retireTx(ctx, tx, now)
			if err != nil {
				return err
			}
			if n > 0 {
				if err := notifyTx(ctx, tx, msgKeys); err != nil {
					return err
				}
			}
		}
		return pruneTx(ctx, tx, now, s.window)
	})
	if err != nil {
		return err
	}
	return s.reloadKeys(ctx)
}

// pruneTx deletes security state that can no longer matter.
func pruneTx(ctx context.Context, tx pgx.Tx, now time.Time, window time.Duration) error {
	for _, q := range []struct {
		sql string
		arg time.Time
	}{
		{`DELETE FROM auth_revoked_tokens WHERE expires_at < $1`, now.Add(-Leeway)},
		{`DELETE FROM auth_refresh_families WHERE expires_at < $1`, now.Add(-Leeway)},
		{`DELETE FROM auth_refresh_tokens WHERE expires_at < $1`, now.Add(-Leeway)},
		{`DELETE FROM auth_login_failures WHERE at < $1`, now.Add(-window)},
	} {
		if _, err := tx.Exec(ctx, q.sql, q.arg); err != nil {
			return fmt.Errorf("auth: prune: %w", err)
		}
	}
	return nil
}

// querier is what both a pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}
