-- API keys: shown once, stored as a SHA-256 hash of the whole key.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT
);
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at);

-- Each user's LLM settings; the key is encrypted (OPENHANDS_SECRET_KEY).
ALTER TABLE users ADD COLUMN llm_model TEXT;
ALTER TABLE users ADD COLUMN llm_base_url TEXT;
ALTER TABLE users ADD COLUMN llm_api_key TEXT;

-- Secrets handed to the user's sandboxes as environment variables, encrypted at rest.
CREATE TABLE user_secrets (
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,
    description  TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, name)
);

-- Every appended event is announced on commit, so web processes on other nodes stream it.
CREATE FUNCTION announce_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('openhands_events', NEW.conversation_id || ':' || NEW.id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_announce AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION announce_event();

-- A web link to the issue, pull request, thread or ticket a conversation came from.
ALTER TABLE conversations ADD COLUMN trigger_url TEXT;
