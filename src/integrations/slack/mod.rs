//! Slack: verifying its webhook deliveries and parsing them into requests, reading what people
//! do with the app's interactive messages, and its Web API.

mod api;
mod interactivity;
pub mod manifest;
mod parse;
mod verify;

pub use api::*;
pub use interactivity::*;
pub use parse::parse;
pub use verify::verify;
