//! openhands: the integration service of an AI software-engineering agent.
//!
//! People mention `@openhands` on an issue, pull request, Slack thread or ticket; the service
//! verifies the webhook, queues the work durably, runs the agent in a sandbox and posts the
//! result back where it was asked.

pub mod agent;
pub mod app;
pub mod bench;
pub mod config;
pub mod crypto;
pub mod doctor;
pub mod intake;
pub mod integrations;
pub mod live;
pub mod logging;
pub mod queue;
pub mod results;
pub mod sandbox;
pub mod setting;
pub mod storage;
pub mod web;
