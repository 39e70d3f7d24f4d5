//! GitLab: verifying its webhook deliveries, reading what they ask, and its API.

mod api;
mod parse;
mod verify;

pub use api::*;
pub use parse::parse;
pub use verify::verify;
