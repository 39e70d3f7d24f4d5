//! The agent: LLM providers, tools, the loop, condenser, stuck detector and prompt templates.

pub mod condense;
pub mod editor;
pub mod events;
pub mod history;
pub mod llm;
pub mod mcp;
pub mod microagents;
pub mod prompt;
mod publish;
pub mod recall;
mod run;
mod scripts;
pub mod settings;
pub mod stuck;
pub mod title;
pub mod tools;
pub mod workspace;

pub(crate) use run::handle as handle_run;
pub use run::{AgentRuntime, RunConversation, SANDBOX_ENGINE};
pub(crate) use workspace::{
    handle_read as handle_workspace_read, handle_removal as handle_sandbox_removal,
};
