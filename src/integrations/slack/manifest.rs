//! The Slack app this service needs, as a manifest to paste into Slack's "Create New App → From
//! an app manifest": the events, the interactivity URL and the bot scopes, with this service's
//! addresses filled in.

use serde_json::{Value, json};

/// The bot scopes the service uses: reading mentions and thread messages, answering, reacting,
/// and reading the images shared with a request.
pub const BOT_SCOPES: [&str; 6] = [
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "chat:write",
    "reactions:write",
    "files:read",
];

/// The events the service reads.
pub const BOT_EVENTS: [&str; 3] = ["app_mention", "message.channels", "message.groups"];

/// The manifest of the Slack app for the service reached at `public_url`.
pub fn app_manifest(public_url: &str) -> Value {
    let public_url = public_url.trim_end_matches('/');
    json!({
        "display_information": {
            "name": "OpenHands",
            "description": "An AI software engineer: mention it in a thread and it works on the request in a sandbox."
        },
        "features": {
            "bot_user": {"display_name": "OpenHands", "always_online": true}
        },
        "oauth_config": {"scopes": {"bot": BOT_SCOPES}},
        "settings": {
            "event_subscriptions": {
                "request_url": format!("{public_url}/api/integration/slack/events"),
                "bot_events": BOT_EVENTS
            },
            "interactivity": {
                "is_enabled": true,
                "request_url": format!("{public_url}/api/integration/slack/interactivity")
            },
            "org_deploy_enabled": false,
            "socket_mode_enabled": false,
            "token_rotation_enabled": false
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_points_slack_at_this_service() {
        let manifest = app_manifest("https://oh.example.com/");
        assert_eq!(
            manifest["settings"]["event_subscriptions"]["request_url"],
            "https://oh.example.com/api/integration/slack/events"
        );
        assert_eq!(
            manifest["settings"]["interactivity"]["request_url"],
            "https://oh.example.com/api/integration/slack/interactivity"
        );
        assert_eq!(
            manifest["oauth_config"]["scopes"]["bot"][0],
            "app_mentions:read"
        );
    }
}
