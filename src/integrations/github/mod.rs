//! GitHub: verifying its webhook deliveries, reading what they ask, and its API.

mod api;
mod images;
mod parse;
mod verify;

pub use api::*;
pub use parse::{parse, rendered_route};
pub use verify::verify;
