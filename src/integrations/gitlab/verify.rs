//! `X-Gitlab-Token`: the secret token configured on the webhook, sent as it is.

use axum::http::HeaderMap;

use crate::integrations::signature::{VerifyError, WebhookSecrets, header, token_matches};

pub const TOKEN_HEADER: &str = "X-Gitlab-Token";

/// Checks that the delivery carries one of the configured `tokens`.
pub fn verify(headers: &HeaderMap, tokens: &WebhookSecrets) -> Result<(), VerifyError> {
    token_matches(tokens, header(headers, TOKEN_HEADER)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_token_is_required() {
        let tokens = WebhookSecrets::new(["glpat-webhook", "previous"]);
        let mut headers = HeaderMap::new();
        assert_eq!(
            verify(&headers, &tokens),
            Err(VerifyError::MissingHeader(TOKEN_HEADER))
        );
        headers.insert("x-gitlab-token", "glpat-webhook".parse().unwrap());
        assert_eq!(verify(&headers, &tokens), Ok(()));
        headers.insert("x-gitlab-token", "previous".parse().unwrap());
        assert_eq!(verify(&headers, &tokens), Ok(()));
        headers.insert("x-gitlab-token", "glpat-webhoo".parse().unwrap());
        assert_eq!(verify(&headers, &tokens), Err(VerifyError::BadToken));
    }
}
