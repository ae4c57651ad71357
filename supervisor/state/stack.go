package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Scale returns the stored desired replica count of a service; ok is false when none
// was set (the config's value applies).
func (s *Store) Scale(ctx context.Context, service string) (n int, ok bool, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT replicas FROM scale WHERE service = ?`, service).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("state: read scale of %s: %w", service, err)
	}
	return n, true, nil
}

// SetScale stores the desired replica count of a service.
func (s *Store) SetScale(ctx context.Context, service string, n int) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO scale(service, replicas, updated_at) VALUES(?, ?, ?)
		ON CONFLICT(service) DO UPDATE SET replicas = excluded.replicas, updated_at = excluded.updated_at`, service, n, s.stamp())
	if err != nil {
		return fmt.Errorf("state: store scale of %s: %w", service, err)
	}
	return nil
}

// JobsDone returns the run-once jobs recorded as done.
func (s *Store) JobsDone(ctx context.Context) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT job FROM jobs_done`)
	if err != nil {
		return nil, fmt.Errorf("state: read jobs: %w", err)
	}
	defer rows.Close()
	done := map[string]bool{}
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("state: read jobs: %w", err)
		}
		done[j] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: read jobs: %w", err)
	}
	return done, nil
}

// MarkJobDone records a run-once job as done.
func (s *Store) MarkJobDone(ctx context.Context, job string) error {
	if _, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO jobs_done(job, done_at) VALUES(?, ?)`, job, s.stamp()); err != nil {
		return fmt.Errorf("state: record job %s: %w", job, err)
	}
	return nil
}

const stoppedKey = "stack.stopped"

// Stopped reports whether the operator stopped the stack (`corpintel stop`) and when;
// the reconciler leaves it down until Start, across supervisor restarts and reboots.
func (s *Store) Stopped(ctx context.Context) (bool, time.Time, error) {
	v, ok, err := s.Get(ctx, stoppedKey)
	if err != nil || !ok {
		return false, time.Time{}, err
	}
	return true, parseTime(v), nil
}

// SetStopped records (or clears) the operator's stop.
func (s *Store) SetStopped(ctx context.Context, stopped bool) error {
	if !stopped {
		return s.Delete(ctx, stoppedKey)
	}
	return s.Set(ctx, stoppedKey, s.stamp())
}

// Hold is a stateful recreate that failed and was rolled back.
type Hold struct {
	Hash  string
	At    time.Time
	Error string
}

// Holds returns the held recreates by service.
func (s *Store) Holds(ctx context.Context) (map[string]Hold, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT service, hash, at, error FROM held_recreates`)
	if err != nil {
		return nil, fmt.Errorf("state: read held recreates: %w", err)
	}
	defer rows.Close()
	out := map[string]Hold{}
	for rows.Next() {
		var svc, at string
		var h Hold
		if err := rows.Scan(&svc, &h.Hash, &at, &h.Error); err != nil {
			return nil, fmt.Errorf("state: read held recreates: %w", err)
		}
		h.At = parseTime(at)
		out[svc] = h
	}
	return out, rows.Err()
}

// SetHold records that the recreate of service to hash failed (replacing an older hold).
func (s *Store) SetHold(ctx context.Context, service string, h Hold) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO held_recreates(service, hash, at, error) VALUES(?, ?, ?, ?)
		ON CONFLICT(service) DO UPDATE SET hash = excluded.hash, at = excluded.at, error = excluded.error`,
		service, h.Hash, formatTime(h.At), h.Error)
	if err != nil {
		return fmt.Errorf("state: hold recreate of %s: %w", service, err)
	}
	return nil
}

// ClearHold forgets a held recreate (absent is fine).
func (s *Store) ClearHold(ctx context.Context, service string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM held_recreates WHERE service = ?`, service); err != nil {
		return fmt.Errorf("state: clear hold of %s: %w", service, err)
	}
	return nil
}
