//! Slack: verifying its webhook deliveries.

mod api;
mod verify;

pub use api::*;
pub use verify::verify;

/// Placeholder until the parser lands.
pub fn parse(
    _headers: &axum::http::HeaderMap,
    _body: &[u8],
    _settings: &crate::integrations::request::ParseSettings,
) -> Result<crate::integrations::request::Inbound, crate::integrations::request::ParseError> {
    Err(crate::integrations::request::ParseError::new(
        "not parsed yet",
    ))
}
