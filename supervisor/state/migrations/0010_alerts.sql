-- The alert engine's tables (supervisor/alerts.Schema, kept equal by a test): active and
-- resolved alert instances, aggregation groups, the notification log per group and
-- channel (what each channel last heard, so a restart neither loses nor re-sends), the
-- silences, and the history of delivery attempts.
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
