-- The console's own state (console/, DESIGN.md "Supervisor state"): its users, their
-- one-time recovery codes, server-side sessions, invites, login-failure counters and the
-- hash-chained audit log. Secrets are stored as hashes only (passwords argon2id; session
-- ids, invite tokens and recovery codes SHA-256 — they are random, long and single-purpose);
-- the TOTP seed has to be readable to check a code and is protected by the state dir's
-- 0700 and the file's 0600.
CREATE TABLE console_users (
	id                  INTEGER PRIMARY KEY AUTOINCREMENT,
	name                TEXT NOT NULL UNIQUE COLLATE NOCASE,
	email               TEXT NOT NULL DEFAULT '',
	full_name           TEXT NOT NULL DEFAULT '',
	role                TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
	password_hash       TEXT NOT NULL,
	must_change         INTEGER NOT NULL DEFAULT 0,
	active              INTEGER NOT NULL DEFAULT 1,
	totp_secret         TEXT NOT NULL DEFAULT '',
	totp_last_step      INTEGER NOT NULL DEFAULT 0, -- the last time step accepted (no replays)
	created_at          TEXT NOT NULL,
	updated_at          TEXT NOT NULL,
	last_login_at       TEXT NOT NULL DEFAULT '',
	password_changed_at TEXT NOT NULL DEFAULT ''
);
CREATE TABLE console_recovery_codes (
	user_id   INTEGER NOT NULL REFERENCES console_users(id) ON DELETE CASCADE,
	code_hash TEXT NOT NULL,
	used_at   TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (user_id, code_hash)
);
CREATE TABLE console_sessions (
	id_hash      TEXT PRIMARY KEY, -- SHA-256 of the cookie value; the value itself is never stored
	user_id      INTEGER NOT NULL REFERENCES console_users(id) ON DELETE CASCADE,
	stage        TEXT NOT NULL CHECK (stage IN ('totp', 'full')),
	csrf         TEXT NOT NULL,
	created_at   TEXT NOT NULL,
	last_seen_at TEXT NOT NULL,
	expires_at   TEXT NOT NULL,    -- the absolute timeout
	reauth_at    TEXT NOT NULL,    -- the last time the password was typed (destructive actions)
	client       TEXT NOT NULL DEFAULT '',
	user_agent   TEXT NOT NULL DEFAULT '',
	totp_pending TEXT NOT NULL DEFAULT '' -- a TOTP seed being set up, until confirmed
);
CREATE INDEX console_sessions_user ON console_sessions(user_id);
CREATE TABLE console_invites (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	token_hash TEXT NOT NULL UNIQUE,
	email      TEXT NOT NULL COLLATE NOCASE,
	role       TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
	created_by TEXT NOT NULL,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	used_at    TEXT NOT NULL DEFAULT '',
	used_by    TEXT NOT NULL DEFAULT '',
	revoked_at TEXT NOT NULL DEFAULT ''
);
CREATE TABLE console_login_failures (
	key      TEXT PRIMARY KEY, -- "user:<name>" or "client:<address>"
	count    INTEGER NOT NULL,
	first_at TEXT NOT NULL,
	last_at  TEXT NOT NULL
);
-- Append-only: every row carries the SHA-256 of its fields and of the row before, so an
-- edited, inserted or removed row breaks the chain (`corpintel audit verify`); the
-- triggers refuse updates and deletes through SQL, and kv 'console.audit.head' records
-- the last seq and hash so that a cut-off tail is noticed too.
CREATE TABLE console_audit (
	seq       INTEGER PRIMARY KEY,
	at        TEXT NOT NULL,
	actor     TEXT NOT NULL,
	role      TEXT NOT NULL DEFAULT '',
	action    TEXT NOT NULL,
	target    TEXT NOT NULL DEFAULT '',
	outcome   TEXT NOT NULL,
	client    TEXT NOT NULL DEFAULT '',
	detail    TEXT NOT NULL DEFAULT '',
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL
);
CREATE INDEX console_audit_action ON console_audit(action);
CREATE TRIGGER console_audit_no_update BEFORE UPDATE ON console_audit
BEGIN SELECT RAISE(ABORT, 'console_audit is append-only'); END;
CREATE TRIGGER console_audit_no_delete BEFORE DELETE ON console_audit
BEGIN SELECT RAISE(ABORT, 'console_audit is append-only'); END;
