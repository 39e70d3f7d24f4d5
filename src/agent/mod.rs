//! The agent: LLM providers, tools, the loop, condenser, stuck detector and prompt templates.
