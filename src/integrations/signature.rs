//! What every provider's verification shares: webhook secrets that can be rotated, and
//! comparisons that take the same time whether or not, and wherever, they differ.

use std::fmt;
use std::str::FromStr;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The secrets a provider's deliveries may be signed with: several at once, so that a secret
/// can be rotated without rejecting deliveries in flight. Never printed.
#[derive(Clone, Default)]
pub struct WebhookSecrets(Vec<Vec<u8>>);

impl WebhookSecrets {
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        Self(
            secrets
                .into_iter()
                .map(|s| s.as_ref().to_vec())
                .filter(|s| !s.is_empty())
                .collect(),
        )
    }

    /// No secret configured: the provider is disabled.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A comma-separated list, as in `GITHUB_WEBHOOK_SECRET=new,old`. Blank entries are ignored.
impl FromStr for WebhookSecrets {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s.split(',').map(str::trim)))
    }
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecrets({} configured)", self.0.len())
    }
}

/// Why a delivery was not accepted as coming from the provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("the {0} header is malformed")]
    MalformedHeader(&'static str),
    #[error("the signature does not match any configured secret")]
    BadSignature,
    #[error("the token does not match any configured token")]
    BadToken,
    #[error(
        "the delivery's timestamp is {age_ms} ms away from now (at most {limit_ms} ms allowed)"
    )]
    Stale { age_ms: i64, limit_ms: i64 },
    #[error("the body has no valid {0}")]
    MissingBodyTimestamp(&'static str),
}

/// The header's value as text; missing or not text is an error naming the header.
pub fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    headers
        .get(name)
        .ok_or(VerifyError::MissingHeader(name))?
        .to_str()
        .map_err(|_| VerifyError::MalformedHeader(name))
        .map(str::trim)
}

/// Whether `signature_hex` is the HMAC-SHA256, under any of `secrets`, of the concatenation
/// of `message`. The comparison is constant-time (`Mac::verify_slice`).
pub fn hmac_sha256_matches(
    secrets: &WebhookSecrets,
    message: &[&[u8]],
    signature_hex: &str,
    header_name: &'static str,
) -> Result<(), VerifyError> {
    let signature =
        hex::decode(signature_hex).map_err(|_| VerifyError::MalformedHeader(header_name))?;
    // Every secret is tried, so the time taken does not tell which one matched.
    let mut matched = false;
    for secret in &secrets.0 {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            continue;
        };
        for part in message {
            mac.update(part);
        }
        matched |= mac.verify_slice(&signature).is_ok();
    }
    if matched {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// Whether `token` equals any of `secrets`, in time that depends on neither's content nor
/// length (both are hashed first).
pub fn token_matches(secrets: &WebhookSecrets, token: &str) -> Result<(), VerifyError> {
    let given = Sha256::digest(token.as_bytes());
    let mut matched = subtle::Choice::from(0);
    for secret in &secrets.0 {
        matched |= Sha256::digest(secret).ct_eq(&given);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::BadToken)
    }
}

/// Rejects a timestamp more than `limit_ms` away from `now_ms` (either way: a clock ahead of
/// ours is as suspicious as a replay).
pub fn check_freshness(timestamp_ms: i64, now_ms: i64, limit_ms: i64) -> Result<(), VerifyError> {
    let age_ms = now_ms.saturating_sub(timestamp_ms).saturating_abs();
    if age_ms > limit_ms {
        return Err(VerifyError::Stale { age_ms, limit_ms });
    }
    Ok(())
}

/// Verifies a `<prefix><hex HMAC-SHA256(body)>` signature header (GitHub, Jira).
pub fn verify_prefixed_body_hmac(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &WebhookSecrets,
    header_name: &'static str,
    prefix: &str,
) -> Result<(), VerifyError> {
    let value = header(headers, header_name)?;
    let signature = value
        .strip_prefix(prefix)
        .ok_or(VerifyError::MalformedHeader(header_name))?;
    hmac_sha256_matches(secrets, &[body], signature, header_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_a_comma_separated_list_and_never_printed() {
        let secrets: WebhookSecrets = "new-secret, old-secret,,".parse().unwrap();
        assert_eq!(secrets.0.len(), 2);
        let shown = format!("{secrets:?}");
        assert!(
            !shown.contains("secret-") && !shown.contains("new"),
            "{shown}"
        );
        assert!("".parse::<WebhookSecrets>().unwrap().is_empty());
    }

    #[test]
    fn tokens_compare_whole() {
        let secrets = WebhookSecrets::new(["s3cret-token", "rotated"]);
        assert_eq!(token_matches(&secrets, "s3cret-token"), Ok(()));
        assert_eq!(token_matches(&secrets, "rotated"), Ok(()));
        for wrong in ["s3cret", "s3cret-token2", "", "S3CRET-TOKEN"] {
            assert_eq!(
                token_matches(&secrets, wrong),
                Err(VerifyError::BadToken),
                "{wrong}"
            );
        }
        assert_eq!(
            token_matches(&WebhookSecrets::default(), ""),
            Err(VerifyError::BadToken)
        );
    }

    #[test]
    fn freshness_is_symmetric() {
        assert!(check_freshness(1_000, 1_300, 300).is_ok());
        assert!(check_freshness(1_300, 1_000, 300).is_ok());
        assert_eq!(
            check_freshness(1_000, 1_301, 300),
            Err(VerifyError::Stale {
                age_ms: 301,
                limit_ms: 300
            })
        );
        assert!(
            check_freshness(i64::MIN, i64::MAX, 300).is_err(),
            "no overflow"
        );
    }
}
