package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RevokeUser ends every session of a user inside tx: all refresh-token families are
// revoked, so their refresh tokens and every access token carrying their sid stop
// working on all replicas when tx commits. The users package calls it on delete, demotion,
// deactivation, password reset and GDPR anonymization.
func RevokeUser(ctx context.Context, tx pgx.Tx, userID, reason string) error {
	if _, err := tx.Exec(ctx, `UPDATE auth_refresh_families SET revoked_at = now(), revoke_reason = $2
		WHERE user_id = $1 AND revoked_at IS NULL`, userID, reason); err != nil {
		return fmt.Errorf("auth: revoke sessions of user %s: %w", userID, err)
	}
	evictLocal(ctx, msgUser+userID)
	return notifyTx(ctx, tx, msgUser+userID)
}

// revokeFamily revokes one login session.
func revokeFamily(ctx context.Context, q querier, familyID, reason string) error {
	if _, err := q.Exec(ctx, `UPDATE auth_refresh_families SET revoked_at = now(), revoke_reason = $2
		WHERE id = $1 AND revoked_at IS NULL`, familyID, reason); err != nil {
		return fmt.Errorf("auth: revoke session %s: %w", familyID, err)
	}
	return notifyTx(ctx, q, msgFamily+familyID)
}

// revokeJTI revokes one access token until it would have expired.
func revokeJTI(ctx context.Context, q querier, jti string, exp time.Time) error {
	if _, err := q.Exec(ctx, `INSERT INTO auth_revoked_tokens (jti, expires_at) VALUES ($1, $2)
		ON CONFLICT (jti) DO NOTHING`, jti, exp); err != nil {
		return fmt.Errorf("auth: revoke token %s: %w", jti, err)
	}
	return notifyTx(ctx, q, msgJTI+jti)
}
