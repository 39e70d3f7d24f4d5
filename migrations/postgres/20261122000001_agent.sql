-- The agent loop: per-conversation LLM statistics, the run that holds the conversation, and
-- per-user limits.

-- Sums over every LLM call of the conversation (the events carry each call's figures).
ALTER TABLE conversations ADD COLUMN llm_calls BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN prompt_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN completion_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN cached_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN llm_latency_ms BIGINT NOT NULL DEFAULT 0;

-- The run job acting on the conversation, and until when its claim holds unless renewed:
-- one run at a time per conversation.
ALTER TABLE conversations ADD COLUMN runner TEXT;
ALTER TABLE conversations ADD COLUMN runner_until BIGINT;

-- The sandbox the conversation last ran in.
ALTER TABLE conversations ADD COLUMN sandbox_id TEXT;

-- Per-user limits; NULL means the server's default (AGENT_MAX_ITERATIONS, AGENT_MAX_BUDGET_USD).
ALTER TABLE users ADD COLUMN max_iterations BIGINT;
ALTER TABLE users ADD COLUMN max_budget_usd DOUBLE PRECISION;
