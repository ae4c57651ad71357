-- Which data volume each stateful service runs on. A restore fills new volumes and
-- switches by changing this; the old ones are retired, kept for a while (switching
-- back is changing this again) and removed once keep_until has passed.
CREATE TABLE live_volumes (
	service TEXT PRIMARY KEY,
	volume  TEXT NOT NULL,
	since   TEXT NOT NULL
);
CREATE TABLE retired_volumes (
	volume     TEXT PRIMARY KEY,
	service    TEXT NOT NULL,
	retired_at TEXT NOT NULL,
	keep_until TEXT NOT NULL,
	reason     TEXT NOT NULL DEFAULT ''
);
