-- First start: the administrator the service makes when it has no users signs in through a
-- one-time link printed at start-up, a new one at each start until someone has signed in.
-- Only the token's SHA-256 is kept.
CREATE TABLE sign_in_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

-- When the user last signed in to the dashboard, by any means.
ALTER TABLE users ADD COLUMN signed_in_at BIGINT;
