//! `openhands doctor`: checks what the service stands on, one line each, with the fix for what
//! fails — the database, the Docker engine and the sandbox image, the model, each configured
//! provider's credentials against its own API, the public URL, and the webhook secrets.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::agent::llm::ChatMessage;
use crate::config::Config;
use std::sync::Arc;

use crate::crypto::Keyring;
use crate::integrations::Providers;
use crate::integrations::settings::ProviderConfig;
use crate::integrations::state::{ProviderState, with_stored_settings};
use crate::sandbox::BackendKind;
use crate::storage::Db;
pub use crate::web::setup::{Check, Outcome};

/// The longest one check may take: a service that does not answer in time is broken.
const CHECK_WITHIN: Duration = Duration::from_secs(20);

/// What `check` says, or a failure when it errs or takes longer than [`CHECK_WITHIN`].
async fn within<F>(name: &str, fix: &str, check: F) -> Check
where
    F: Future<Output = anyhow::Result<String>>,
{
    match tokio::time::timeout(CHECK_WITHIN, check).await {
        Ok(Ok(detail)) => Check::ok(name, detail),
        Ok(Err(error)) => Check::failed(name, format!("{error:#}"), fix),
        Err(_) => Check::failed(
            name,
            format!("no answer within {} s", CHECK_WITHIN.as_secs()),
            fix,
        ),
    }
}

/// Every check, in the order a newcomer fixes them, the database opened (and migrated) anew;
/// the provider settings stored from the dashboard are checked with the environment's.
pub async fn run_checks(config: &Config) -> Vec<Check> {
    let (database, providers) = database(config).await;
    let mut config = config.clone();
    let mut checks = vec![database];
    match providers {
        Some(Ok(providers)) => config.providers = providers,
        Some(Err(error)) => checks.push(Check::failed(
            "stored provider settings",
            format!("{error:#}"),
            "correct them on the setup page, or set OPENHANDS_SECRET_KEY to the service's key",
        )),
        None => {}
    }
    checks.extend(checks_after(&config).await);
    checks
}

/// The same checks in a running service, the database asked through its own connections.
pub async fn run_checks_on(config: &Config, db: &Db) -> Vec<Check> {
    let database = within(
        "database",
        "start the database, or correct DATABASE_URL",
        async {
            db.ping().await?;
            Ok(format!("{}: reachable", config.database.url_for_display()))
        },
    )
    .await;
    let mut checks = vec![database];
    checks.extend(checks_after(config).await);
    checks
}

/// The checks as the setup page runs them, in the service's own process, with the provider
/// settings in force there.
#[derive(Debug)]
pub struct ServiceChecks {
    pub config: Config,
    pub providers: Arc<ProviderState>,
}

impl crate::web::setup::SetupChecks for ServiceChecks {
    fn run<'a>(&'a self, db: &'a Db) -> BoxFuture<'a, Vec<Check>> {
        Box::pin(async move {
            let mut config = self.config.clone();
            if let Some(providers) = self.providers.config() {
                config.providers = (*providers).clone();
            }
            run_checks_on(&config, db).await
        })
    }
}

/// The checks that follow the database's.
async fn checks_after(config: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.extend(sandbox(config).await);
    checks.push(model(config).await);
    match Providers::clients_of(&config.providers) {
        Ok(providers) => checks.extend(providers_checks(config, &providers).await),
        Err(error) => checks.push(Check::failed(
            "providers",
            format!("{error:#}"),
            "correct the provider settings named (docs/configuration.md)",
        )),
    }
    checks.push(public_url(config).await);
    checks.push(webhook_secrets(config));
    checks
}

/// The database's check and, when it answered, the provider settings with the stored ones.
async fn database(config: &Config) -> (Check, Option<anyhow::Result<ProviderConfig>>) {
    let shown = config.database.url_for_display();
    let mut providers = None;
    let check = within(
        "database",
        "start the database, or correct DATABASE_URL",
        async {
            let db = Db::connect(
                config.database.database_url.expose(),
                &config.database.connect_options(),
            )
            .await?;
            db.migrate().await?;
            let keyring = Keyring::new(config.keys.secret_key.as_ref());
            providers = Some(with_stored_settings(&config.providers, &keyring, &db).await);
            db.close().await;
            Ok(format!("{shown}: reachable, migrations applied"))
        },
    )
    .await;
    (check, providers)
}

async fn sandbox(config: &Config) -> Vec<Check> {
    let settings = &config.sandbox;
    let other = match settings.sandbox_backend {
        BackendKind::Docker => None,
        BackendKind::Process => Some("process"),
        BackendKind::Remote => Some("remote"),
    };
    if let Some(backend) = other {
        return vec![Check::skipped(
            "docker",
            format!("SANDBOX_BACKEND is {backend}: sandboxes do not run on this machine's engine"),
        )];
    }
    let docker = match crate::sandbox::image::connect_docker().await {
        Ok(docker) => docker,
        Err(error) => {
            return vec![
                Check::failed(
                    "docker",
                    format!("{error:#}"),
                    "run ./scripts/run as root (it installs and starts the Docker engine), or start it: systemctl start docker",
                ),
                Check::skipped("sandbox image", "needs the Docker engine"),
            ];
        }
    };
    let engine = within("docker", "restart the Docker engine", async {
        let version = docker.version().await?;
        Ok(format!(
            "engine {} answers",
            version
                .version
                .unwrap_or_else(|| "of unknown version".into())
        ))
    })
    .await;
    let image = &settings.sandbox_image;
    let image_check = match crate::sandbox::image::image_exists(&docker, image).await {
        Ok(true) => Check::ok("sandbox image", format!("{image} is present")),
        Ok(false) => Check::failed(
            "sandbox image",
            format!("{image} is not on the engine"),
            format!("openhands sandbox build-image --tag {image}"),
        ),
        Err(error) => Check::failed(
            "sandbox image",
            format!("{error:#}"),
            "restart the Docker engine",
        ),
    };
    vec![engine, image_check]
}

async fn model(config: &Config) -> Check {
    let client = match config.llm.client() {
        Ok(Some(client)) => client,
        Ok(None) => {
            return Check::skipped(
                "model",
                "LLM_MODEL is not set: each user chooses a model and key in the dashboard's settings",
            );
        }
        Err(error) => {
            return Check::failed("model", error.to_string(), "correct the LLM settings");
        }
    };
    let model = client.model().to_string();
    let fix = "check LLM_MODEL, LLM_API_KEY and LLM_BASE_URL against the provider's account";
    within("model", fix, async move {
        let answer = client
            .complete(
                &[ChatMessage::user("Reply with the single word: ready")],
                &[],
            )
            .await?;
        let said: String = answer.message.content.trim().chars().take(60).collect();
        Ok(format!("{model} answered {said:?}"))
    })
    .await
}

async fn providers_checks(config: &Config, providers: &Providers) -> Vec<Check> {
    let mut checks = Vec::new();
    let configured = &config.providers;
    checks.push(match &providers.github {
        Some(github) => {
            within(
                "GitHub App",
                "check GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY (the app's settings page makes a new key)",
                async {
                    let name = github.name().await?;
                    let installations = github.installations().await?.len();
                    Ok(format!("{name}, installed on {installations} account(s)"))
                },
            )
            .await
        }
        None => Check::skipped("GitHub App", "GITHUB_APP_ID is not set"),
    });
    checks.push(match &providers.gitlab {
        Some(gitlab) => {
            within("GitLab", "check GITLAB_TOKEN and GITLAB_API_URL", async {
                Ok(format!("signed in as {}", gitlab.current_user().await?))
            })
            .await
        }
        None => Check::skipped("GitLab", "GITLAB_TOKEN is not set"),
    });
    checks.push(match &providers.slack {
        Some(slack) => {
            within(
                "Slack",
                "check SLACK_BOT_TOKEN (the app's OAuth page)",
                async { Ok(format!("signed in as {}", slack.auth_test().await?)) },
            )
            .await
        }
        None => Check::skipped("Slack", "SLACK_BOT_TOKEN is not set"),
    });
    let jiras = [
        (
            "Jira",
            &providers.jira,
            "check JIRA_BASE_URL, JIRA_EMAIL and JIRA_API_TOKEN",
            "JIRA_API_TOKEN",
        ),
        (
            "Jira Data Center",
            &providers.jira_dc,
            "check JIRA_DC_BASE_URL and JIRA_DC_TOKEN (a personal access token)",
            "JIRA_DC_TOKEN",
        ),
    ];
    for (name, client, fix, setting) in jiras {
        checks.push(match client {
            Some(jira) => {
                within(name, fix, async {
                    Ok(format!(
                        "{} answers; the account is {}",
                        jira.site(),
                        jira.own_mention().await?
                    ))
                })
                .await
            }
            None => Check::skipped(name, format!("{setting} is not set")),
        });
    }
    checks.push(match &providers.linear {
        Some(linear) => {
            within("Linear", "check LINEAR_API_KEY", async {
                Ok(format!(
                    "signed in; profile {}",
                    linear.own_profile_url().await?
                ))
            })
            .await
        }
        None => Check::skipped("Linear", "LINEAR_API_KEY is not set"),
    });
    // What workers refuse to start without: a provider that could not answer.
    checks.push(match configured.check_for_workers() {
        Ok(()) => Check::ok(
            "provider settings",
            "each enabled provider has what its answers use",
        ),
        Err(error) => Check::failed(
            "provider settings",
            error.to_string(),
            "set what is named (docs/configuration.md)",
        ),
    });
    checks
}

/// Whether OPENHANDS_PUBLIC_URL reaches an OpenHands webhook endpoint: an unsigned delivery
/// sent there must be refused the way this service refuses one.
async fn public_url(config: &Config) -> Check {
    let base = config
        .providers
        .public_url
        .trim_end_matches('/')
        .to_string();
    let url = format!("{base}/api/integration/github/events");
    let fix = format!(
        "set OPENHANDS_PUBLIC_URL to the address providers reach this service at (now {base}), and make sure the service runs there"
    );
    within("public URL", &fix, async {
        let client = reqwest::Client::builder()
            .timeout(CHECK_WITHIN)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{url} cannot be reached: {e}"))?;
        let status = response.status().as_u16();
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        // An enabled provider refuses the missing signature (401); a disabled one is 404.
        let ours =
            matches!(status, 401 | 404) && answer.get("error").is_some_and(|e| e.is_string());
        if ours {
            Ok(format!("{base} reaches the webhook endpoint"))
        } else {
            anyhow::bail!("{url} answered {status}, not as this service's webhook endpoint does")
        }
    })
    .await
}

/// Which providers accept webhooks, and which have credentials but no webhook secret (their
/// requests would never arrive).
fn webhook_secrets(config: &Config) -> Check {
    let p = &config.providers;
    // Each provider: its name, whether its webhook secret is set, whether it has credentials,
    // and the secret's setting.
    let providers = [
        (
            "GitHub",
            p.github_webhook_secret.is_some(),
            p.github_app_id.is_some(),
            "GITHUB_WEBHOOK_SECRET",
        ),
        (
            "GitLab",
            p.gitlab_webhook_token.is_some(),
            p.gitlab_token.is_some(),
            "GITLAB_WEBHOOK_TOKEN",
        ),
        (
            "Slack",
            p.slack_signing_secret.is_some(),
            p.slack_bot_token.is_some(),
            "SLACK_SIGNING_SECRET",
        ),
        (
            "Jira",
            p.jira_webhook_secret.is_some(),
            p.jira_api_token.is_some(),
            "JIRA_WEBHOOK_SECRET",
        ),
        (
            "Jira Data Center",
            p.jira_dc_webhook_secret.is_some(),
            p.jira_dc_token.is_some(),
            "JIRA_DC_WEBHOOK_SECRET",
        ),
        (
            "Linear",
            p.linear_webhook_secret.is_some(),
            p.linear_api_key.is_some(),
            "LINEAR_WEBHOOK_SECRET",
        ),
    ];
    let enabled: Vec<&str> = providers
        .iter()
        .filter(|(_, secret, _, _)| *secret)
        .map(|(name, ..)| *name)
        .collect();
    let orphans: Vec<&str> = providers
        .iter()
        .filter(|(_, secret, credentials, _)| *credentials && !*secret)
        .map(|(.., setting)| *setting)
        .collect();
    if !orphans.is_empty() {
        return Check::failed(
            "webhook secrets",
            format!(
                "a provider has credentials but no webhook secret, so none of its webhooks is accepted: {} unset",
                orphans.join(", ")
            ),
            "set each secret to the one configured in the provider's webhook settings",
        );
    }
    if enabled.is_empty() {
        return Check::skipped(
            "webhook secrets",
            "no provider is enabled: conversations start from the dashboard and the API only",
        );
    }
    Check::ok(
        "webhook secrets",
        format!("webhooks accepted from {}", enabled.join(", ")),
    )
}

/// Prints every check and fails when one failed: `openhands doctor`.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let checks = run_checks(config).await;
    for check in &checks {
        println!("{}", check.line());
    }
    let failed = checks.iter().filter(|c| c.is_failed()).count();
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    println!("everything checked is in order");
    Ok(())
}
