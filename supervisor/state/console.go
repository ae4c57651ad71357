package state

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The console's tables (migration 0020): users, recovery codes, sessions, invites,
// login-failure counters and the hash-chained audit log. The console (console/) declares
// the store it needs as an interface with its own types; cmd/corpintel adapts these
// methods to it.

// Errors of the console's store.
var (
	ErrConsoleNotFound = errors.New("not found")
	ErrConsoleExists   = errors.New("already exists")
)

// ConsoleUser is a user of the admin console.
type ConsoleUser struct {
	ID                int64
	Name              string
	Email             string
	FullName          string
	Role              string
	PasswordHash      string
	MustChange        bool
	Active            bool
	TOTPSecret        string
	TOTPLastStep      int64
	CreatedAt         time.Time
	UpdatedAt         time.Time
	LastLoginAt       time.Time
	PasswordChangedAt time.Time
}

// ConsoleSession is a server-side console session; IDHash is the SHA-256 of the cookie.
type ConsoleSession struct {
	IDHash      string
	UserID      int64
	Stage       string
	CSRF        string
	CreatedAt   time.Time
	LastSeenAt  time.Time
	ExpiresAt   time.Time
	ReauthAt    time.Time
	Client      string
	UserAgent   string
	TOTPPending string
}

// ConsoleInvite is a single-use invitation for one e-mail address.
type ConsoleInvite struct {
	ID        int64
	TokenHash string
	Email     string
	Role      string
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
	UsedBy    string
	RevokedAt time.Time
}

// LoginFailures counts failed logins of one key (an account or a client address) since
// FirstAt.
type LoginFailures struct {
	Count   int
	FirstAt time.Time
	LastAt  time.Time
}

// AuditEntry is one row of the console's audit log.
type AuditEntry struct {
	Seq      int64
	At       time.Time
	Actor    string
	Role     string
	Action   string
	Target   string
	Outcome  string
	Client   string
	Detail   string
	PrevHash string
	Hash     string
}

// AuditQuery selects audit rows, newest first: Text matches actor, action, target,
// client and detail (case-insensitive substring); Before pages (rows with seq < Before).
type AuditQuery struct {
	Text   string
	Before int64
	Limit  int
}

// AuditCheck is the result of verifying the audit chain.
type AuditCheck struct {
	Entries int64
	// HeadSeq and HeadHash are the last row's.
	HeadSeq  int64
	HeadHash string
	// BrokenAt is the first row that does not fit the chain (0: intact); Problem says how.
	BrokenAt int64
	Problem  string
}

// OK reports whether the chain is intact.
func (c AuditCheck) OK() bool { return c.Problem == "" }

const userColumns = `id, name, email, full_name, role, password_hash, must_change, active, totp_secret, totp_last_step,
	created_at, updated_at, last_login_at, password_changed_at`

func scanUser(sc interface{ Scan(...any) error }) (ConsoleUser, error) {
	var u ConsoleUser
	var created, updated, login, changed string
	err := sc.Scan(&u.ID, &u.Name, &u.Email, &u.FullName, &u.Role, &u.PasswordHash, &u.MustChange, &u.Active, &u.TOTPSecret,
		&u.TOTPLastStep, &created, &updated, &login, &changed)
	if errors.Is(err, sql.ErrNoRows) {
		return ConsoleUser{}, ErrConsoleNotFound
	}
	if err != nil {
		return ConsoleUser{}, err
	}
	u.CreatedAt, u.UpdatedAt, u.LastLoginAt, u.PasswordChangedAt = parseTime(created), parseTime(updated), parseTime(login), parseTime(changed)
	return u, nil
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// ConsoleUserCount is the number of console users.
func (s *Store) ConsoleUserCount(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM console_users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("state: count console users: %w", err)
	}
	return n, nil
}

// CreateConsoleUser stores a new user (ErrConsoleExists when the name is taken).
func (s *Store) CreateConsoleUser(ctx context.Context, u ConsoleUser) (ConsoleUser, error) {
	return createUser(ctx, s.db, s.now(), u)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func createUser(ctx context.Context, db execer, now time.Time, u ConsoleUser) (ConsoleUser, error) {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	u.UpdatedAt = u.CreatedAt
	res, err := db.ExecContext(ctx, `INSERT INTO console_users(name, email, full_name, role, password_hash, must_change, active,
		totp_secret, totp_last_step, created_at, updated_at, last_login_at, password_changed_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.Name, u.Email, u.FullName, u.Role, u.PasswordHash, u.MustChange, u.Active, u.TOTPSecret, u.TOTPLastStep,
		formatTime(u.CreatedAt), formatTime(u.UpdatedAt), formatTime(u.LastLoginAt), formatTime(u.PasswordChangedAt))
	if isUnique(err) {
		return ConsoleUser{}, fmt.Errorf("state: console user %q: %w", u.Name, ErrConsoleExists)
	}
	if err != nil {
		return ConsoleUser{}, fmt.Errorf("state: create console user %q: %w", u.Name, err)
	}
	u.ID, _ = res.LastInsertId()
	return u, nil
}

// ConsoleUserByName finds a user by name (case-insensitive).
func (s *Store) ConsoleUserByName(ctx context.Context, name string) (ConsoleUser, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM console_users WHERE name = ?`, name))
	if err != nil {
		return ConsoleUser{}, fmt.Errorf("state: console user %q: %w", name, err)
	}
	return u, nil
}

// ConsoleUserByID finds a user by id.
func (s *Store) ConsoleUserByID(ctx context.Context, id int64) (ConsoleUser, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM console_users WHERE id = ?`, id))
	if err != nil {
		return ConsoleUser{}, fmt.Errorf("state: console user %d: %w", id, err)
	}
	return u, nil
}

// ConsoleUsers lists every user by name.
func (s *Store) ConsoleUsers(ctx context.Context) ([]ConsoleUser, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userColumns+` FROM console_users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("state: console users: %w", err)
	}
	defer rows.Close()
	var out []ConsoleUser
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("state: console users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UpdateConsoleUser writes every field of u but the name and the creation time.
func (s *Store) UpdateConsoleUser(ctx context.Context, u ConsoleUser) error {
	res, err := s.db.ExecContext(ctx, `UPDATE console_users SET email = ?, full_name = ?, role = ?, password_hash = ?, must_change = ?,
		active = ?, totp_secret = ?, totp_last_step = ?, updated_at = ?, last_login_at = ?, password_changed_at = ? WHERE id = ?`,
		u.Email, u.FullName, u.Role, u.PasswordHash, u.MustChange, u.Active, u.TOTPSecret, u.TOTPLastStep, s.stamp(),
		formatTime(u.LastLoginAt), formatTime(u.PasswordChangedAt), u.ID)
	if err != nil {
		return fmt.Errorf("state: update console user %d: %w", u.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("state: update console user %d: %w", u.ID, ErrConsoleNotFound)
	}
	return nil
}

// AcceptTOTPStep records step as the last accepted TOTP time step of a user, only if it
// is newer than the one recorded: a code is accepted once (false: a replay).
func (s *Store) AcceptTOTPStep(ctx context.Context, userID, step int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE console_users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?`, step, userID, step)
	if err != nil {
		return false, fmt.Errorf("state: totp step of user %d: %w", userID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// SetRecoveryCodes replaces a user's recovery codes (their hashes).
func (s *Store) SetRecoveryCodes(ctx context.Context, userID int64, hashes []string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: recovery codes of user %d: %w", userID, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM console_recovery_codes WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("state: recovery codes of user %d: %w", userID, err)
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO console_recovery_codes(user_id, code_hash) VALUES(?, ?)`, userID, h); err != nil {
			return fmt.Errorf("state: recovery codes of user %d: %w", userID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("state: recovery codes of user %d: %w", userID, err)
	}
	return nil
}

// UseRecoveryCode marks an unused recovery code as used; false when there is none.
func (s *Store) UseRecoveryCode(ctx context.Context, userID int64, hash string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE console_recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at = ''`,
		s.stamp(), userID, hash)
	if err != nil {
		return false, fmt.Errorf("state: use recovery code of user %d: %w", userID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// RecoveryCodesLeft counts a user's unused recovery codes.
func (s *Store) RecoveryCodesLeft(ctx context.Context, userID int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM console_recovery_codes WHERE user_id = ? AND used_at = ''`, userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("state: recovery codes of user %d: %w", userID, err)
	}
	return n, nil
}

const sessionColumns = `id_hash, user_id, stage, csrf, created_at, last_seen_at, expires_at, reauth_at, client, user_agent, totp_pending`

func scanSession(sc interface{ Scan(...any) error }) (ConsoleSession, error) {
	var c ConsoleSession
	var created, seen, expires, reauth string
	err := sc.Scan(&c.IDHash, &c.UserID, &c.Stage, &c.CSRF, &created, &seen, &expires, &reauth, &c.Client, &c.UserAgent, &c.TOTPPending)
	if errors.Is(err, sql.ErrNoRows) {
		return ConsoleSession{}, ErrConsoleNotFound
	}
	if err != nil {
		return ConsoleSession{}, err
	}
	c.CreatedAt, c.LastSeenAt, c.ExpiresAt, c.ReauthAt = parseTime(created), parseTime(seen), parseTime(expires), parseTime(reauth)
	return c, nil
}

func insertSession(ctx context.Context, db execer, c ConsoleSession) error {
	_, err := db.ExecContext(ctx, `INSERT INTO console_sessions(`+sessionColumns+`) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.IDHash, c.UserID, c.Stage, c.CSRF, formatTime(c.CreatedAt), formatTime(c.LastSeenAt), formatTime(c.ExpiresAt),
		formatTime(c.ReauthAt), c.Client, c.UserAgent, c.TOTPPending)
	if isUnique(err) {
		return fmt.Errorf("state: console session: %w", ErrConsoleExists)
	}
	if err != nil {
		return fmt.Errorf("state: create console session: %w", err)
	}
	return nil
}

// CreateConsoleSession stores a new session.
func (s *Store) CreateConsoleSession(ctx context.Context, c ConsoleSession) error {
	return insertSession(ctx, s.db, c)
}

// RotateConsoleSession replaces the session oldHash by c in one transaction (a new id at
// every privilege change: login, second factor, password change). oldHash "" only
// inserts.
func (s *Store) RotateConsoleSession(ctx context.Context, oldHash string, c ConsoleSession) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: rotate console session: %w", err)
	}
	defer tx.Rollback()
	if oldHash != "" {
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = ?`, oldHash); err != nil {
			return fmt.Errorf("state: rotate console session: %w", err)
		}
	}
	if err := insertSession(ctx, tx, c); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("state: rotate console session: %w", err)
	}
	return nil
}

// ConsoleSession finds a session by the hash of its id.
func (s *Store) ConsoleSession(ctx context.Context, idHash string) (ConsoleSession, error) {
	c, err := scanSession(s.db.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM console_sessions WHERE id_hash = ?`, idHash))
	if err != nil {
		return ConsoleSession{}, fmt.Errorf("state: console session: %w", err)
	}
	return c, nil
}

// UpdateConsoleSession writes the mutable fields of a session (last seen,
// re-authentication, pending TOTP seed).
func (s *Store) UpdateConsoleSession(ctx context.Context, c ConsoleSession) error {
	res, err := s.db.ExecContext(ctx, `UPDATE console_sessions SET last_seen_at = ?, reauth_at = ?, totp_pending = ? WHERE id_hash = ?`,
		formatTime(c.LastSeenAt), formatTime(c.ReauthAt), c.TOTPPending, c.IDHash)
	if err != nil {
		return fmt.Errorf("state: update console session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("state: update console session: %w", ErrConsoleNotFound)
	}
	return nil
}

// DeleteConsoleSession removes a session (absent is fine).
func (s *Store) DeleteConsoleSession(ctx context.Context, idHash string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = ?`, idHash); err != nil {
		return fmt.Errorf("state: delete console session: %w", err)
	}
	return nil
}

// DeleteUserConsoleSessions removes every session of a user except the one whose hash
// is except ("" for none) and returns how many went.
func (s *Store) DeleteUserConsoleSessions(ctx context.Context, userID int64, except string) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE user_id = ? AND id_hash != ?`, userID, except)
	if err != nil {
		return 0, fmt.Errorf("state: delete sessions of user %d: %w", userID, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// UserConsoleSessions lists a user's sessions, newest first.
func (s *Store) UserConsoleSessions(ctx context.Context, userID int64) ([]ConsoleSession, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sessionColumns+` FROM console_sessions WHERE user_id = ? ORDER BY created_at DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("state: sessions of user %d: %w", userID, err)
	}
	defer rows.Close()
	var out []ConsoleSession
	for rows.Next() {
		c, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("state: sessions of user %d: %w", userID, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteExpiredConsoleSessions removes sessions past their absolute end or idle since
// before idleBefore.
func (s *Store) DeleteExpiredConsoleSessions(ctx context.Context, now, idleBefore time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE expires_at <= ? OR last_seen_at <= ?`, formatTime(now), formatTime(idleBefore))
	if err != nil {
		return 0, fmt.Errorf("state: delete expired console sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

const inviteColumns = `id, token_hash, email, role, created_by, created_at, expires_at, used_at, used_by, revoked_at`

func scanInvite(sc interface{ Scan(...any) error }) (ConsoleInvite, error) {
	var i ConsoleInvite
	var created, expires, used, revoked string
	err := sc.Scan(&i.ID, &i.TokenHash, &i.Email, &i.Role, &i.CreatedBy, &created, &expires, &used, &i.UsedBy, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return ConsoleInvite{}, ErrConsoleNotFound
	}
	if err != nil {
		return ConsoleInvite{}, err
	}
	i.CreatedAt, i.ExpiresAt, i.UsedAt, i.RevokedAt = parseTime(created), parseTime(expires), parseTime(used), parseTime(revoked)
	return i, nil
}

// CreateConsoleInvite stores an invite.
func (s *Store) CreateConsoleInvite(ctx context.Context, i ConsoleInvite) (ConsoleInvite, error) {
	if i.CreatedAt.IsZero() {
		i.CreatedAt = s.now()
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO console_invites(token_hash, email, role, created_by, created_at, expires_at)
		VALUES(?, ?, ?, ?, ?, ?)`, i.TokenHash, i.Email, i.Role, i.CreatedBy, formatTime(i.CreatedAt), formatTime(i.ExpiresAt))
	if err != nil {
		return ConsoleInvite{}, fmt.Errorf("state: create console invite: %w", err)
	}
	i.ID, _ = res.LastInsertId()
	return i, nil
}

// ConsoleInviteByToken finds an invite by the hash of its token.
func (s *Store) ConsoleInviteByToken(ctx context.Context, tokenHash string) (ConsoleInvite, error) {
	i, err := scanInvite(s.db.QueryRowContext(ctx, `SELECT `+inviteColumns+` FROM console_invites WHERE token_hash = ?`, tokenHash))
	if err != nil {
		return ConsoleInvite{}, fmt.Errorf("state: console invite: %w", err)
	}
	return i, nil
}

// ConsoleInvites lists the invites, newest first.
func (s *Store) ConsoleInvites(ctx context.Context) ([]ConsoleInvite, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+inviteColumns+` FROM console_invites ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("state: console invites: %w", err)
	}
	defer rows.Close()
	var out []ConsoleInvite
	for rows.Next() {
		i, err := scanInvite(rows)
		if err != nil {
			return nil, fmt.Errorf("state: console invites: %w", err)
		}
		out = append(out, i)
	}
	return out, rows.Err()
}

// RevokeConsoleInvite revokes an unused invite (ErrConsoleNotFound when there is no
// such open invite).
func (s *Store) RevokeConsoleInvite(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `UPDATE console_invites SET revoked_at = ? WHERE id = ? AND used_at = '' AND revoked_at = ''`, s.stamp(), id)
	if err != nil {
		return fmt.Errorf("state: revoke console invite %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("state: revoke console invite %d: %w", id, ErrConsoleNotFound)
	}
	return nil
}

// AcceptConsoleInvite uses the open, unexpired invite with tokenHash and creates its
// user, in one transaction: an invite makes exactly one user. ErrConsoleNotFound when
// the invite is unknown, used, revoked or expired at now; ErrConsoleExists when the
// name is taken (the invite stays open then).
func (s *Store) AcceptConsoleInvite(ctx context.Context, tokenHash string, now time.Time, u ConsoleUser) (ConsoleUser, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return ConsoleUser{}, fmt.Errorf("state: accept console invite: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE console_invites SET used_at = ?, used_by = ?
		WHERE token_hash = ? AND used_at = '' AND revoked_at = '' AND expires_at > ?`, formatTime(now), u.Name, tokenHash, formatTime(now))
	if err != nil {
		return ConsoleUser{}, fmt.Errorf("state: accept console invite: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ConsoleUser{}, fmt.Errorf("state: accept console invite: %w", ErrConsoleNotFound)
	}
	u, err = createUser(ctx, tx, now, u)
	if err != nil {
		return ConsoleUser{}, err
	}
	if err := tx.Commit(); err != nil {
		return ConsoleUser{}, fmt.Errorf("state: accept console invite: %w", err)
	}
	return u, nil
}

// RecordLoginFailure counts a failed login of key at now: the count starts over when
// the previous failures are older than window.
func (s *Store) RecordLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration) (LoginFailures, error) {
	at, since := formatTime(now), formatTime(now.Add(-window))
	_, err := s.db.ExecContext(ctx, `INSERT INTO console_login_failures(key, count, first_at, last_at) VALUES(?, 1, ?, ?)
		ON CONFLICT(key) DO UPDATE SET
			count = CASE WHEN console_login_failures.first_at <= ? THEN 1 ELSE console_login_failures.count + 1 END,
			first_at = CASE WHEN console_login_failures.first_at <= ? THEN excluded.first_at ELSE console_login_failures.first_at END,
			last_at = excluded.last_at`, key, at, at, since, since)
	if err != nil {
		return LoginFailures{}, fmt.Errorf("state: record login failure: %w", err)
	}
	return s.LoginFailures(ctx, key)
}

// LoginFailures returns the failures counted for key (zero when none).
func (s *Store) LoginFailures(ctx context.Context, key string) (LoginFailures, error) {
	var f LoginFailures
	var first, last string
	err := s.db.QueryRowContext(ctx, `SELECT count, first_at, last_at FROM console_login_failures WHERE key = ?`, key).Scan(&f.Count, &first, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return LoginFailures{}, nil
	}
	if err != nil {
		return LoginFailures{}, fmt.Errorf("state: login failures: %w", err)
	}
	f.FirstAt, f.LastAt = parseTime(first), parseTime(last)
	return f, nil
}

// ClearLoginFailures forgets the failures of key.
func (s *Store) ClearLoginFailures(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM console_login_failures WHERE key = ?`, key); err != nil {
		return fmt.Errorf("state: clear login failures: %w", err)
	}
	return nil
}

// auditHeadKey is the kv entry with the chain's last seq and hash.
const auditHeadKey = "console.audit.head"

// auditHash is the SHA-256 of a row's fields (as stored) and the previous row's hash.
func auditHash(seq int64, at string, e AuditEntry, prev string) string {
	b, _ := json.Marshal([]string{strconv.FormatInt(seq, 10), at, e.Actor, e.Role, e.Action, e.Target, e.Outcome, e.Client, e.Detail, prev})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// AppendAudit appends e to the audit log, chained to the last row, and returns it with
// its seq and hashes. The append takes SQLite's write lock first (BEGIN IMMEDIATE), so
// the CLI writing at the same time as the supervisor cannot fork the chain.
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	if e.Action == "" || e.Outcome == "" || e.Actor == "" {
		return AuditEntry{}, errors.New("state: an audit entry needs an actor, an action and an outcome")
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return AuditEntry{}, fmt.Errorf("state: append audit: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return AuditEntry{}, fmt.Errorf("state: append audit: lock the store: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	var last sql.NullInt64
	var prev sql.NullString
	if err := conn.QueryRowContext(ctx, `SELECT seq, hash FROM console_audit ORDER BY seq DESC LIMIT 1`).Scan(&last, &prev); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return AuditEntry{}, fmt.Errorf("state: append audit: %w", err)
	}
	e.Seq, e.PrevHash = last.Int64+1, prev.String
	at := formatTime(e.At)
	e.Hash = auditHash(e.Seq, at, e, e.PrevHash)
	if _, err := conn.ExecContext(ctx, `INSERT INTO console_audit(seq, at, actor, role, action, target, outcome, client, detail, prev_hash, hash)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.Seq, at, e.Actor, e.Role, e.Action, e.Target, e.Outcome, e.Client, e.Detail, e.PrevHash, e.Hash); err != nil {
		return AuditEntry{}, fmt.Errorf("state: append audit: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO kv(key, value, updated_at) VALUES(?, ?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		auditHeadKey, strconv.FormatInt(e.Seq, 10)+" "+e.Hash, at); err != nil {
		return AuditEntry{}, fmt.Errorf("state: append audit: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return AuditEntry{}, fmt.Errorf("state: append audit: %w", err)
	}
	committed = true
	return e, nil
}

const auditColumns = `seq, at, actor, role, action, target, outcome, client, detail, prev_hash, hash`

func scanAudit(sc interface{ Scan(...any) error }) (AuditEntry, string, error) {
	var e AuditEntry
	var at string
	err := sc.Scan(&e.Seq, &at, &e.Actor, &e.Role, &e.Action, &e.Target, &e.Outcome, &e.Client, &e.Detail, &e.PrevHash, &e.Hash)
	e.At = parseTime(at)
	return e, at, err
}

// likeEscape makes s a literal LIKE pattern (with ESCAPE '\').
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// AuditEntries returns the rows q selects, newest first, and whether older ones exist.
func (s *Store) AuditEntries(ctx context.Context, q AuditQuery) ([]AuditEntry, bool, error) {
	limit := q.Limit
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	where, args := []string{"1=1"}, []any{}
	if q.Before > 0 {
		where = append(where, "seq < ?")
		args = append(args, q.Before)
	}
	if t := strings.TrimSpace(q.Text); t != "" {
		p := "%" + likeEscape(t) + "%"
		where = append(where, `(actor LIKE ? ESCAPE '\' OR action LIKE ? ESCAPE '\' OR target LIKE ? ESCAPE '\' OR client LIKE ? ESCAPE '\' OR detail LIKE ? ESCAPE '\' OR outcome LIKE ? ESCAPE '\')`)
		args = append(args, p, p, p, p, p, p)
	}
	args = append(args, limit+1)
	// #nosec G202 -- the clauses are constants of this function; values are parameters
	rows, err := s.db.QueryContext(ctx, `SELECT `+auditColumns+` FROM console_audit WHERE `+strings.Join(where, " AND ")+` ORDER BY seq DESC LIMIT ?`, args...)
	if err != nil {
		return nil, false, fmt.Errorf("state: audit entries: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		e, _, err := scanAudit(rows)
		if err != nil {
			return nil, false, fmt.Errorf("state: audit entries: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("state: audit entries: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// VerifyAudit walks the whole audit log and checks the chain: seqs without gaps from 1,
// each row's prev_hash equal to the hash of the row before, each hash recomputed from
// the row's fields, and the last row equal to the recorded head.
func (s *Store) VerifyAudit(ctx context.Context) (AuditCheck, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+auditColumns+` FROM console_audit ORDER BY seq`)
	if err != nil {
		return AuditCheck{}, fmt.Errorf("state: verify audit: %w", err)
	}
	defer rows.Close()
	var c AuditCheck
	prev := ""
	for rows.Next() {
		e, at, err := scanAudit(rows)
		if err != nil {
			return AuditCheck{}, fmt.Errorf("state: verify audit: %w", err)
		}
		c.Entries++
		switch {
		case c.Problem != "":
		case e.Seq != c.HeadSeq+1:
			c.BrokenAt, c.Problem = e.Seq, fmt.Sprintf("row %d follows row %d: rows are missing", e.Seq, c.HeadSeq)
		case e.PrevHash != prev:
			c.BrokenAt, c.Problem = e.Seq, fmt.Sprintf("row %d does not point at the hash of row %d", e.Seq, c.HeadSeq)
		case auditHash(e.Seq, at, e, e.PrevHash) != e.Hash:
			c.BrokenAt, c.Problem = e.Seq, fmt.Sprintf("row %d was changed after it was written (its hash does not match its fields)", e.Seq)
		}
		c.HeadSeq, c.HeadHash, prev = e.Seq, e.Hash, e.Hash
	}
	if err := rows.Err(); err != nil {
		return AuditCheck{}, fmt.Errorf("state: verify audit: %w", err)
	}
	if c.Problem != "" {
		return c, nil
	}
	head, ok, err := s.Get(ctx, auditHeadKey)
	if err != nil {
		return AuditCheck{}, err
	}
	want := strconv.FormatInt(c.HeadSeq, 10) + " " + c.HeadHash
	switch {
	case !ok && c.Entries > 0:
		c.BrokenAt, c.Problem = c.HeadSeq, "the recorded head of the chain is missing"
	case ok && head != want:
		seq, _, _ := strings.Cut(head, " ")
		n, _ := strconv.ParseInt(seq, 10, 64)
		c.BrokenAt, c.Problem = n, fmt.Sprintf("the chain ends at row %d but row %s was recorded as its head: rows were removed from the end", c.HeadSeq, seq)
	}
	return c, nil
}
