-- Companies: the platform's central resource. Hard delete; dependent rows (metric
-- points) go with the company through ON DELETE CASCADE.
CREATE TABLE IF NOT EXISTS companies (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    ticker       text        CHECK (ticker IS NULL OR (ticker = upper(ticker) AND ticker ~ '^[A-Z0-9][A-Z0-9.\-]{0,11}$')),
    sector       text        CHECK (sector IS NULL OR char_length(sector) <= 100),
    industry     text        CHECK (industry IS NULL OR char_length(industry) <= 100),
    country      text        CHECK (country IS NULL OR country ~ '^[A-Z]{2}$'),
    website      text        CHECK (website IS NULL OR char_length(website) <= 2048),
    description  text        CHECK (description IS NULL OR char_length(description) <= 10000),
    employees    integer     CHECK (employees IS NULL OR employees >= 0),
    founded_year smallint    CHECK (founded_year IS NULL OR founded_year BETWEEN 1600 AND 2100),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT companies_ticker_key UNIQUE (ticker)
);

-- Keyset pagination runs over (name, id), optionally within one sector or country.
CREATE INDEX IF NOT EXISTS companies_name_id_idx ON companies (name, id);
CREATE INDEX IF NOT EXISTS companies_sector_name_id_idx ON companies (sector, name, id);
CREATE INDEX IF NOT EXISTS companies_country_name_id_idx ON companies (country, name, id);

-- Search by name/ticker uses trigram GIN indexes when pg_trgm is installed (0001 creates
-- it); without it the API falls back to ILIKE scans.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX IF NOT EXISTS companies_name_trgm_idx ON companies USING gin (name gin_trgm_ops)';
        EXECUTE 'CREATE INDEX IF NOT EXISTS companies_ticker_trgm_idx ON companies USING gin (ticker gin_trgm_ops)';
    END IF;
END
$$;

DROP TRIGGER IF EXISTS companies_set_updated_at ON companies;
CREATE TRIGGER companies_set_updated_at BEFORE UPDATE ON companies
    FOR EACH ROW EXECUTE FUNCTION corpintel_set_updated_at();
