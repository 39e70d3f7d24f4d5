-- Nothing changes on SQLite: the PostgreSQL migration of the same name chooses how webhook
-- bodies are compressed there, and SQLite stores them as they are.
SELECT 1;
