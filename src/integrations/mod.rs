//! Providers that send work and receive results: GitHub, GitLab, Slack, Jira and Linear.
//! Each one verifies its deliveries, parses them into the provider-neutral request and replies
//! through its own API, inside its own folder.

pub mod github;
pub mod gitlab;
pub mod jira;
pub mod linear;
pub mod mention;
pub mod request;
pub mod signature;
pub mod slack;
