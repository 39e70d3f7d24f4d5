//! Jira Cloud and Data Center sign alike: `X-Hub-Signature: sha256=<hex HMAC-SHA256(body)>`.

use axum::http::HeaderMap;

use crate::integrations::signature::{VerifyError, WebhookSecrets, verify_prefixed_body_hmac};

pub const SIGNATURE_HEADER: &str = "X-Hub-Signature";

/// Checks that `body` was signed with one of `secrets`.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &WebhookSecrets,
) -> Result<(), VerifyError> {
    verify_prefixed_body_hmac(headers, body, secrets, SIGNATURE_HEADER, "sha256=")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-hub-signature", value.parse().unwrap());
        headers
    }

    // HMAC-SHA256("jira-secret", body), computed independently with Python's hmac module.
    const BODY: &[u8] = br#"{"webhookEvent":"comment_created"}"#;
    const SIGNATURE: &str =
        "sha256=e930796517062d62de8f7a9c7a312434595c02a3b47b6402da0a37565e1492e0";

    #[test]
    fn a_signed_body_verifies_and_a_tampered_one_does_not() {
        let secrets = WebhookSecrets::new(["jira-secret"]);
        assert_eq!(verify(&signed(SIGNATURE), BODY, &secrets), Ok(()));
        assert_eq!(
            verify(
                &signed(SIGNATURE),
                br#"{"webhookEvent":"comment_deleted"}"#,
                &secrets
            ),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(&HeaderMap::new(), BODY, &secrets),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
    }
}
