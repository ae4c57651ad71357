package alerts

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/corpintel/corpintel/supervisor/alerts/notify"
)

// Store persists the alert state, so a supervisor restart neither loses alerts nor sends
// notifications twice.
type Store interface {
	// Load returns the saved state (empty when nothing was saved).
	Load(ctx context.Context) (State, error)
	// Save replaces the saved state with st, atomically.
	Save(ctx context.Context, st State) error
	// RecordDelivery appends a delivery outcome to the history.
	RecordDelivery(ctx context.Context, r notify.Result) error
	// Deliveries returns the newest delivery outcomes, newest first.
	Deliveries(ctx context.Context, limit int) ([]notify.Result, error)
}

// Schema is the DDL of the SQLite tables SQLStore uses; supervisor/state applies it as
// one numbered migration. Times are RFC 3339 text (UTC), sets and label maps JSON, so
// `sqlite3 state.db` can answer questions while the supervisor is down.
const Schema = `
CREATE TABLE alert_instances (
	fingerprint TEXT PRIMARY KEY,
	rule        TEXT NOT NULL,
	state       TEXT NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
	severity    TEXT NOT NULL,
	labels      TEXT NOT NULL,
	active_at   TEXT NOT NULL,
	fired_at    TEXT,
	resolved_at TEXT,
	data        TEXT NOT NULL
);
CREATE TABLE alert_groups (
	group_key  TEXT PRIMARY KEY,
	route      TEXT NOT NULL,
	next_flush TEXT NOT NULL,
	data       TEXT NOT NULL
);
CREATE TABLE alert_notification_log (
	group_key TEXT NOT NULL,
	channel   TEXT NOT NULL,
	dedup_key TEXT NOT NULL,
	sent_at   TEXT,
	firing    TEXT NOT NULL,
	resolved  TEXT NOT NULL,
	pending   TEXT,
	PRIMARY KEY (group_key, channel)
);
CREATE TABLE alert_silences (
	id         TEXT PRIMARY KEY,
	matchers   TEXT NOT NULL,
	starts_at  TEXT NOT NULL,
	ends_at    TEXT NOT NULL,
	created_by TEXT NOT NULL,
	comment    TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE TABLE alert_deliveries (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	at        TEXT NOT NULL,
	channel   TEXT NOT NULL,
	group_key TEXT NOT NULL,
	dedup_key TEXT NOT NULL,
	status    TEXT NOT NULL,
	alerts    INTEGER NOT NULL,
	attempts  INTEGER NOT NULL,
	ok        INTEGER NOT NULL,
	error     TEXT NOT NULL,
	test      INTEGER NOT NULL
);
CREATE INDEX alert_deliveries_channel_at ON alert_deliveries (channel, id);
`

// deliveryHistory is how many delivery outcomes the history keeps.
const deliveryHistory = 2000

// SQLStore is a [Store] over the supervisor's SQLite database (modernc.org/sqlite) with
// [Schema] applied.
type SQLStore struct {
	db *sql.DB
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore returns a store over db; the schema must be migrated already.
func NewSQLStore(db *sql.DB) *SQLStore { return &SQLStore{db: db} }

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func tsNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ts(t)
}

func parseTS(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain data types reach here
	}
	return string(b)
}

// Save implements [Store].
func (s *SQLStore) Save(ctx context.Context, st State) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("alerts store: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	for _, t := range []string{"alert_instances", "alert_groups", "alert_notification_log", "alert_silences"} {
		if _, err = tx.ExecContext(ctx, "DELETE FROM "+t); err != nil { // #nosec G202 -- fixed table names
			return fmt.Errorf("alerts store: clear %s: %w", t, err)
		}
	}
	for _, a := range st.Alerts {
		if _, err = tx.ExecContext(ctx, `INSERT INTO alert_instances (fingerprint, rule, state, severity, labels, active_at, fired_at, resolved_at, data)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.Fingerprint, a.Rule, a.State, a.Labels["severity"], js(a.Labels),
			ts(a.ActiveAt), tsNull(a.FiredAt), tsNull(a.ResolvedAt), js(a)); err != nil {
			return fmt.Errorf("alerts store: save alert %s: %w", a.Fingerprint, err)
		}
	}
	for _, g := range st.Groups {
		if _, err = tx.ExecContext(ctx, `INSERT INTO alert_groups (group_key, route, next_flush, data) VALUES (?, ?, ?, ?)`,
			g.Key, g.Route, ts(g.NextFlush), js(g)); err != nil {
			return fmt.Errorf("alerts store: save group %s: %w", g.Key, err)
		}
	}
	for _, l := range st.Log {
		var pending any
		if l.Pending != nil {
			pending = js(l.Pending)
		}
		if _, err = tx.ExecContext(ctx, `INSERT INTO alert_notification_log (group_key, channel, dedup_key, sent_at, firing, resolved, pending)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, l.GroupKey, l.Channel, l.DedupKey, tsNull(l.SentAt), js(nonNil(l.Firing)), js(nonNil(l.Resolved)), pending); err != nil {
			return fmt.Errorf("alerts store: save notification log %s/%s: %w", l.Channel, l.GroupKey, err)
		}
	}
	for _, sl := range st.Silences {
		if _, err = tx.ExecContext(ctx, `INSERT INTO alert_silences (id, matchers, starts_at, ends_at, created_by, comment, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, sl.ID, js(sl.Matchers), ts(sl.StartsAt), ts(sl.EndsAt), sl.CreatedBy, sl.Comment,
			ts(sl.CreatedAt), ts(sl.UpdatedAt)); err != nil {
			return fmt.Errorf("alerts store: save silence %s: %w", sl.ID, err)
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("alerts store: commit: %w", err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Load implements [Store].
func (s *SQLStore) Load(ctx context.Context) (State, error) {
	st := NewState()
	err := s.each(ctx, "SELECT data FROM alert_instances", func(rows *sql.Rows) error {
		var data string
		var a Alert
		if err := rows.Scan(&data); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(data), &a); err != nil {
			return fmt.Errorf("alert: %w", err)
		}
		st.Alerts[a.Fingerprint] = a
		return nil
	})
	if err != nil {
		return State{}, err
	}
	err = s.each(ctx, "SELECT data FROM alert_groups", func(rows *sql.Rows) error {
		var data string
		var g Group
		if err := rows.Scan(&data); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(data), &g); err != nil {
			return fmt.Errorf("group: %w", err)
		}
		st.Groups[g.Key] = g
		return nil
	})
	if err != nil {
		return State{}, err
	}
	err = s.each(ctx, "SELECT group_key, channel, dedup_key, sent_at, firing, resolved, pending FROM alert_notification_log", func(rows *sql.Rows) error {
		var (
			l                LogEntry
			sent, pending    sql.NullString
			firing, resolved string
		)
		if err := rows.Scan(&l.GroupKey, &l.Channel, &l.DedupKey, &sent, &firing, &resolved, &pending); err != nil {
			return err
		}
		var err error
		if l.SentAt, err = parseTS(sent.String); err != nil {
			return fmt.Errorf("notification log sent_at: %w", err)
		}
		if err := json.Unmarshal([]byte(firing), &l.Firing); err != nil {
			return fmt.Errorf("notification log firing: %w", err)
		}
		if err := json.Unmarshal([]byte(resolved), &l.Resolved); err != nil {
			return fmt.Errorf("notification log resolved: %w", err)
		}
		if pending.Valid {
			l.Pending = &Delivery{}
			if err := json.Unmarshal([]byte(pending.String), l.Pending); err != nil {
				return fmt.Errorf("notification log pending: %w", err)
			}
		}
		st.Log[LogKey(l.GroupKey, l.Channel)] = l
		return nil
	})
	if err != nil {
		return State{}, err
	}
	err = s.each(ctx, "SELECT id, matchers, starts_at, ends_at, created_by, comment, created_at, updated_at FROM alert_silences", func(rows *sql.Rows) error {
		var (
			sl                                   Silence
			matchers, starts, ends, created, upd string
		)
		if err := rows.Scan(&sl.ID, &matchers, &starts, &ends, &sl.CreatedBy, &sl.Comment, &created, &upd); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(matchers), &sl.Matchers); err != nil {
			return fmt.Errorf("silence %s matchers: %w", sl.ID, err)
		}
		for i := range sl.Matchers {
			if err := sl.Matchers[i].compile(); err != nil {
				return fmt.Errorf("silence %s: %w", sl.ID, err)
			}
		}
		var err error
		for _, p := range []struct {
			dst *time.Time
			src string
		}{{&sl.StartsAt, starts}, {&sl.EndsAt, ends}, {&sl.CreatedAt, created}, {&sl.UpdatedAt, upd}} {
			if *p.dst, err = parseTS(p.src); err != nil {
				return fmt.Errorf("silence %s: %w", sl.ID, err)
			}
		}
		st.Silences[sl.ID] = sl
		return nil
	})
	if err != nil {
		return State{}, err
	}
	return st, nil
}

func (s *SQLStore) each(ctx context.Context, query string, fn func(*sql.Rows) error) error {
	rows, err := s.db.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("alerts store: %s: %w", query, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return fmt.Errorf("alerts store: load: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("alerts store: %s: %w", query, err)
	}
	return nil
}

// RecordDelivery implements [Store]; only the newest deliveryHistory outcomes are kept.
func (s *SQLStore) RecordDelivery(ctx context.Context, r notify.Result) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO alert_deliveries (at, channel, group_key, dedup_key, status, alerts, attempts, ok, error, test)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ts(r.At), r.Channel, r.GroupKey, r.DedupKey, r.Status, r.Alerts, r.Attempts, r.OK, r.Error, r.Test)
	if err != nil {
		return fmt.Errorf("alerts store: record delivery: %w", err)
	}
	id, err := res.LastInsertId()
	if err == nil && id > deliveryHistory && id%100 == 0 {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM alert_deliveries WHERE id <= ?`, id-deliveryHistory); err != nil {
			return fmt.Errorf("alerts store: trim deliveries: %w", err)
		}
	}
	return nil
}

// Deliveries implements [Store].
func (s *SQLStore) Deliveries(ctx context.Context, limit int) ([]notify.Result, error) {
	if limit <= 0 {
		return nil, errors.New("alerts store: deliveries: limit must be positive")
	}
	rows, err := s.db.QueryContext(ctx, `SELECT at, channel, group_key, dedup_key, status, alerts, attempts, ok, error, test
		FROM alert_deliveries ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("alerts store: deliveries: %w", err)
	}
	defer rows.Close()
	var out []notify.Result
	for rows.Next() {
		var (
			r  notify.Result
			at string
		)
		if err := rows.Scan(&at, &r.Channel, &r.GroupKey, &r.DedupKey, &r.Status, &r.Alerts, &r.Attempts, &r.OK, &r.Error, &r.Test); err != nil {
			return nil, fmt.Errorf("alerts store: deliveries: %w", err)
		}
		if r.At, err = parseTS(at); err != nil {
			return nil, fmt.Errorf("alerts store: deliveries: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
