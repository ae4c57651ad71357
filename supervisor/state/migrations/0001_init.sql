-- The tables of the first state store (before numbered migrations): desired scale per
-- service, run-once jobs done, and a small key/value table. IF NOT EXISTS because stores
-- made before numbering already have them (user_version 0).
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scale (service TEXT PRIMARY KEY, replicas INTEGER NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs_done (job TEXT PRIMARY KEY, done_at TEXT NOT NULL);
