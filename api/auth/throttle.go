package auth

import (
	"context"
	"fmt"
	"math"
	"time"
)

// throttle reports how many seconds a login for account from ip must wait, or 0. The
// failures are counted in PostgreSQL, so every replica sees the same numbers and losing
// Redis resets nothing.
func (s *Service) throttle(ctx context.Context, account, ip string, now time.Time) (int, error) {
	since := now.Add(-s.window)
	var nAcc, nIP int
	var oldestAcc, oldestIP *time.Time
	err := s.pool.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE scope = 'account' AND key = $1), min(at) FILTER (WHERE scope = 'account' AND key = $1),
			count(*) FILTER (WHERE scope = 'ip' AND key = $2), min(at) FILTER (WHERE scope = 'ip' AND key = $2)
		FROM auth_login_failures
		WHERE at > $3 AND ((scope = 'account' AND key = $1) OR (scope = 'ip' AND key = $2))`,
		account, ip, since).Scan(&nAcc, &oldestAcc, &nIP, &oldestIP)
	if err != nil {
		return 0, fmt.Errorf("auth: count failed logins: %w", err)
	}
	wait := 0
	if nAcc >= s.accountMax && oldestAcc != nil {
		wait = max(wait, secondsUntil(oldestAcc.Add(s.window), now))
	}
	if nIP >= s.ipMax && oldestIP != nil {
		wait = max(wait, secondsUntil(oldestIP.Add(s.window), now))
	}
	return wait, nil
}

func secondsUntil(t, now time.Time) int {
	return max(1, int(math.Ceil(t.Sub(now).Seconds())))
}

func (s *Service) recordFailure(ctx context.Context, account, ip string, now time.Time) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO auth_login_failures (scope, key, at) VALUES ('account', $1, $3), ('ip', $2, $3)`,
		account, ip, now); err != nil {
		return fmt.Errorf("auth: record failed login: %w", err)
	}
	return nil
}

func (s *Service) clearAccountFailures(ctx context.Context, account string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM auth_login_failures WHERE scope = 'account' AND key = $1`, account); err != nil {
		return fmt.Errorf("auth: clear failed logins: %w", err)
	}
	return nil
}
