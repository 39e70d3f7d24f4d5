//! The service's keys, all derived from `OPENHANDS_SECRET_KEY` (or, on a single machine, from a
//! key generated once in the data directory): one signs browser sessions, one encrypts what
//! users store (LLM keys, secrets) with XChaCha20-Poly1305.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::setting::Secret;

/// What stored ciphertexts start with: the scheme, so that it can change later.
const SEALED_PREFIX: &str = "v1:";
const NONCE_BYTES: usize = 24;

#[derive(Clone)]
pub struct Keyring {
    session: [u8; 32],
    encryption: [u8; 32],
    /// Derived from a configured key (not a random one of this process only).
    persistent: bool,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring(persistent: {})", self.persistent)
    }
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

impl Keyring {
    /// Keys derived from `secret`, or random ones for this process when it is unset.
    pub fn new(secret: Option<&Secret>) -> Self {
        match secret {
            Some(secret) => Self::from_bytes(secret.expose().as_bytes(), true),
            None => {
                let random = XChaCha20Poly1305::generate_key(&mut OsRng);
                Self::from_bytes(&random, false)
            }
        }
    }

    fn from_bytes(secret: &[u8], persistent: bool) -> Self {
        Self {
            session: hmac_sha256(secret, b"openhands session v1"),
            encryption: hmac_sha256(secret, b"openhands encryption v1"),
            persistent,
        }
    }

    pub fn session_key(&self) -> [u8; 32] {
        self.session
    }

    /// Whether what is encrypted now can be read after a restart and by other processes.
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// `plaintext` encrypted with a fresh random nonce, as text for the database.
    pub fn seal(&self, plaintext: &str) -> anyhow::Result<String> {
        let cipher = XChaCha20Poly1305::new(&self.encryption.into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD_NO_PAD.encode(bytes)))
    }

    /// The plaintext of a value [`Keyring::seal`] made with the same key.
    pub fn open(&self, sealed: &str) -> anyhow::Result<String> {
        let encoded = sealed
            .strip_prefix(SEALED_PREFIX)
            .context("the stored value is not in a known format")?;
        let bytes = STANDARD_NO_PAD
            .decode(encoded)
            .context("the stored value is not base64")?;
        if bytes.len() < NONCE_BYTES {
            anyhow::bail!("the stored value is too short");
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().context("the stored value is too short")?;
        let cipher = XChaCha20Poly1305::new(&self.encryption.into());
        let plain = cipher.decrypt(&XNonce::from(nonce), sealed).map_err(|_| {
            anyhow::anyhow!(
                "the stored value cannot be decrypted: was OPENHANDS_SECRET_KEY changed?"
            )
        })?;
        String::from_utf8(plain).context("the stored value is not text")
    }
}

/// The stored form of an API key or one-time token: its SHA-256, in hex. Such values are long
/// and random, so a plain hash is enough, and it lets a value be found by its hash.
pub fn key_hash(key: &str) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The service's own key, from which the session and sealing keys are derived.
#[derive(Debug, Clone, clap::Args)]
pub struct KeySettings {
    /// The key that signs browser sessions and encrypts stored LLM keys and secrets: any
    /// string of at least 32 characters, the same on every web and worker process. Unset on
    /// SQLite, one is generated once and kept in the data directory (`secret-key`); required
    /// on PostgreSQL.
    #[arg(
        long,
        env = "OPENHANDS_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub secret_key: Option<Secret>,
}

impl KeySettings {
    pub(crate) fn validate(&self) -> Result<(), crate::setting::ConfigError> {
        match &self.secret_key {
            Some(key) if key.expose().chars().count() < 32 => {
                Err(crate::setting::ConfigError::new(
                    "OPENHANDS_SECRET_KEY must be at least 32 characters (e.g. `openssl rand -hex 32`)",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// A new one-time token (a link's, a first sign-in's): 256 bits from the system's random
/// source, in hex.
pub fn one_time_token() -> String {
    hex::encode(XChaCha20Poly1305::generate_key(&mut OsRng))
}

/// The file in the data directory that holds a generated key.
pub const GENERATED_KEY_FILE: &str = "secret-key";

/// The service's key: OPENHANDS_SECRET_KEY when it is set. Otherwise, on SQLite (one machine,
/// one process), a key generated on the first start and kept in the database's directory
/// (`secret-key`, readable by its owner only), so sessions and stored keys survive restarts
/// without any setting; on PostgreSQL, where every process must share the key, an error that
/// says so. `None` only for an in-memory database: a key of this process alone.
pub fn service_key(
    keys: &KeySettings,
    database: &crate::storage::connection::DatabaseSettings,
) -> anyhow::Result<Option<Secret>> {
    if let Some(key) = &keys.secret_key {
        return Ok(Some(key.clone()));
    }
    match database.data_dir()? {
        Some(dir) => generated_key(&dir).map(Some),
        None if database.is_postgres() => anyhow::bail!(
            "OPENHANDS_SECRET_KEY is required with PostgreSQL: every web and worker process must use the same key (make one with `openssl rand -hex 32`)"
        ),
        None => Ok(None),
    }
}

/// The key kept in `dir`, made (64 random hex digits, mode 0600) when there is none yet.
fn generated_key(dir: &std::path::Path) -> anyhow::Result<Secret> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let path = dir.join(GENERATED_KEY_FILE);
    let read = |path: &std::path::Path| -> anyhow::Result<Secret> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the service's key from {}", path.display()))?;
        let key = text.trim();
        if key.chars().count() < 32 {
            anyhow::bail!(
                "{} does not hold a key of at least 32 characters: remove it to make a new one (stored keys and secrets are then lost), or set OPENHANDS_SECRET_KEY",
                path.display()
            );
        }
        key.parse()
            .map_err(|_| anyhow::anyhow!("the key in {} is not text", path.display()))
    };
    if path.exists() {
        return read(&path);
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let key = one_time_token();
    // create_new: two processes starting at once keep the one key written first.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(key.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write the service's key to {}", path.display()))?;
            tracing::info!(
                path = %path.display(),
                "generated the service's key (sessions and stored keys depend on it: keep the file, back it up with the database)"
            );
            read(&path)
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
        Err(error) => Err(error)
            .with_context(|| format!("cannot create the service's key file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let secret: Secret = "a-secret-key-of-at-least-32-characters".parse().unwrap();
        let keyring = Keyring::new(Some(&secret));
        assert!(keyring.is_persistent());
        let sealed = keyring.seal("sk-live-123").unwrap();
        assert!(!sealed.contains("sk-live"));
        assert_ne!(sealed, keyring.seal("sk-live-123").unwrap(), "fresh nonces");
        assert_eq!(keyring.open(&sealed).unwrap(), "sk-live-123");
        assert_eq!(
            Keyring::new(Some(&secret)).open(&sealed).unwrap(),
            "sk-live-123"
        );
        let other = Keyring::new(None);
        assert!(!other.is_persistent());
        assert!(other.open(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push('A');
        assert!(keyring.open(&tampered).is_err());
        assert!(keyring.open("plain").is_err());
        assert_ne!(keyring.session_key(), keyring.encryption);
    }
}
