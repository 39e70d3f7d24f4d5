//! Linear webhooks for the drills and browser tests: a signed comment that mentions the agent,
//! and the service's processes with Linear enabled.

use std::time::Duration;

use openhands::storage::{Db, DeliveryStatus};
use serde_json::{Value, json};

use super::signing::{self, Delivery};
use super::{ChildGuard, wait_for};

/// A comment from the fixture with its own `comment_id` and a fresh timestamp, signed under
/// `secret` as delivery `delivery`.
pub fn signed_comment(secret: &str, comment_id: &str, delivery: &str) -> Delivery {
    let mut payload: Value =
        serde_json::from_str(include_str!("../fixtures/linear/comment.create.json")).unwrap();
    payload["data"]["id"] = json!(comment_id);
    signing::stamp_linear(&mut payload);
    signing::linear(secret, delivery, serde_json::to_vec(&payload).unwrap())
}

/// `openhands ROLE` on `database_url` with Linear enabled under `secret` and answering through
/// the Linear API at `linear_api_url` (the fakes'), web on `port`, without rate limits. The
/// organization served is not the comments', so intake refuses them ("not served") with a
/// database-only job.
pub fn role(
    database_url: &str,
    secret: &str,
    linear_api_url: &str,
    port: u16,
    role: &str,
) -> ChildGuard {
    let mut command = super::openhands(database_url);
    command
        .env("LINEAR_WEBHOOK_SECRET", secret)
        .env("LINEAR_ORGANIZATION_ID", "org-served-elsewhere")
        .env("LINEAR_API_KEY", super::fakes::LINEAR_API_KEY)
        .env("LINEAR_API_URL", linear_api_url)
        .env("PORT", port.to_string())
        .env("RATE_LIMIT_PER_IP", "0")
        .env("LOG_LEVEL", "warn")
        .arg(role);
    ChildGuard::spawn(&mut command)
}

/// Waits until the web process on `port` answers.
pub async fn wait_serving(port: u16) {
    wait_for("the web process", Duration::from_secs(30), || async move {
        reqwest::get(format!("http://127.0.0.1:{port}/alive"))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

/// Waits until `count` Linear deliveries are handled: intake refuses each comment of
/// [`signed_comment`] (its author is linked to nobody). A database that does not answer
/// yet counts as not done.
pub async fn wait_handled(db: &Db, count: usize, timeout: Duration) {
    wait_for("every accepted delivery to be handled", timeout, || async {
        let handled = db
            .deliveries(
                Some("linear"),
                Some(DeliveryStatus::Unauthorized),
                None,
                count as i64 * 2,
            )
            .await
            .ok()?
            .len();
        (handled == count).then_some(())
    })
    .await;
}
