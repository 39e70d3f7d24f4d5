-- Webhook intake: who may ask from which provider account, and which item each request came from.

-- A provider account (GitHub/GitLab user, Slack/Jira/Linear member) linked to a user of ours.
-- `workspace` is the GitHub/GitLab host, Slack team id, Jira site or Linear organization id.
CREATE TABLE user_links (
    provider     TEXT NOT NULL,
    workspace    TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (provider, workspace, external_id)
);
CREATE INDEX user_links_by_user ON user_links (user_id);

-- The item (comment, review, message) behind each handled request: a second delivery about the
-- same item (Slack sends a mention in a thread as two events) is a duplicate.
CREATE TABLE intake_requests (
    request_key  TEXT PRIMARY KEY,
    delivery_id  BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL
);

-- The intake job that handled the delivery: a job that finds its own id here already did its work.
ALTER TABLE webhook_deliveries ADD COLUMN intake_id TEXT;

-- The request recognised in the delivery (JSON), kept so that an administrator can re-run it.
ALTER TABLE webhook_deliveries ADD COLUMN request TEXT;
