-- Start tasks of OpenHands' V1 app-server API: what a client asked for when it started a
-- conversation, and the conversation that was made (or why none was). Their progress is read
-- from the conversation itself.
CREATE TABLE start_tasks (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id  TEXT,
    error            TEXT,
    request          TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX start_tasks_of_user ON start_tasks (user_id, created_at);
