-- Provider settings made in the dashboard (a GitHub App created from its manifest, say), each
-- sealed with the service's key. A setting given in the environment wins over the stored one.
CREATE TABLE provider_settings (
    name          TEXT PRIMARY KEY,
    sealed_value  TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);
