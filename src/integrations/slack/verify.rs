//! Slack's signing secret: `X-Slack-Signature: v0=<hex HMAC-SHA256("v0:" + timestamp + ":" + body)>`
//! with `X-Slack-Request-Timestamp` within five minutes of now.

use axum::http::HeaderMap;

use crate::integrations::signature::{
    VerifyError, WebhookSecrets, check_freshness, header, hmac_sha256_matches,
};

pub const SIGNATURE_HEADER: &str = "X-Slack-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
/// Slack's own limit against replays.
pub const MAX_AGE_MS: i64 = 5 * 60 * 1000;

/// Checks that `body` was signed with one of `secrets` at a time near `now_ms`.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &WebhookSecrets,
    now_ms: i64,
) -> Result<(), VerifyError> {
    let timestamp = header(headers, TIMESTAMP_HEADER)?;
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::MalformedHeader(TIMESTAMP_HEADER))?;
    let signature = header(headers, SIGNATURE_HEADER)?
        .strip_prefix("v0=")
        .ok_or(VerifyError::MalformedHeader(SIGNATURE_HEADER))?;
    hmac_sha256_matches(
        secrets,
        &[b"v0:", timestamp.as_bytes(), b":", body],
        signature,
        SIGNATURE_HEADER,
    )?;
    check_freshness(seconds.saturating_mul(1000), now_ms, MAX_AGE_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's documented example (api.slack.com, "Verifying requests from Slack").
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: i64 = 1531420618;
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn headers(timestamp: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-slack-request-timestamp", timestamp.parse().unwrap());
        headers.insert("x-slack-signature", signature.parse().unwrap());
        headers
    }

    #[test]
    fn slacks_published_example_verifies_when_fresh() {
        let secrets = WebhookSecrets::new([SECRET]);
        let now_ms = TIMESTAMP * 1000 + 60_000;
        let h = headers(&TIMESTAMP.to_string(), SIGNATURE);
        assert_eq!(verify(&h, BODY.as_bytes(), &secrets, now_ms), Ok(()));
    }

    #[test]
    fn stale_or_tampered_deliveries_are_rejected() {
        let secrets = WebhookSecrets::new([SECRET]);
        let h = headers(&TIMESTAMP.to_string(), SIGNATURE);
        let six_minutes_later = TIMESTAMP * 1000 + 6 * 60_000;
        assert!(matches!(
            verify(&h, BODY.as_bytes(), &secrets, six_minutes_later),
            Err(VerifyError::Stale { .. })
        ));
        let now_ms = TIMESTAMP * 1000;
        let tampered = BODY.replace("roadrunner", "coyote");
        assert_eq!(
            verify(&h, tampered.as_bytes(), &secrets, now_ms),
            Err(VerifyError::BadSignature)
        );
        // The timestamp is signed too: moving it forward breaks the signature.
        let moved = headers(&(TIMESTAMP + 1).to_string(), SIGNATURE);
        assert_eq!(
            verify(&moved, BODY.as_bytes(), &secrets, now_ms),
            Err(VerifyError::BadSignature)
        );
        let bad_time = headers("yesterday", SIGNATURE);
        assert_eq!(
            verify(&bad_time, BODY.as_bytes(), &secrets, now_ms),
            Err(VerifyError::MalformedHeader(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(&HeaderMap::new(), BODY.as_bytes(), &secrets, now_ms),
            Err(VerifyError::MissingHeader(TIMESTAMP_HEADER))
        );
    }
}
