-- Core schema: users, conversations, their append-only event log, webhook deliveries and the outbox.
-- Timestamps are milliseconds since the Unix epoch; JSON documents are stored as text.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    login       TEXT NOT NULL UNIQUE,
    email       TEXT,
    is_admin    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE conversations (
    id             TEXT PRIMARY KEY,
    owner_id       TEXT NOT NULL REFERENCES users (id),
    title          TEXT NOT NULL,
    status         TEXT NOT NULL,
    trigger_kind   TEXT NOT NULL,
    repository     TEXT,
    branch         TEXT,
    external_ref   TEXT,
    last_event_id  BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX conversations_by_owner ON conversations (owner_id, updated_at DESC);
-- A follow-up on the same issue, thread or ticket continues the conversation it started.
CREATE UNIQUE INDEX conversations_by_external_ref ON conversations (trigger_kind, external_ref)
    WHERE external_ref IS NOT NULL;

CREATE TABLE events (
    conversation_id  TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    id               BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    source           TEXT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    PRIMARY KEY (conversation_id, id)
);

CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();

CREATE TABLE webhook_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    provider         TEXT NOT NULL,
    delivery_id      TEXT NOT NULL,
    event            TEXT NOT NULL,
    received_at      BIGINT NOT NULL,
    status           TEXT NOT NULL,
    reason           TEXT,
    conversation_id  TEXT REFERENCES conversations (id) ON DELETE SET NULL,
    payload          BYTEA NOT NULL,
    UNIQUE (provider, delivery_id)
);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at DESC);

CREATE TABLE outbox (
    id               BIGSERIAL PRIMARY KEY,
    conversation_id  TEXT REFERENCES conversations (id) ON DELETE CASCADE,
    provider         TEXT NOT NULL,
    kind             TEXT NOT NULL,
    target           TEXT NOT NULL,
    body             TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT
);
CREATE INDEX outbox_pending ON outbox (status, id);

-- Completions of queue probe jobs: one row each time a probe job finishes.
CREATE TABLE queue_probe_completions (
    id            BIGSERIAL PRIMARY KEY,
    probe_id      TEXT NOT NULL,
    worker        TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    completed_at  BIGINT NOT NULL
);
CREATE INDEX queue_probe_completions_by_probe ON queue_probe_completions (probe_id);
