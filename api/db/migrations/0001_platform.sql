-- 0001 platform: extensions and helpers every later migration may use.
--
-- pg_trgm (trigram search on names/tickers) and pgcrypto are trusted extensions, so the
-- database owner can create them without superuser rights. They ship with PostgreSQL's
-- contrib; if a server lacks them this migration still succeeds with a warning, and code
-- that needs them checks db.HasExtension.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'extension pg_trgm unavailable: %', SQLERRM;
END
$$;

DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pgcrypto;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'extension pgcrypto unavailable: %', SQLERRM;
END
$$;

-- Trigger function keeping an updated_at column current:
--   CREATE TRIGGER t_set_updated_at BEFORE UPDATE ON t
--       FOR EACH ROW EXECUTE FUNCTION corpintel_set_updated_at();
CREATE OR REPLACE FUNCTION corpintel_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
