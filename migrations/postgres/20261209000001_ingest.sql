-- Webhook bodies are compressed with lz4 instead of pglz where the server has it (PostgreSQL
-- 14 and later, built with lz4, as the common packages are): at a few thousand deliveries a
-- second, pglz was a third of the database's work. Elsewhere the column keeps pglz.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        BEGIN
            EXECUTE 'ALTER TABLE webhook_deliveries ALTER COLUMN payload SET COMPRESSION lz4';
            EXECUTE 'ALTER TABLE webhook_deliveries ALTER COLUMN request SET COMPRESSION lz4';
        EXCEPTION WHEN feature_not_supported THEN
            NULL;
        END;
    END IF;
END
$$;
