package state

import (
	"context"
	"fmt"
	"time"
)

// LiveVolumes maps each stateful service that does not run on its default volume to
// the volume it runs on.
func (s *Store) LiveVolumes(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT service, volume FROM live_volumes`)
	if err != nil {
		return nil, fmt.Errorf("state: read live volumes: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var svc, vol string
		if err := rows.Scan(&svc, &vol); err != nil {
			return nil, fmt.Errorf("state: read live volumes: %w", err)
		}
		out[svc] = vol
	}
	return out, rows.Err()
}

// RetiredVolume is a data volume a service no longer runs on, kept until KeepUntil.
type RetiredVolume struct {
	Volume    string    `json:"volume"`
	Service   string    `json:"service"`
	RetiredAt time.Time `json:"retired_at"`
	KeepUntil time.Time `json:"keep_until"`
	Reason    string    `json:"reason,omitempty"`
}

// SwitchVolume makes volume the live one of service and retires the previous one
// (prev, the volume it ran on) until keepUntil, in one transaction. Switching back to
// a retired volume takes it off the retired list.
func (s *Store) SwitchVolume(ctx context.Context, service, prev, volume string, keepUntil time.Time, reason string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	now := s.stamp()
	if _, err := tx.ExecContext(ctx, `INSERT INTO live_volumes(service, volume, since) VALUES(?, ?, ?)
		ON CONFLICT(service) DO UPDATE SET volume = excluded.volume, since = excluded.since`, service, volume, now); err != nil {
		return fmt.Errorf("state: switch %s to %s: %w", service, volume, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM retired_volumes WHERE volume = ?`, volume); err != nil {
		return fmt.Errorf("state: switch %s to %s: %w", service, volume, err)
	}
	if prev != "" && prev != volume {
		if _, err := tx.ExecContext(ctx, `INSERT INTO retired_volumes(volume, service, retired_at, keep_until, reason) VALUES(?, ?, ?, ?, ?)
			ON CONFLICT(volume) DO UPDATE SET keep_until = excluded.keep_until, reason = excluded.reason`,
			prev, service, now, formatTime(keepUntil), reason); err != nil {
			return fmt.Errorf("state: retire %s: %w", prev, err)
		}
	}
	return tx.Commit()
}

// RetiredVolumes lists the kept volumes, oldest first.
func (s *Store) RetiredVolumes(ctx context.Context) ([]RetiredVolume, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT volume, service, retired_at, keep_until, reason FROM retired_volumes ORDER BY retired_at`)
	if err != nil {
		return nil, fmt.Errorf("state: read retired volumes: %w", err)
	}
	defer rows.Close()
	var out []RetiredVolume
	for rows.Next() {
		var v RetiredVolume
		var at, until string
		if err := rows.Scan(&v.Volume, &v.Service, &at, &until, &v.Reason); err != nil {
			return nil, fmt.Errorf("state: read retired volumes: %w", err)
		}
		v.RetiredAt, v.KeepUntil = parseTime(at), parseTime(until)
		out = append(out, v)
	}
	return out, rows.Err()
}

// ForgetRetiredVolume drops a retired volume from the list (it was removed).
func (s *Store) ForgetRetiredVolume(ctx context.Context, volume string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM retired_volumes WHERE volume = ?`, volume); err != nil {
		return fmt.Errorf("state: forget retired volume %s: %w", volume, err)
	}
	return nil
}
