-- Reach: people link their own provider accounts, Slack channels have default repositories,
-- and titles written by the model.

-- A one-time sign-in link that links a provider account (Slack member, Jira or Linear user) to
-- whoever follows it and signs in. Only the token's SHA-256 is kept. `delivery_id` is the
-- request that was refused for want of the link: it runs once the account is linked.
CREATE TABLE link_tokens (
    token_hash    TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    workspace     TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    account_name  TEXT NOT NULL,
    delivery_id   BIGINT REFERENCES webhook_deliveries (id) ON DELETE SET NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT,
    used_by       TEXT REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX link_tokens_by_account ON link_tokens (provider, workspace, external_id);

-- The repository a Slack channel's requests work on when they name none (set by an
-- administrator; SLACK_CHANNEL_REPOSITORIES gives defaults under these).
CREATE TABLE slack_channel_repositories (
    channel       TEXT PRIMARY KEY,
    repository    TEXT NOT NULL,
    git_provider  TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Whether the title is a stand-in (the first line of a message) that the model replaces with
-- one of its own on the first run; a rename clears it.
ALTER TABLE conversations ADD COLUMN title_pending BOOLEAN NOT NULL DEFAULT FALSE;
