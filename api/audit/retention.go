package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/corpintel/corpintel/api/web"
)

// ObjectStore is the part of the blob store the archiver uses (api/blob's *Store
// satisfies it through blobAdapter).
type ObjectStore interface {
	// PutObject stores exactly size bytes from r under key.
	PutObject(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// GetObject opens the object stored under key.
	GetObject(ctx context.Context, key string) (io.ReadCloser, error)
	// ListObjects calls fn for every object under prefix.
	ListObjects(ctx context.Context, prefix string, fn func(key string, modified time.Time) error) error
}

// retention is the policy of the seed: application records 90 days, access records one
// year, security records forever (archived, never deleted).
type retention struct {
	maxAge map[web.Kind]time.Duration
	// settle keeps the security archiver away from the newest rows, whose ids may still
	// commit out of order.
	settle time.Duration
	batch  int
}

func defaultRetention() retention {
	return retention{
		maxAge: map[web.Kind]time.Duration{
			web.KindApplication: 90 * 24 * time.Hour,
			web.KindAccess:      365 * 24 * time.Hour,
		},
		settle: time.Hour,
		batch:  5000,
	}
}

// Stats says what one Enforce pass did.
type Stats struct {
	Archived map[web.Kind]int `json:"archived"` // records written to MinIO
	Deleted  map[web.Kind]int `json:"deleted"`  // records removed from the hot table
	Objects  []string         `json:"objects"`  // archive objects written
	// Rewritten counts archive objects rewritten for GDPR anonymizations.
	Rewritten int `json:"rewritten"`
}

func (s *Stats) add(kind web.Kind, key string, archived, deleted int) {
	if s.Archived == nil {
		s.Archived, s.Deleted = map[web.Kind]int{}, map[web.Kind]int{}
	}
	s.Archived[kind] += archived
	s.Deleted[kind] += deleted
	s.Objects = append(s.Objects, key)
}

// retentionLockKey is the pg advisory lock that lets one replica enforce retention.
const retentionLockKey int64 = 0x636f72706175_6474 // "corpaudt"

// RunRetention enforces retention now and then every interval until ctx ends. Each pass
// runs under a PostgreSQL advisory lock, so with N replicas one does the work and the
// others skip the pass.
func (r *Recorder) RunRetention(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ran, st, err := r.EnforceLocked(ctx, r.now())
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.ErrorContext(ctx, "audit retention failed", "err", err)
		case ran && len(st.Objects) > 0:
			r.log.InfoContext(ctx, "audit retention", "archived", st.Archived, "deleted", st.Deleted, "objects", len(st.Objects))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// EnforceLocked runs Enforce if this process gets the retention lock; ran is false when
// another replica holds it.
func (r *Recorder) EnforceLocked(ctx context.Context, now time.Time) (ran bool, st Stats, err error) {
	conn, err := r.db.Acquire(ctx)
	if err != nil {
		return false, st, fmt.Errorf("audit retention: acquire connection: %w", err)
	}
	defer conn.Release()
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", retentionLockKey).Scan(&ran); err != nil {
		return false, st, fmt.Errorf("audit retention: lock: %w", err)
	}
	if !ran {
		return false, st, nil
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", retentionLockKey); uerr != nil {
			// The lock dies with the session; make sure the session dies too.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	st, err = r.Enforce(ctx, now)
	return true, st, err
}

// Enforce applies the retention policy as of now: every application record older than
// 90 days and access record older than a year is archived to MinIO (gzip JSON lines under
// audit/<kind>/<yyyy>/<mm>/<dd>-<first id>.jsonl.gz), the object is read back and checked,
// and only then are the records deleted, in the transaction that selected them. Security
// records older than the settle time are archived the same way and never deleted.
func (r *Recorder) Enforce(ctx context.Context, now time.Time) (Stats, error) {
	var st Stats
	if r.store == nil {
		return st, errors.New("audit retention: no object store configured")
	}
	for _, kind := range []web.Kind{web.KindApplication, web.KindAccess} {
		cutoff := now.Add(-r.ret.maxAge[kind])
		for {
			n, err := r.expireBatch(ctx, kind, cutoff, &st)
			if err != nil {
				return st, err
			}
			if n == 0 {
				break
			}
		}
	}
	for {
		n, err := r.archiveSecurityBatch(ctx, now.Add(-r.ret.settle), &st)
		if err != nil {
			return st, err
		}
		if n == 0 {
			break
		}
	}
	if err := r.rewriteArchives(ctx, &st); err != nil {
		return st, err
	}
	return st, nil
}

// rewriteArchives applies queued GDPR anonymizations to the archive objects: every
// record naming an anonymized user is rewritten as in the hot table, the object is
// replaced (and read back), and the queue entries are dropped once all objects are done.
// A failure leaves the queue as it is; the next pass starts over (rewriting is
// idempotent).
func (r *Recorder) rewriteArchives(ctx context.Context, st *Stats) error {
	rows, err := r.db.Query(ctx, `SELECT id, user_id, email, pseudonym FROM audit_archive_rewrites ORDER BY id LIMIT 100`)
	if err != nil {
		return fmt.Errorf("audit archive rewrite: read queue: %w", err)
	}
	var ids []int64
	var anons []anonymizer
	for rows.Next() {
		var id int64
		var user, email, pseudonym string
		if err := rows.Scan(&id, &user, &email, &pseudonym); err != nil {
			rows.Close()
			return fmt.Errorf("audit archive rewrite: read queue: %w", err)
		}
		ids = append(ids, id)
		anons = append(anons, newAnonymizer(user, email, pseudonym))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit archive rewrite: read queue: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	var keys []string
	if err := r.store.ListObjects(ctx, "audit/", func(key string, _ time.Time) error {
		if strings.HasSuffix(key, ".jsonl.gz") {
			keys = append(keys, key)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("audit archive rewrite: list: %w", err)
	}
	for _, key := range keys {
		rc, err := r.store.GetObject(ctx, key)
		if err != nil {
			return fmt.Errorf("audit archive rewrite %s: %w", key, err)
		}
		recs, err := DecodeArchive(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("audit archive rewrite %s: %w", key, err)
		}
		changed := false
		for i := range recs {
			for _, a := range anons {
				if a.apply(&recs[i]) {
					changed = true
				}
			}
		}
		if !changed {
			continue
		}
		data, err := EncodeArchive(recs)
		if err != nil {
			return fmt.Errorf("audit archive rewrite %s: %w", key, err)
		}
		if err := r.store.PutObject(ctx, key, bytes.NewReader(data), int64(len(data)), "application/gzip"); err != nil {
			return fmt.Errorf("audit archive rewrite %s: upload: %w", key, err)
		}
		if err := r.verifyArchive(ctx, key, data, len(recs)); err != nil {
			return fmt.Errorf("audit archive rewrite %s: verify: %w", key, err)
		}
		st.Rewritten++
	}
	if _, err := r.db.Exec(ctx, `DELETE FROM audit_archive_rewrites WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("audit archive rewrite: dequeue: %w", err)
	}
	return nil
}

// expireBatch archives and deletes up to one batch of expired records of one UTC day
// (the oldest day still holding expired records).
func (r *Recorder) expireBatch(ctx context.Context, kind web.Kind, cutoff time.Time, st *Stats) (int, error) {
	tx, err := r.db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit retention %s: begin: %w", kind, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var oldest *time.Time
	if err := tx.QueryRow(ctx, `SELECT min(time) FROM audit_events WHERE kind = $1 AND time < $2`,
		string(kind), cutoff).Scan(&oldest); err != nil {
		return 0, fmt.Errorf("audit retention %s: find oldest: %w", kind, err)
	}
	if oldest == nil {
		return 0, nil
	}
	day := oldest.UTC().Truncate(24 * time.Hour)
	end := day.Add(24 * time.Hour)
	if cutoff.Before(end) {
		end = cutoff
	}
	rows, err := tx.Query(ctx, selectColumns+` WHERE kind = $1 AND time >= $2 AND time < $3
		ORDER BY time, id LIMIT $4 FOR UPDATE`, string(kind), day, end, r.ret.batch)
	if err != nil {
		return 0, fmt.Errorf("audit retention %s: select: %w", kind, err)
	}
	recs, err := scanRecords(rows)
	if err != nil {
		return 0, fmt.Errorf("audit retention %s: select: %w", kind, err)
	}
	if len(recs) == 0 {
		return 0, nil
	}
	key, err := r.archive(ctx, kind, day, recs)
	if err != nil {
		return 0, err
	}
	ids := make([]int64, len(recs))
	for i, rec := range recs {
		ids[i] = rec.ID
	}
	tag, err := tx.Exec(ctx, `DELETE FROM audit_events WHERE id = ANY($1)`, ids)
	if err != nil {
		return 0, fmt.Errorf("audit retention %s: delete archived records: %w", kind, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("audit retention %s: commit: %w", kind, err)
	}
	st.add(kind, key, len(recs), int(tag.RowsAffected()))
	return len(recs), nil
}

// archiveSecurityBatch copies the next security records (by id, past the mark) to MinIO
// and advances the mark. Records newer than settle are left for a later pass.
func (r *Recorder) archiveSecurityBatch(ctx context.Context, settle time.Time, st *Stats) (int, error) {
	kind := web.KindSecurity
	tx, err := r.db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit archive security: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `INSERT INTO audit_archive_marks (kind, last_id) VALUES ($1, 0)
		ON CONFLICT (kind) DO NOTHING`, string(kind)); err != nil {
		return 0, fmt.Errorf("audit archive security: mark: %w", err)
	}
	var last int64
	if err := tx.QueryRow(ctx, `SELECT last_id FROM audit_archive_marks WHERE kind = $1 FOR UPDATE`,
		string(kind)).Scan(&last); err != nil {
		return 0, fmt.Errorf("audit archive security: read mark: %w", err)
	}
	rows, err := tx.Query(ctx, selectColumns+` WHERE kind = 'security' AND id > $1 ORDER BY id LIMIT $2`,
		last, r.ret.batch)
	if err != nil {
		return 0, fmt.Errorf("audit archive security: select: %w", err)
	}
	recs, err := scanRecords(rows)
	if err != nil {
		return 0, fmt.Errorf("audit archive security: select: %w", err)
	}
	// One object per UTC day, and nothing that has not settled yet.
	var day time.Time
	for i, rec := range recs {
		d := rec.Time.Truncate(24 * time.Hour)
		if i == 0 {
			day = d
		}
		if !rec.Time.Before(settle) || !d.Equal(day) {
			recs = recs[:i]
			break
		}
	}
	if len(recs) == 0 {
		return 0, nil
	}
	key, err := r.archive(ctx, kind, day, recs)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `UPDATE audit_archive_marks SET last_id = $2 WHERE kind = $1`,
		string(kind), recs[len(recs)-1].ID); err != nil {
		return 0, fmt.Errorf("audit archive security: advance mark: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("audit archive security: commit: %w", err)
	}
	st.add(kind, key, len(recs), 0)
	return len(recs), nil
}

// ArchiveKey names the archive object of a batch of kind starting at record firstID on day.
func ArchiveKey(kind web.Kind, day time.Time, firstID int64) string {
	day = day.UTC()
	return fmt.Sprintf("audit/%s/%04d/%02d/%02d-%d.jsonl.gz", kind, day.Year(), int(day.Month()), day.Day(), firstID)
}

// archive writes recs as one gzip JSON-lines object, reads it back and checks it. The
// name derives from the first record, so a pass repeated after a crash (object written,
// delete not committed) overwrites the same object instead of duplicating it.
func (r *Recorder) archive(ctx context.Context, kind web.Kind, day time.Time, recs []Record) (string, error) {
	key := ArchiveKey(kind, day, recs[0].ID)
	data, err := EncodeArchive(recs)
	if err != nil {
		return "", fmt.Errorf("audit archive %s: %w", key, err)
	}
	if err := r.store.PutObject(ctx, key, bytes.NewReader(data), int64(len(data)), "application/gzip"); err != nil {
		return "", fmt.Errorf("audit archive %s: upload: %w", key, err)
	}
	if err := r.verifyArchive(ctx, key, data, len(recs)); err != nil {
		return "", fmt.Errorf("audit archive %s: verify: %w", key, err)
	}
	return key, nil
}

func (r *Recorder) verifyArchive(ctx context.Context, key string, want []byte, n int) error {
	rc, err := r.store.GetObject(ctx, key)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(io.LimitReader(rc, int64(len(want))+1))
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(want) {
		return fmt.Errorf("stored object differs from what was written (%d of %d bytes)", len(got), len(want))
	}
	recs, err := DecodeArchive(bytes.NewReader(got))
	if err != nil {
		return err
	}
	if len(recs) != n {
		return fmt.Errorf("archive holds %d records, want %d", len(recs), n)
	}
	return nil
}

// EncodeArchive renders records as gzip-compressed JSON lines (one Record per line).
func EncodeArchive(recs []Record) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	enc := json.NewEncoder(zw)
	enc.SetEscapeHTML(false)
	for _, rec := range recs {
		if err := enc.Encode(rec); err != nil {
			return nil, fmt.Errorf("encode record %d: %w", rec.ID, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeArchive reads an archive made by EncodeArchive.
func DecodeArchive(r io.Reader) ([]Record, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	defer zr.Close()
	var recs []Record
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", len(recs)+1, err)
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	return recs, nil
}
