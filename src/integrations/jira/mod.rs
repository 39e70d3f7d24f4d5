//! Jira, Cloud and Data Center: verifying webhook deliveries, parsing them into requests and
//! commenting through the REST API.

mod api;
mod parse;
mod verify;
pub mod wiki;

pub use api::*;
pub use parse::{parse, parse_data_center};
pub use verify::verify;

use crate::integrations::request::Provider;

/// Which Jira a delivery comes from or a client talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edition {
    /// Atlassian's cloud: account ids, REST API v3, comments as Atlassian documents.
    Cloud,
    /// A Data Center (or Server) installation: user names, REST API v2, wiki markup.
    DataCenter,
}

impl Edition {
    /// The provider its webhooks are accepted as.
    pub fn provider(self) -> Provider {
        match self {
            Self::Cloud => Provider::Jira,
            Self::DataCenter => Provider::JiraDc,
        }
    }
}
