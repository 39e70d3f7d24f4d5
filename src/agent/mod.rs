//! The agent: LLM providers, tools, the loop, condenser, stuck detector and prompt templates.

pub mod editor;
pub mod llm;
mod run;
pub mod settings;

pub use run::RunConversation;
pub(crate) use run::handle as handle_run;
