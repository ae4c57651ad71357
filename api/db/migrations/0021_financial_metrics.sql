-- Financial metric time series: one value per (company, metric, time).
--
-- Points belong to a company and go with it: the AFTER DELETE trigger below is the
-- cascade. It replaces a FOREIGN KEY ... ON DELETE CASCADE on purpose: a foreign key
-- checks every inserted row with its own lookup, which halved the bulk-ingest and seed
-- throughput. Writers lock the company row instead, once per batch (SELECT ... FOR KEY
-- SHARE in api/timeseries, the same transaction in api/seed), so a concurrent delete
-- waits for the batch and then removes it too: no orphans either way.
--
-- With TimescaleDB installed the table is a hypertable (monthly chunks); without it, a
-- native table partitioned by month on time. Monthly partitions are created ahead of
-- time by the API (api/timeseries.EnsurePartitions, under an advisory lock); the default
-- partition is a safety net that new partitions take their rows back from.
DO $$
BEGIN
    -- Same test as db.TimescaleAvailable: installed, or offered and preloaded.
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND current_setting('shared_preload_libraries') LIKE '%timescaledb%' THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS timescaledb;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'timescaledb unavailable, using native partitions: %', SQLERRM;
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        EXECUTE $ddl$
            CREATE TABLE IF NOT EXISTS financial_metrics (
                company_id uuid             NOT NULL,
                metric     text             NOT NULL,
                time       timestamptz      NOT NULL,
                value      double precision NOT NULL,
                PRIMARY KEY (company_id, metric, time)
            )
        $ddl$;
        EXECUTE $ddl$
            SELECT create_hypertable('financial_metrics', 'time',
                chunk_time_interval => INTERVAL '30 days', if_not_exists => TRUE)
        $ddl$;
    ELSE
        EXECUTE $ddl$
            CREATE TABLE IF NOT EXISTS financial_metrics (
                company_id uuid             NOT NULL,
                metric     text             NOT NULL,
                time       timestamptz      NOT NULL,
                value      double precision NOT NULL,
                PRIMARY KEY (company_id, metric, time)
            ) PARTITION BY RANGE (time)
        $ddl$;
        EXECUTE 'CREATE TABLE IF NOT EXISTS financial_metrics_default PARTITION OF financial_metrics DEFAULT';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION financial_metrics_cascade_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM financial_metrics f USING deleted_companies d WHERE f.company_id = d.id;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS companies_cascade_metrics ON companies;
CREATE TRIGGER companies_cascade_metrics AFTER DELETE ON companies
    REFERENCING OLD TABLE AS deleted_companies
    FOR EACH STATEMENT EXECUTE FUNCTION financial_metrics_cascade_delete();
