package audit

import (
	"context"
	"errors"
	"fmt"

	"github.com/corpintel/corpintel/api/gdpr"
	"github.com/jackc/pgx/v5"
)

// GDPRSource contributes the audit trail to user exports and anonymization. Register it
// before the users source (it reads the user's email to find login attempts by email).
func GDPRSource() gdpr.Source {
	return gdpr.Source{Name: "audit_events", Export: exportEvents, Anonymize: anonymizeEvents}
}

// exportEvents returns every event the user is the actor of, oldest first.
func exportEvents(ctx context.Context, q gdpr.Querier, userID string) (any, error) {
	rows, err := q.Query(ctx, selectColumns+` WHERE actor_id = $1 ORDER BY time, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("select events: %w", err)
	}
	return scanRecords(rows)
}

// anonymizeEvents rewrites the user's traces in the hot table: the actor id becomes the
// pseudonym (so one actor stays one actor), the user id is replaced inside targets and
// details, the email disappears from details (login attempts record it), and the client
// addresses of the user's own requests are truncated to their /24 (IPv4) or /48 (IPv6);
// other actors' rows that merely name the user keep their addresses.
func anonymizeEvents(ctx context.Context, tx pgx.Tx, userID, pseudonym string) error {
	var email string
	err := tx.QueryRow(ctx, `SELECT lower(email) FROM users WHERE id = $1`, userID).Scan(&email)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read email: %w", err)
	}
	// The email is only replaced as a whole JSON string ("a@b.example"): replacing one
	// quoted token by another always leaves valid JSON. The user id (a UUID) and the
	// pseudonym contain no JSON-special characters, so they are replaced anywhere.
	_, err = tx.Exec(ctx, `
		UPDATE audit_events SET
			actor_id = CASE WHEN actor_id = $1 OR (actor_id = $3 AND $3 <> '') THEN $2 ELSE actor_id END,
			target = replace(target, $1, $2),
			client_ip = CASE WHEN actor_id IN ($1, $3) OR actor_id = ''
				THEN corpintel_truncate_ip(client_ip) ELSE client_ip END,
			detail = CASE WHEN detail IS NULL THEN NULL ELSE
				replace(CASE WHEN $3 = '' THEN detail::text
					ELSE replace(detail::text, to_jsonb($3::text)::text, to_jsonb($2::text)::text) END,
					$1, $2)::jsonb END
		WHERE actor_id = $1 OR strpos(target, $1) > 0 OR strpos(detail::text, $1) > 0
			OR ($3 <> '' AND (actor_id = $3 OR strpos(detail::text, to_jsonb($3::text)::text) > 0))`,
		userID, pseudonym, email)
	if err != nil {
		return fmt.Errorf("rewrite events: %w", err)
	}
	return nil
}
