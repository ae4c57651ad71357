-- The operation lock and journal (DESIGN.md "One operation lock and journal"): backup,
-- restore, drill, upgrade and rotation each take the one row in state 'running' (the
-- partial unique index makes taking it atomic across processes), record their steps, and
-- end as succeeded, failed or interrupted (its supervisor died mid-operation).
CREATE TABLE operations (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	kind         TEXT NOT NULL,
	services     TEXT NOT NULL DEFAULT '',   -- comma-separated services it owns
	owner        TEXT NOT NULL,              -- the supervisor process that runs it
	state        TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'interrupted')),
	maintenance  INTEGER NOT NULL DEFAULT 0, -- the edge answers 503 while it runs
	detail       TEXT NOT NULL DEFAULT '',   -- what it works on (a backup dir, a version)
	started_at   TEXT NOT NULL,
	expected_end TEXT NOT NULL DEFAULT '',
	ended_at     TEXT NOT NULL DEFAULT '',
	error        TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX operations_one_running ON operations(state) WHERE state = 'running';
CREATE TABLE operation_steps (
	operation_id INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
	seq          INTEGER NOT NULL,
	at           TEXT NOT NULL,
	name         TEXT NOT NULL,
	detail       TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (operation_id, seq)
);
