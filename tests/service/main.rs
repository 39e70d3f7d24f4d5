//! The service's behaviour in-process: one test binary whose modules each check one part,
//! against real SQLite and PostgreSQL databases, a real Docker engine, the provider fakes and
//! the scripted LLM (`tests/support/`). A module's tests run as `cargo test --test service
//! MODULE::`. Tests here may run at the same time as any other test of this binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod agent;
mod agent_server_reference;
mod deliveries_api;
mod editor;
mod editor_parity;
mod fake_llm;
mod http;
mod legacy_ws;
mod llm_client;
mod login;
mod mcp;
mod mcp_servers;
mod openapi;
mod provider_fakes;
mod provider_settings;
mod queue;
mod reach;
mod results;
mod sandbox_docker;
mod sandbox_git;
mod sandbox_image;
mod sandbox_process;
mod sandbox_runtime_api;
mod storage;
mod v1_api;
mod web_api;
mod webhooks;
