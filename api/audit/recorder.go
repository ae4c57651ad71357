// Package audit keeps the API's audit trail: a durable PostgreSQL recorder for the
// events the web middleware produces, the admin listing (GET /audit) with filters and
// cursor pagination, and retention (application 90 days, access 1 year, security
// forever) that archives expiring records to MinIO as gzip JSON lines before deleting
// them from the hot table.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Recorder writes audit events to the audit_events table. It implements web.Auditor.
type Recorder struct {
	db    *pgxpool.Pool
	log   *slog.Logger
	now   func() time.Time
	ret   retention
	store ObjectStore
}

var _ web.Auditor = (*Recorder)(nil)

// insertEvent is the one statement every audited request runs. pgx's default
// QueryExecModeCacheStatement prepares it once per connection and reuses the plan, so
// recording costs one round trip with no parsing on the server.
const insertEvent = `INSERT INTO audit_events
	(time, actor_id, actor_role, action, target, outcome, status, client_ip, request_id, kind, detail)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`

// NewRecorder returns a recorder writing through db. store receives the retention
// archives; it may be nil when this process never runs retention.
func NewRecorder(db *pgxpool.Pool, store ObjectStore, log *slog.Logger, now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{db: db, log: log, now: now, store: store, ret: defaultRetention()}
}

// Record stores e durably: it returns only after PostgreSQL committed the row.
func (r *Recorder) Record(ctx context.Context, e web.Event) error {
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	if e.Kind == "" {
		e.Kind = web.KindApplication
	}
	if e.Outcome == "" {
		e.Outcome = outcomeOf(e.Status)
	}
	var detail []byte
	if len(e.Detail) > 0 {
		b, err := json.Marshal(e.Detail)
		if err != nil {
			return fmt.Errorf("audit %s: encode detail: %w", e.Action, err)
		}
		detail = b
	}
	_, err := r.db.Exec(ctx, insertEvent, e.Time.UTC(), e.ActorID, e.ActorRole, e.Action, e.Target,
		e.Outcome, e.Status, e.ClientIP, e.RequestID, string(e.Kind), detail)
	if err != nil {
		return fmt.Errorf("audit %s: insert event: %w", e.Action, err)
	}
	return nil
}

func outcomeOf(status int) string {
	switch {
	case status == 401 || status == 403:
		return "denied"
	case status >= 400:
		return "failure"
	}
	return "success"
}
