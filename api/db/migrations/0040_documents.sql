-- Documents (api/documents): metadata here, content in MinIO under object_key
-- (documents/<company id>/<document id>). A row exists only for a complete object.
--
-- Deleting a company deletes its documents (ON DELETE CASCADE, like its metric points);
-- the trigger below queues every deleted row's object, and the documents reaper removes
-- queued objects, so neither a document delete nor a company delete leaves an orphan in
-- MinIO even when MinIO is down at that moment.
CREATE TABLE documents (
    id           uuid        PRIMARY KEY,
    company_id   uuid        NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    title        text        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 300),
    filename     text        NOT NULL CHECK (char_length(filename) BETWEEN 1 AND 255),
    content_type text        NOT NULL CHECK (char_length(content_type) <= 255),
    size_bytes   bigint      NOT NULL CHECK (size_bytes > 0),
    sha256       text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    object_key   text        NOT NULL UNIQUE,
    -- user id of the uploader; a pseudonym (anon-…) after GDPR anonymization
    uploaded_by  text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Listing per company, newest first, keyset-paginated.
CREATE INDEX documents_company_created_idx ON documents (company_id, created_at DESC, id DESC);
-- GDPR export and anonymization.
CREATE INDEX documents_uploaded_by_idx ON documents (uploaded_by);

-- Objects whose rows are gone and that still have to be removed from MinIO.
CREATE TABLE document_object_deletions (
    object_key text        PRIMARY KEY,
    queued_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION documents_queue_object_deletion() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO document_object_deletions (object_key) VALUES (OLD.object_key)
        ON CONFLICT (object_key) DO NOTHING;
    RETURN OLD;
END
$$;

CREATE TRIGGER documents_queue_object_deletion AFTER DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION documents_queue_object_deletion();
