-- Sign-in of OpenHands' CLI through the OAuth 2.0 device flow (RFC 8628): a device asks, a
-- signed-in user approves its code in the dashboard, the device then gets an API key once.
-- Only a hash of the device code is kept.
CREATE TABLE device_grants (
    device_code_hash  TEXT PRIMARY KEY,
    user_code         TEXT NOT NULL UNIQUE,
    user_id           TEXT REFERENCES users (id) ON DELETE CASCADE,
    denied            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    last_polled_at    BIGINT
);
