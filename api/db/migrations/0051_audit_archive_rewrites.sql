-- GDPR anonymizations whose traces must still be rewritten in the MinIO audit archives.
-- A row is queued in the anonymizing transaction and deleted once every archive object
-- has been rewritten (api/audit retention pass), so the archive never keeps a user's
-- identity longer than one retention interval after the anonymization.
CREATE TABLE audit_archive_rewrites (
    id        bigserial   PRIMARY KEY,
    user_id   text        NOT NULL,
    email     text        NOT NULL DEFAULT '',
    pseudonym text        NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now()
);
