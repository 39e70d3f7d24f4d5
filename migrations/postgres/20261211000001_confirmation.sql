-- Confirmation mode: a user's choice for their conversations, and a conversation's own choice
-- (NULL: the owner's).
ALTER TABLE users ADD COLUMN confirmation_mode BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE conversations ADD COLUMN confirmation_mode BOOLEAN;
