package documents

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
)

// delete removes a document: the row goes first, in a transaction whose trigger queues
// the object for deletion (document_object_deletions); after the commit the object is
// removed and its queue entry dropped. So:
//   - the row delete or its commit fails: nothing changed, the object is untouched;
//   - the object removal fails (MinIO down): the row is gone, the object stays queued and
//     the reaper removes it later.
//
// A row never points at a missing object, and no object outlives its row for longer
// than one reaper interval.
func (m *Module) delete(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if !web.ValidUUID(id) {
		return errNotFound
	}
	var key string
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `DELETE FROM documents WHERE id = $1 RETURNING object_key`, id).Scan(&key)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return fmt.Errorf("documents: delete %s: %w", id, err)
		}
		if m.beforeDeleteCommit != nil {
			return m.beforeDeleteCommit()
		}
		return nil
	})
	if err != nil {
		return err
	}
	web.SetAuditTarget(c, "document/"+id)
	if err := m.removeQueued(context.WithoutCancel(ctx), key); err != nil {
		m.log.WarnContext(ctx, "documents: object removal deferred to the reaper", "key", key, "err", err)
	}
	return c.NoContent(http.StatusNoContent)
}

// removeQueued removes a queued object and then its queue entry.
func (m *Module) removeQueued(ctx context.Context, key string) error {
	if err := m.store.RemoveObject(ctx, key); err != nil {
		return fmt.Errorf("remove object %s: %w", key, err)
	}
	if _, err := m.pool.Exec(ctx, `DELETE FROM document_object_deletions WHERE object_key = $1`, key); err != nil {
		return fmt.Errorf("dequeue %s: %w", key, err)
	}
	return nil
}

// ReapStats says what one Reap pass removed.
type ReapStats struct {
	Queued  int `json:"queued"`  // objects of deleted rows
	Orphans int `json:"orphans"` // objects no row ever pointed at (uploads cut short)
}

// reaperLockKey is the advisory lock that lets one replica reap ("corpdocs").
const reaperLockKey int64 = 0x636f7270646f6373

// Reap removes the objects queued by row deletes (documents and cascaded company
// deletes), then sweeps documents/ for objects older than the grace period that no row
// references: what an upload leaves when its process dies between storing the object
// and inserting the row.
func (m *Module) Reap(ctx context.Context) (ReapStats, error) {
	var st ReapStats
	for {
		rows, err := m.pool.Query(ctx, `SELECT object_key FROM document_object_deletions ORDER BY queued_at LIMIT 500`)
		if err != nil {
			return st, fmt.Errorf("documents reaper: read queue: %w", err)
		}
		keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return st, fmt.Errorf("documents reaper: read queue: %w", err)
		}
		for _, k := range keys {
			if err := m.removeQueued(ctx, k); err != nil {
				return st, fmt.Errorf("documents reaper: %w", err)
			}
			st.Queued++
		}
		if len(keys) < 500 {
			break
		}
	}
	cutoff := m.now().Add(-m.grace)
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		rows, err := m.pool.Query(ctx, `SELECT k FROM unnest($1::text[]) AS k
			WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.object_key = k)`, batch)
		if err != nil {
			return fmt.Errorf("documents reaper: check objects: %w", err)
		}
		orphans, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("documents reaper: check objects: %w", err)
		}
		for _, k := range orphans {
			if err := m.store.RemoveObject(ctx, k); err != nil {
				return fmt.Errorf("documents reaper: remove orphan %s: %w", k, err)
			}
			m.log.InfoContext(ctx, "documents reaper: removed orphan object", "key", k)
			st.Orphans++
		}
		batch = batch[:0]
		return nil
	}
	err := m.store.ListObjects(ctx, "documents/", func(key string, modified time.Time) error {
		if !modified.Before(cutoff) || strings.Count(key, "/") != 2 {
			return nil
		}
		batch = append(batch, key)
		if len(batch) == 500 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return st, err
}

// RunReaper reaps now and then every interval until ctx ends, on one replica at a time
// (PostgreSQL advisory lock).
func (m *Module) RunReaper(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ran, st, err := m.ReapLocked(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			m.log.ErrorContext(ctx, "documents reaper failed", "err", err)
		case ran && st.Queued+st.Orphans > 0:
			m.log.InfoContext(ctx, "documents reaper", "queued", st.Queued, "orphans", st.Orphans)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ReapLocked runs Reap if this replica gets the reaper lock.
func (m *Module) ReapLocked(ctx context.Context) (ran bool, st ReapStats, err error) {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return false, st, fmt.Errorf("documents reaper: acquire connection: %w", err)
	}
	defer conn.Release()
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", reaperLockKey).Scan(&ran); err != nil {
		return false, st, fmt.Errorf("documents reaper: lock: %w", err)
	}
	if !ran {
		return false, st, nil
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", reaperLockKey); uerr != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	st, err = m.Reap(ctx)
	return true, st, err
}
