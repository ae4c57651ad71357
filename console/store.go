package console

import (
	"context"
	"errors"
	"time"
)

// Errors a Store returns (wrapped is fine).
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// Store is the console's own state: users, recovery codes, sessions, invites,
// login-failure counters and the audit log. The supervisor's state store implements it
// (SQLite, supervisor/state, adapted in cmd/corpintel), so it survives restarts and is
// readable while PostgreSQL is down. The field sets of these types match the state
// store's one for one.
type Store interface {
	UserCount(ctx context.Context) (int, error)
	// CreateUser stores a new user; ErrExists when the name is taken.
	CreateUser(ctx context.Context, u User) (User, error)
	UserByName(ctx context.Context, name string) (User, error)
	UserByID(ctx context.Context, id int64) (User, error)
	Users(ctx context.Context) ([]User, error)
	// UpdateUser writes every field but the name and the creation time.
	UpdateUser(ctx context.Context, u User) error
	// AcceptTOTPStep records step as the user's last accepted TOTP step if it is newer
	// than the recorded one (false: a replayed code).
	AcceptTOTPStep(ctx context.Context, userID, step int64) (bool, error)
	SetRecoveryCodes(ctx context.Context, userID int64, hashes []string) error
	UseRecoveryCode(ctx context.Context, userID int64, hash string) (bool, error)
	RecoveryCodesLeft(ctx context.Context, userID int64) (int, error)

	// RotateSession deletes the session oldHash ("" none) and stores s, atomically.
	RotateSession(ctx context.Context, oldHash string, s Session) error
	Session(ctx context.Context, idHash string) (Session, error)
	// UpdateSession writes last seen, re-authentication time and the pending TOTP seed.
	UpdateSession(ctx context.Context, s Session) error
	DeleteSession(ctx context.Context, idHash string) error
	DeleteUserSessions(ctx context.Context, userID int64, except string) (int, error)
	UserSessions(ctx context.Context, userID int64) ([]Session, error)
	DeleteExpiredSessions(ctx context.Context, now, idleBefore time.Time) (int, error)

	CreateInvite(ctx context.Context, i Invite) (Invite, error)
	InviteByToken(ctx context.Context, tokenHash string) (Invite, error)
	Invites(ctx context.Context) ([]Invite, error)
	RevokeInvite(ctx context.Context, id int64) error
	// AcceptInvite uses the open invite and creates its user in one step
	// (ErrNotFound: unknown, used, revoked or expired; ErrExists: name taken).
	AcceptInvite(ctx context.Context, tokenHash string, now time.Time, u User) (User, error)

	RecordLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration) (LoginFailures, error)
	LoginFailures(ctx context.Context, key string) (LoginFailures, error)
	ClearLoginFailures(ctx context.Context, key string) error

	// AppendAudit chains e to the audit log and returns it with seq and hashes.
	AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	// AuditEntries returns a page, newest first, and whether older rows exist.
	AuditEntries(ctx context.Context, q AuditQuery) ([]AuditEntry, bool, error)
	VerifyAudit(ctx context.Context) (AuditCheck, error)
}

// User is a console user. Role is "viewer", "operator" or "admin".
type User struct {
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

// TOTPEnabled reports whether the user logs in with a second factor.
func (u User) TOTPEnabled() bool { return u.TOTPSecret != "" }

// Session is a server-side session. IDHash is the SHA-256 of the cookie's value, which
// is never stored. Stage is "totp" (the password was right, the second factor is due)
// or "full".
type Session struct {
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

// Invite lets one person with one e-mail address create one account, once, until
// ExpiresAt.
type Invite struct {
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

// State of an invite at now: open, used, revoked or expired.
func (i Invite) State(now time.Time) string {
	switch {
	case !i.UsedAt.IsZero():
		return "used"
	case !i.RevokedAt.IsZero():
		return "revoked"
	case !now.Before(i.ExpiresAt):
		return "expired"
	}
	return "open"
}

// LoginFailures counts failed logins of one key since FirstAt.
type LoginFailures struct {
	Count   int
	FirstAt time.Time
	LastAt  time.Time
}

// AuditEntry is one row of the audit log: who (Actor, Role), when, what (Action,
// Target, Outcome, Detail) and from where (Client).
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

// AuditQuery selects a page of the audit log.
type AuditQuery struct {
	Text   string
	Before int64
	Limit  int
}

// AuditCheck is the verdict on the audit chain.
type AuditCheck struct {
	Entries  int64
	HeadSeq  int64
	HeadHash string
	BrokenAt int64
	Problem  string
}

// OK reports whether the chain is intact.
func (c AuditCheck) OK() bool { return c.Problem == "" }
