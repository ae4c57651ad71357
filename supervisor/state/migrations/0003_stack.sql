-- What the reconciler must remember across supervisor restarts: the stack was stopped
-- by the operator (until `corpintel start`), and stateful recreates that failed and were
-- rolled back (held until the spec changes or the operator restarts the service).
CREATE TABLE held_recreates (
	service TEXT PRIMARY KEY,
	hash    TEXT NOT NULL,
	at      TEXT NOT NULL,
	error   TEXT NOT NULL
);
