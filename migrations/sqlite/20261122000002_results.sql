-- Posts back to providers: what the provider made of a delivered post (the comment's id, say),
-- so that later posts can edit it.
ALTER TABLE outbox ADD COLUMN result TEXT;
CREATE INDEX outbox_by_conversation ON outbox (conversation_id, id);
