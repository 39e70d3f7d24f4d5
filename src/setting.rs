//! The building blocks of settings, shared by every subsystem: a value that must never be
//! printed, the error of a value that cannot work, and the check of a URL setting. It imports
//! nothing of the crate, so every module may use it without depending on the configuration.

use std::fmt;
use std::str::FromStr;

/// A value that must never be printed: `Debug` and `Display` show only that it is set.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret, in time that depends on neither's content nor length
    /// (both are hashed first): for keys that clients present.
    pub fn matches(&self, given: &str) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        bool::from(Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// A configuration value that cannot work, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

/// Refuses a setting `name` whose `value` is not an http(s) URL with a host.
pub fn check_url(name: &str, value: &str) -> Result<(), ConfigError> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(ConfigError::new(format!(
            "{name} `{value}` is not an http(s) URL (e.g. https://example.com)"
        ))),
    }
}
