package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

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
	// The archives in MinIO are rewritten by the next retention pass (see
	// rewriteArchives); queuing it here makes it part of the anonymization.
	if _, err := tx.Exec(ctx, `INSERT INTO audit_archive_rewrites (user_id, email, pseudonym) VALUES ($1, $2, $3)`,
		userID, email, pseudonym); err != nil {
		return fmt.Errorf("queue archive rewrite: %w", err)
	}
	return nil
}

// anonymizer rewrites archived records the way anonymizeEvents rewrites the hot table.
type anonymizer struct {
	userID, email, pseudonym     string
	quotedEmail, quotedPseudonym []byte
}

func newAnonymizer(userID, email, pseudonym string) anonymizer {
	a := anonymizer{userID: userID, email: email, pseudonym: pseudonym}
	if email != "" {
		a.quotedEmail, a.quotedPseudonym = jsonString(email), jsonString(pseudonym)
	}
	return a
}

func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// apply rewrites r in place and reports whether it named the user.
func (a anonymizer) apply(r *Record) bool {
	isActor := r.ActorID == a.userID || (a.email != "" && r.ActorID == a.email)
	named := isActor || strings.Contains(r.Target, a.userID) || bytes.Contains(r.Detail, []byte(a.userID)) ||
		(a.email != "" && bytes.Contains(r.Detail, a.quotedEmail))
	if !named {
		return false
	}
	if isActor {
		r.ActorID = a.pseudonym
	}
	if isActor || r.ActorID == "" {
		r.ClientIP = TruncateIP(r.ClientIP)
	}
	r.Target = strings.ReplaceAll(r.Target, a.userID, a.pseudonym)
	if len(r.Detail) > 0 {
		d := []byte(r.Detail)
		if a.email != "" {
			d = bytes.ReplaceAll(d, a.quotedEmail, a.quotedPseudonym)
		}
		r.Detail = json.RawMessage(bytes.ReplaceAll(d, []byte(a.userID), []byte(a.pseudonym)))
	}
	return true
}

// TruncateIP keeps the network of an address: IPv4 to its /24, IPv6 to its /48; an
// unparsable value becomes "" (same as corpintel_truncate_ip in SQL).
func TruncateIP(s string) string {
	if s == "" {
		return ""
	}
	s, _, _ = strings.Cut(s, "/")
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	bits := 48
	if addr.Is4() {
		bits = 24
	}
	p, _ := addr.Prefix(bits)
	return p.Addr().String()
}
