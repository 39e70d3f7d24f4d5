//! Jira Cloud: verifying its webhook deliveries and parsing them into requests.

mod api;
mod parse;
mod verify;

pub use api::*;
pub use parse::parse;
pub use verify::verify;
