-- MCP servers: a user's own `mcp_config`, and settings of the whole service such as the
-- administrators' `mcp_config`, each stored as JSON sealed with the service's key.
ALTER TABLE users ADD COLUMN mcp_config TEXT;
CREATE TABLE service_settings (
    name          TEXT PRIMARY KEY,
    sealed_value  TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);
