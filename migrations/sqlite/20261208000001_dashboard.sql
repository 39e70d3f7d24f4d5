-- The dashboard: a retried "new conversation" finds the conversation its first try made, and
-- the web tier reads a conversation's workspace through a worker that can reach its sandbox.

-- The Idempotency-Key a user sent with POST /api/conversations, and what it created.
CREATE TABLE conversation_requests (
    owner_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    idempotency_key  TEXT NOT NULL,
    conversation_id  TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (owner_id, idempotency_key)
);

-- One read of a sandbox's workspace (its changes, a directory, a file), asked by the web
-- tier and answered by a worker: status is pending, done, gone (no sandbox) or failed.
CREATE TABLE workspace_reads (
    id               TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL,
    path             TEXT,
    status           TEXT NOT NULL,
    content_type     TEXT,
    body             BLOB,
    error            TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX workspace_reads_by_age ON workspace_reads (created_at);
