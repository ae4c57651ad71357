package auth

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// Login attempts are serialized per account and per client address with transaction-scoped
// advisory locks in the two-int4 key space (which does not overlap the bigint keys of
// keysLockID and the migration lock), so replicas sharing the database agree on them.
const (
	lockClassAccount int32 = 0x6c676e61 // "lgna"
	lockClassIP      int32 = 0x6c676e69 // "lgni"
)

// attempt is a login attempt reserved in auth_login_failures: the ids of its account and
// client-address rows.
type attempt struct{ accountRow, ipRow int64 }

// reserveAttempt records a login attempt for account from ip before its password is
// verified, or reports how many seconds the client must wait (and records nothing).
//
// Counting and recording are one step under locks on the account and the address, so
// concurrent logins, on this replica or another, cannot all pass the check before any of
// them is counted: at most accountMax (ipMax) verifications run per account (address)
// and window. A reserved attempt counts as a failure unless forgiveAttempt says it
// succeeded; one whose request dies midway stays counted, which fails closed.
func (s *Service) reserveAttempt(ctx context.Context, account, ip string, now time.Time) (attempt, int, error) {
	var at attempt
	wait := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Every transaction locks the account before the address; whoever holds an address
		// lock waits for nothing, so the order cannot deadlock.
		for _, l := range []struct {
			class int32
			key   string
		}{{lockClassAccount, account}, {lockClassIP, ip}} {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, l.class, l.key); err != nil {
				return fmt.Errorf("auth: lock login attempts: %w", err)
			}
		}
		// Read after the locks (READ COMMITTED: a new snapshot per statement), so the
		// count includes the attempt the previous lock holder committed.
		since := now.Add(-s.window)
		var nAcc, nIP int
		var oldestAcc, oldestIP *time.Time
		if err := tx.QueryRow(ctx, `SELECT
				count(*) FILTER (WHERE scope = 'account' AND key = $1), min(at) FILTER (WHERE scope = 'account' AND key = $1),
				count(*) FILTER (WHERE scope = 'ip' AND key = $2), min(at) FILTER (WHERE scope = 'ip' AND key = $2)
			FROM auth_login_failures
			WHERE at > $3 AND ((scope = 'account' AND key = $1) OR (scope = 'ip' AND key = $2))`,
			account, ip, since).Scan(&nAcc, &oldestAcc, &nIP, &oldestIP); err != nil {
			return fmt.Errorf("auth: count failed logins: %w", err)
		}
		if nAcc >= s.accountMax && oldestAcc != nil {
			wait = max(wait, secondsUntil(oldestAcc.Add(s.window), now))
		}
		if nIP >= s.ipMax && oldestIP != nil {
			wait = max(wait, secondsUntil(oldestIP.Add(s.window), now))
		}
		if wait > 0 {
			return nil
		}
		if err := tx.QueryRow(ctx, `WITH ins AS (
				INSERT INTO auth_login_failures (scope, key, at) VALUES ('account', $1, $3), ('ip', $2, $3) RETURNING scope, id)
			SELECT (SELECT id FROM ins WHERE scope = 'account'), (SELECT id FROM ins WHERE scope = 'ip')`,
			account, ip, now).Scan(&at.accountRow, &at.ipRow); err != nil {
			return fmt.Errorf("auth: record login attempt: %w", err)
		}
		return nil
	})
	if err != nil {
		return attempt{}, 0, err
	}
	return at, wait, nil
}

func secondsUntil(t, now time.Time) int {
	return max(1, int(math.Ceil(t.Sub(now).Seconds())))
}

// forgiveAttempt is the bookkeeping of a successful login: it never counts against the
// client address, and it forgives the account's attempts reserved up to and including it
// (ids of one account grow under its lock). Attempts that other requests reserved after
// it, still verifying, stay counted: a success cannot open the throttle for
// verifications already past it.
func (s *Service) forgiveAttempt(ctx context.Context, account string, at attempt) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM auth_login_failures
		WHERE id = $1 OR (scope = 'account' AND key = $2 AND id <= $3)`, at.ipRow, account, at.accountRow); err != nil {
		return fmt.Errorf("auth: clear failed logins: %w", err)
	}
	return nil
}
