//! Webhook deliveries signed the way each provider signs them (see
//! `src/integrations/*/verify.rs`): GitHub's `X-Hub-Signature-256`, GitLab's `X-Gitlab-Token`,
//! Slack's `v0` signature over its timestamp, Jira's `X-Hub-Signature` and Linear's
//! `Linear-Signature`. One constructor per provider; the result goes to the in-process router
//! (`Request::from`) or to a process on a port (`Delivery::post`).

use axum::body::Body;
use axum::http::Request;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// A webhook delivery: where it is posted, its headers (signature included) and its body.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Hex HMAC-SHA256 of the concatenated `parts` under `secret`.
pub fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Seconds since the epoch, as Slack stamps its requests.
pub fn now_seconds() -> i64 {
    now_millis() / 1000
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Sets a Linear payload's `webhookTimestamp` to now: Linear deliveries older than a minute
/// are refused.
pub fn stamp_linear(payload: &mut Value) {
    payload["webhookTimestamp"] = json!(now_millis());
}

fn events(provider: &str, headers: Vec<(&str, String)>, body: Vec<u8>) -> Delivery {
    let mut all = vec![("content-type".to_string(), "application/json".to_string())];
    all.extend(headers.into_iter().map(|(k, v)| (k.to_string(), v)));
    Delivery {
        path: format!("/api/integration/{provider}/events"),
        headers: all,
        body,
    }
}

/// A GitHub delivery of `event`: `X-Hub-Signature-256: sha256=<hex HMAC(body)>`.
pub fn github(secret: &str, event: &str, delivery: &str, body: impl Into<Vec<u8>>) -> Delivery {
    let body = body.into();
    let signature = format!("sha256={}", hmac_hex(secret, &[&body]));
    events(
        "github",
        vec![
            ("x-github-event", event.to_string()),
            ("x-github-delivery", delivery.to_string()),
            ("x-hub-signature-256", signature),
        ],
        body,
    )
}

/// A GitLab delivery of `event`, carrying the webhook's secret token.
pub fn gitlab(token: &str, event: &str, uuid: &str, body: impl Into<Vec<u8>>) -> Delivery {
    events(
        "gitlab",
        vec![
            ("x-gitlab-event", event.to_string()),
            ("x-gitlab-event-uuid", uuid.to_string()),
            ("x-gitlab-token", token.to_string()),
        ],
        body.into(),
    )
}

/// A Slack Events API delivery stamped now: `v0=<hex HMAC("v0:" + timestamp + ":" + body)>`.
pub fn slack(secret: &str, body: impl Into<Vec<u8>>) -> Delivery {
    slack_at(secret, body, now_seconds())
}

/// A Slack Events API delivery stamped `timestamp` (seconds since the epoch).
pub fn slack_at(secret: &str, body: impl Into<Vec<u8>>, timestamp: i64) -> Delivery {
    let body = body.into();
    let ts = timestamp.to_string();
    let signature = format!(
        "v0={}",
        hmac_hex(secret, &[b"v0:", ts.as_bytes(), b":", &body])
    );
    events(
        "slack",
        vec![
            ("x-slack-request-timestamp", ts),
            ("x-slack-signature", signature),
        ],
        body,
    )
}

/// A Slack interactivity request (a button or menu choice): the `payload` form field, signed
/// and stamped now like the Events API.
pub fn slack_interactivity(secret: &str, payload: &Value) -> Delivery {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish();
    let mut delivery = slack(secret, body);
    delivery.path = "/api/integration/slack/interactivity".into();
    delivery.header("content-type", "application/x-www-form-urlencoded")
}

/// A Jira Cloud delivery: `X-Hub-Signature: sha256=<hex HMAC(body)>`.
pub fn jira(secret: &str, identifier: &str, body: impl Into<Vec<u8>>) -> Delivery {
    let body = body.into();
    let signature = format!("sha256={}", hmac_hex(secret, &[&body]));
    events(
        "jira",
        vec![
            ("x-atlassian-webhook-identifier", identifier.to_string()),
            ("x-hub-signature", signature),
        ],
        body,
    )
}

/// A Jira Data Center delivery: signed as Cloud's, without a delivery id header (Data Center
/// does not promise one).
pub fn jira_data_center(secret: &str, body: impl Into<Vec<u8>>) -> Delivery {
    let body = body.into();
    let signature = format!("sha256={}", hmac_hex(secret, &[&body]));
    events("jira-dc", vec![("x-hub-signature", signature)], body)
}

/// A Linear delivery: `Linear-Signature: <hex HMAC(body)>`. The body's own `webhookTimestamp`
/// must be recent ([`stamp_linear`]).
pub fn linear(secret: &str, delivery: &str, body: impl Into<Vec<u8>>) -> Delivery {
    let body = body.into();
    let signature = hmac_hex(secret, &[&body]);
    events(
        "linear",
        vec![
            ("linear-delivery", delivery.to_string()),
            ("linear-signature", signature),
        ],
        body,
    )
}

impl Delivery {
    /// Sets a header, replacing one of the same name.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// A request to a service at `base_url` (`http://127.0.0.1:PORT`).
    pub fn post(self, client: &reqwest::Client, base_url: &str) -> reqwest::RequestBuilder {
        let mut request = client.post(format!("{base_url}{}", self.path));
        for (name, value) in self.headers {
            request = request.header(name, value);
        }
        request.body(self.body)
    }
}

impl From<Delivery> for Request<Body> {
    fn from(delivery: Delivery) -> Self {
        let mut request = Request::post(delivery.path);
        for (name, value) in delivery.headers {
            request = request.header(name, value);
        }
        request.body(Body::from(delivery.body)).unwrap()
    }
}
