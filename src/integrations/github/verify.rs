//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>`.

use axum::http::HeaderMap;

use crate::integrations::signature::{VerifyError, WebhookSecrets, verify_prefixed_body_hmac};

pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

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
        headers.insert("x-hub-signature-256", value.parse().unwrap());
        headers
    }

    /// GitHub's documented example.
    const DOCUMENTED: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_published_example_verifies() {
        let secrets = WebhookSecrets::new(["It's a Secret to Everybody"]);
        assert_eq!(
            verify(&signed(DOCUMENTED), b"Hello, World!", &secrets),
            Ok(())
        );
    }

    #[test]
    fn any_configured_secret_verifies_so_secrets_can_rotate() {
        let secrets = WebhookSecrets::new(["the-new-one", "It's a Secret to Everybody"]);
        assert_eq!(
            verify(&signed(DOCUMENTED), b"Hello, World!", &secrets),
            Ok(())
        );
    }

    #[test]
    fn tampering_and_malformed_headers_are_rejected() {
        let secrets = WebhookSecrets::new(["It's a Secret to Everybody"]);
        assert_eq!(
            verify(&signed(DOCUMENTED), b"Hello, World?", &secrets),
            Err(VerifyError::BadSignature)
        );
        let wrong_secret = WebhookSecrets::new(["It's a secret to everybody"]);
        assert_eq!(
            verify(&signed(DOCUMENTED), b"Hello, World!", &wrong_secret),
            Err(VerifyError::BadSignature)
        );
        let no_secret = WebhookSecrets::default();
        assert_eq!(
            verify(&signed(DOCUMENTED), b"Hello, World!", &no_secret),
            Err(VerifyError::BadSignature)
        );
        let sha1 = "sha1=757107ea0eb2509fc211221cce984b8a37570b6d";
        assert_eq!(
            verify(&signed(sha1), b"Hello, World!", &secrets),
            Err(VerifyError::MalformedHeader(SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(&signed("sha256=zz"), b"Hello, World!", &secrets),
            Err(VerifyError::MalformedHeader(SIGNATURE_HEADER))
        );
        let truncated = &DOCUMENTED[..DOCUMENTED.len() - 2];
        assert_eq!(
            verify(&signed(truncated), b"Hello, World!", &secrets),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(&HeaderMap::new(), b"Hello, World!", &secrets),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
    }
}
