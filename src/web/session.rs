//! Browser sessions: a cookie holding the user's id and an expiry, signed with HMAC-SHA256.
//! Nothing is stored server-side; signing out removes the cookie, and a session ends when it
//! expires or the signing key changes.

use std::time::Duration;

use subtle::ConstantTimeEq;

use crate::crypto::hmac_sha256;

use crate::storage::now_millis;

/// How long a browser session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone)]
pub struct SessionSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSigner(***)")
    }
}

impl SessionSigner {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, message: &str) -> [u8; 32] {
        hmac_sha256(&self.key, message.as_bytes())
    }

    /// The cookie value of a session of `user_id`, valid for [`SESSION_LIFETIME`].
    pub fn sign(&self, user_id: &str) -> String {
        let expires = now_millis() + SESSION_LIFETIME.as_millis() as i64;
        let message = format!("{user_id}.{expires}");
        format!("{message}.{}", hex::encode(self.mac(&message)))
    }

    /// `payload` (which must not contain `.`) with a MAC bound to `purpose`, so a value
    /// signed for one purpose is never accepted for another.
    pub fn sign_token(&self, purpose: &str, payload: &str) -> String {
        let mac = self.mac(&format!("{purpose}|{payload}"));
        format!("{payload}.{}", hex::encode(mac))
    }

    /// The payload of a value made by [`Self::sign_token`] for `purpose`.
    pub fn verify_token<'v>(&self, purpose: &str, value: &'v str) -> Option<&'v str> {
        let (payload, mac) = value.rsplit_once('.')?;
        let mac = hex::decode(mac).ok()?;
        let expected = self.mac(&format!("{purpose}|{payload}"));
        bool::from(expected.as_slice().ct_eq(&mac)).then_some(payload)
    }

    /// The user of a valid, unexpired session cookie.
    pub fn verify(&self, value: &str) -> Option<String> {
        let (message, mac) = value.rsplit_once('.')?;
        let mac = hex::decode(mac).ok()?;
        if !bool::from(self.mac(message).as_slice().ct_eq(&mac)) {
            return None;
        }
        let (user_id, expires) = message.split_once('.')?;
        let expires: i64 = expires.parse().ok()?;
        (expires > now_millis()).then(|| user_id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_verifies_only_as_signed_and_until_it_expires() {
        let signer = SessionSigner::new([7; 32]);
        let cookie = signer.sign("u1");
        assert_eq!(signer.verify(&cookie).as_deref(), Some("u1"));
        assert_eq!(SessionSigner::new([8; 32]).verify(&cookie), None);
        let forged = cookie.replacen("u1", "u2", 1);
        assert_eq!(signer.verify(&forged), None);
        let message = format!("u1.{}", now_millis() - 1);
        let expired = format!("{message}.{}", hex::encode(signer.mac(&message)));
        assert_eq!(signer.verify(&expired), None);
        for junk in ["", ".", "a.b.c", "u1.notanumber.00"] {
            assert_eq!(signer.verify(junk), None);
        }
    }

    #[test]
    fn a_token_verifies_only_for_its_purpose() {
        let signer = SessionSigner::new([7; 32]);
        let token = signer.sign_token("flow", "abc");
        assert_eq!(signer.verify_token("flow", &token), Some("abc"));
        assert_eq!(signer.verify_token("other", &token), None);
        assert_eq!(
            signer.verify_token("flow", &token.replacen("abc", "abd", 1)),
            None
        );
        // A session cookie is not a token, and a token is not a session.
        assert_eq!(signer.verify_token("flow", &signer.sign("u1")), None);
        assert_eq!(signer.verify(&token), None);
    }
}
