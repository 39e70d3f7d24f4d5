//! `Linear-Signature: <hex HMAC-SHA256(body)>`, and the signed body's `webhookTimestamp`
//! (milliseconds) within a minute of now.

use axum::http::HeaderMap;
use serde::Deserialize;

use crate::integrations::signature::{
    VerifyError, WebhookSecrets, check_freshness, header, hmac_sha256_matches,
};

pub const SIGNATURE_HEADER: &str = "Linear-Signature";
/// Linear's recommended limit against replays.
pub const MAX_AGE_MS: i64 = 60 * 1000;

#[derive(Deserialize)]
struct Stamp {
    #[serde(rename = "webhookTimestamp")]
    webhook_timestamp: i64,
}

/// Checks that `body` was signed with one of `secrets` and stamped near `now_ms`.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &WebhookSecrets,
    now_ms: i64,
) -> Result<(), VerifyError> {
    let signature = header(headers, SIGNATURE_HEADER)?;
    hmac_sha256_matches(secrets, &[body], signature, SIGNATURE_HEADER)?;
    // Only a body that is signed is worth parsing.
    let stamp: Stamp = serde_json::from_slice(body)
        .map_err(|_| VerifyError::MissingBodyTimestamp("webhookTimestamp"))?;
    check_freshness(stamp.webhook_timestamp, now_ms, MAX_AGE_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    // HMAC-SHA256("linear-secret", body), computed independently with Python's hmac module.
    const BODY: &[u8] = br#"{"type":"Comment","action":"create","webhookTimestamp":1767225600000}"#;
    const SIGNATURE: &str = "6a46153308482c356ddb456b6943a7da83847640ffcdf4f33ff7fae1e5d98b82";
    const UNSTAMPED: &[u8] = br#"{"type":"Comment","action":"create"}"#;
    const UNSTAMPED_SIGNATURE: &str =
        "5ce8b3c4380bf2049567fb372b4e95ca2cf8df776c9181b9e6b380b2966bece6";

    fn signed(signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("linear-signature", signature.parse().unwrap());
        headers
    }

    #[test]
    fn a_fresh_signed_delivery_verifies() {
        let secrets = WebhookSecrets::new(["linear-secret"]);
        assert_eq!(
            verify(&signed(SIGNATURE), BODY, &secrets, 1767225600000 + 30_000),
            Ok(())
        );
    }

    #[test]
    fn stale_tampered_or_unstamped_deliveries_are_rejected() {
        let secrets = WebhookSecrets::new(["linear-secret"]);
        let now = 1767225600000;
        assert!(matches!(
            verify(&signed(SIGNATURE), BODY, &secrets, now + 61_000),
            Err(VerifyError::Stale { .. })
        ));
        let tampered = br#"{"type":"Comment","action":"create","webhookTimestamp":1767225660000}"#;
        assert_eq!(
            verify(&signed(SIGNATURE), tampered, &secrets, now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(&signed(UNSTAMPED_SIGNATURE), UNSTAMPED, &secrets, now),
            Err(VerifyError::MissingBodyTimestamp("webhookTimestamp"))
        );
        assert_eq!(
            verify(&HeaderMap::new(), BODY, &secrets, now),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
    }
}
