//! GitHub's REST API as the GitHub App: an app JWT buys each installation a token (octocrab
//! caches and renews it), and the installation asks about its repositories.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use serde::Deserialize;

/// The GitHub App, with one client per installation it has been asked about.
#[derive(Debug)]
pub struct GithubApp {
    app: Octocrab,
    installations: Mutex<HashMap<u64, Octocrab>>,
}

#[derive(Deserialize)]
struct CollaboratorPermission {
    /// `admin`, `write`, `read` or `none` (maintain counts as write, triage as read).
    permission: String,
}

impl GithubApp {
    /// A client for the app `app_id`, signing its JWTs with `private_key_pem`, against the
    /// REST API at `api_url` (GitHub Enterprise: `https://HOST/api/v3`).
    pub fn new(api_url: &str, app_id: u64, private_key_pem: &str) -> anyhow::Result<Self> {
        let key = octocrab::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
            .context("GITHUB_APP_PRIVATE_KEY is not an RSA private key in PEM format")?;
        let app = Octocrab::builder()
            .base_uri(api_url)
            .with_context(|| format!("GITHUB_API_URL `{api_url}` is not usable"))?
            .app(AppId(app_id), key)
            .build()
            .context("cannot build the GitHub client")?;
        Ok(Self {
            app,
            installations: Mutex::new(HashMap::new()),
        })
    }

    /// The client of one installation; its token is fetched on first use and renewed before
    /// it expires.
    fn installation(&self, id: u64) -> anyhow::Result<Octocrab> {
        let mut installations = self
            .installations
            .lock()
            .map_err(|_| anyhow::anyhow!("the GitHub installation cache is poisoned"))?;
        if let Some(client) = installations.get(&id) {
            return Ok(client.clone());
        }
        let client = self
            .app
            .installation(InstallationId(id))
            .context("cannot build the GitHub installation client")?;
        installations.insert(id, client.clone());
        Ok(client)
    }

    /// The permission of `login` on `repository` (`owner/name`): `admin`, `write`, `read` or
    /// `none`. Someone GitHub does not know has `none`.
    pub async fn permission(
        &self,
        installation_id: u64,
        repository: &str,
        login: &str,
    ) -> anyhow::Result<String> {
        let client = self.installation(installation_id)?;
        let route = format!("/repos/{repository}/collaborators/{login}/permission");
        match client
            .get::<CollaboratorPermission, _, ()>(route, None)
            .await
        {
            Ok(answer) => Ok(answer.permission),
            Err(octocrab::Error::GitHub { source, .. })
                if source.status_code == axum::http::StatusCode::NOT_FOUND =>
            {
                Ok("none".to_string())
            }
            Err(error) => Err(anyhow::Error::new(error).context(format!(
                "cannot read {login}'s permission on {repository} from GitHub"
            ))),
        }
    }
}
