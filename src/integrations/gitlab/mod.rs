//! GitLab: verifying its webhook deliveries and reading what they ask.

mod parse;
mod verify;

pub use parse::parse;
pub use verify::verify;
