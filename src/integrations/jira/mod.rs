//! Jira Cloud: verifying its webhook deliveries and parsing them into requests.

mod parse;
mod verify;

pub use parse::parse;
pub use verify::verify;
