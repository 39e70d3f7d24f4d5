//! The provider settings in force in this process: the environment's, with those stored from
//! the dashboard filled in where the environment leaves them unset. When the stored ones
//! change (in this process or another on the same database), the webhook secrets and the
//! provider clients are rebuilt and swapped in: requests and jobs already under way keep the
//! ones they started with.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use super::settings::ProviderConfig;
use super::{Providers, Webhooks};
use crate::crypto::Keyring;
use crate::storage::Db;

/// Whether this process answers work (and so needs everything answering uses) or only takes
/// deliveries in and serves the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Web,
    Workers,
}

/// The webhook secrets and provider clients in force, swapped whole when settings change.
#[derive(Debug)]
pub struct ProviderState {
    current: ArcSwap<InForce>,
    /// Where the settings come from; `None` for a fixed set (built by hand).
    source: Option<Source>,
}

#[derive(Debug)]
struct InForce {
    /// `None` for a fixed set.
    config: Option<Arc<ProviderConfig>>,
    webhooks: Arc<Webhooks>,
    clients: Arc<Providers>,
}

struct Source {
    environment: ProviderConfig,
    keyring: Keyring,
    role: Role,
    /// The stored rows (name, sealed value) last applied, to notice a change.
    applied: tokio::sync::Mutex<Vec<(String, String)>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("role", &self.role).finish()
    }
}

impl Default for ProviderState {
    fn default() -> Self {
        Self::fixed(Webhooks::default(), Providers::default())
    }
}

impl ProviderState {
    /// These webhooks and clients, never reloaded.
    pub fn fixed(webhooks: Webhooks, clients: impl Into<Arc<Providers>>) -> Self {
        Self {
            current: ArcSwap::from_pointee(InForce {
                config: None,
                webhooks: Arc::new(webhooks),
                clients: clients.into(),
            }),
            source: None,
        }
    }

    /// The settings of `environment` with the stored ones filled in. Fails as a start-up
    /// would: a setting that cannot work, or (for workers) a provider enabled without what
    /// answering it needs.
    pub async fn load(
        environment: ProviderConfig,
        keyring: Keyring,
        role: Role,
        db: &Db,
    ) -> anyhow::Result<Self> {
        let stored = db.stored_provider_settings().await?;
        let config = merged(&environment, &keyring, &stored)?;
        let in_force = build(config, role).await?;
        Ok(Self {
            current: ArcSwap::from_pointee(in_force),
            source: Some(Source {
                environment,
                keyring,
                role,
                applied: tokio::sync::Mutex::new(stored),
            }),
        })
    }

    /// The webhook secrets and how requests are recognised.
    pub fn webhooks(&self) -> Arc<Webhooks> {
        self.current.load().webhooks.clone()
    }

    /// The provider API clients.
    pub fn clients(&self) -> Arc<Providers> {
        self.current.load().clients.clone()
    }

    /// The provider settings in force (`None` for a fixed set).
    pub fn config(&self) -> Option<Arc<ProviderConfig>> {
        self.current.load().config.clone()
    }

    /// The environment's own settings, before stored ones are filled in (`None` for a fixed
    /// set): what the dashboard shows as set in the environment.
    pub fn environment(&self) -> Option<&ProviderConfig> {
        self.source.as_ref().map(|s| &s.environment)
    }

    /// Reads the stored settings again and, when they changed, swaps in what they make.
    /// Settings that cannot work are logged and the ones in force kept. Whether it swapped.
    pub async fn reload(&self, db: &Db) -> anyhow::Result<bool> {
        let Some(source) = &self.source else {
            return Ok(false);
        };
        let mut applied = source.applied.lock().await;
        let stored = db.stored_provider_settings().await?;
        if *applied == stored {
            return Ok(false);
        }
        // Remembered even when refused: the same rows are not retried and logged again.
        *applied = stored.clone();
        let built = match merged(&source.environment, &source.keyring, &stored) {
            Ok(config) => build(config, source.role).await,
            Err(error) => Err(error),
        };
        match built {
            Ok(in_force) => {
                self.current.store(Arc::new(in_force));
                tracing::info!("provider settings changed; the new ones are in force");
                Ok(true)
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "the stored provider settings changed but cannot work; the previous ones stay in force"
                );
                Ok(false)
            }
        }
    }

    /// Reloads every `every` until `shutdown`: how a change made through another process
    /// reaches this one.
    pub async fn watch(self: Arc<Self>, db: Db, every: Duration, shutdown: CancellationToken) {
        if self.source.is_none() {
            return;
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(error) = self.reload(&db).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "cannot read the stored provider settings"
                );
            }
        }
    }

    /// What the settings would be with `changes` (name, new plain value or `None` to remove)
    /// applied to the stored ones, checked as every process will check them: the reason they
    /// cannot work, otherwise.
    pub async fn check_changes(
        &self,
        db: &Db,
        changes: &[(&str, Option<String>)],
    ) -> Result<ProviderConfig, String> {
        let Some(source) = &self.source else {
            return Err("this process has no stored provider settings".into());
        };
        let stored = db
            .stored_provider_settings()
            .await
            .map_err(|e| format!("cannot read the stored settings: {e}"))?;
        let mut opened = open_all(&source.keyring, &stored);
        for (name, value) in changes {
            opened.retain(|(n, _)| n != name);
            if let Some(value) = value {
                opened.push((name.to_string(), value.clone()));
            }
        }
        let config = source
            .environment
            .clone()
            .with_stored(&opened)
            .map_err(|e| e.to_string())?;
        config.check_for_workers().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// The keyring settings are sealed with.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.source.as_ref().map(|s| &s.keyring)
    }

    /// `value` sealed as stored settings are, so this and every process can open it.
    pub fn seal(&self, value: &str) -> anyhow::Result<String> {
        match &self.source {
            Some(source) => source.keyring.seal(value),
            None => anyhow::bail!("this process does not keep provider settings"),
        }
    }
}

/// The stored rows opened; one that cannot be opened is left out with a warning.
fn open_all(keyring: &Keyring, stored: &[(String, String)]) -> Vec<(String, String)> {
    stored
        .iter()
        .filter_map(|(name, sealed)| match keyring.open(sealed) {
            Ok(value) => Some((name.clone(), value)),
            Err(error) => {
                tracing::warn!(setting = %name, "a stored provider setting cannot be read, so it is left out: {error:#}");
                None
            }
        })
        .collect()
}

/// The settings of `environment` with the ones stored in `db` filled in.
pub async fn with_stored_settings(
    environment: &ProviderConfig,
    keyring: &Keyring,
    db: &Db,
) -> anyhow::Result<ProviderConfig> {
    let stored = db.stored_provider_settings().await?;
    merged(environment, keyring, &stored)
}

fn merged(
    environment: &ProviderConfig,
    keyring: &Keyring,
    stored: &[(String, String)],
) -> anyhow::Result<ProviderConfig> {
    Ok(environment
        .clone()
        .with_stored(&open_all(keyring, stored))?)
}

async fn build(config: ProviderConfig, role: Role) -> anyhow::Result<InForce> {
    let clients = match role {
        Role::Workers => Providers::from_config(&config)?,
        Role::Web => Providers::clients_of(&config)?,
    };
    // The accounts' mention forms are asked of Jira and Linear once per set of settings.
    let accounts = clients.account_mentions(&config).await;
    let webhooks = Webhooks::from_config(&config).with_account_mentions(accounts);
    Ok(InForce {
        config: Some(Arc::new(config)),
        webhooks: Arc::new(webhooks),
        clients: Arc::new(clients),
    })
}
