-- What each worker last saw of a dependency the web processes cannot check themselves (the
-- sandbox engine): the dashboard and /server_info report it.
CREATE TABLE dependency_checks (
    name        TEXT NOT NULL,
    instance    TEXT NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT,
    checked_at  BIGINT NOT NULL,
    PRIMARY KEY (name, instance)
);

-- Web processes poll for conversations with new events (SQLite has no NOTIFY).
CREATE INDEX conversations_by_update ON conversations (updated_at);

-- The host of a web conversation's repository: github or gitlab.
ALTER TABLE conversations ADD COLUMN git_provider TEXT;
