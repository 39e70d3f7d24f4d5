//! The agent: LLM providers, tools, the loop, condenser, stuck detector and prompt templates.

mod run;

pub use run::RunConversation;
pub(crate) use run::handle as handle_run;
