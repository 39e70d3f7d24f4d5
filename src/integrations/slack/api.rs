//! Slack's Web API through slack-morphism, with the bot token.

use anyhow::Context;
use slack_morphism::prelude::*;

use crate::integrations::request::PriorMessage;
use crate::setting::Secret;

type Connector = SlackClientHyperConnector<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;

pub struct SlackApi {
    client: SlackClient<Connector>,
    token: SlackApiToken,
    /// The origin of SLACK_API_URL: files are read with the bot token only from there or from
    /// Slack's file host.
    api_origin: url::Origin,
    files: reqwest::Client,
}

/// Where Slack serves the files shared in a workspace.
const SLACK_FILES_HOST: &str = "files.slack.com";

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlackApi")
    }
}

impl SlackApi {
    /// A client of the Web API at `api_url` (normally `https://slack.com/api`).
    pub fn new(api_url: &str, bot_token: &Secret) -> anyhow::Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .context("cannot load the system's root certificates")?
            // Plain http only where SLACK_API_URL says so (a local test double).
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let connector = SlackClientHyperConnector::with_connector(https)
            .with_slack_api_url(api_url.trim_end_matches('/'));
        let api_origin = url::Url::parse(api_url)
            .context("SLACK_API_URL is not a URL")?
            .origin();
        let files = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            // A redirect could carry the token elsewhere: none is followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the HTTP client for Slack's files")?;
        Ok(Self {
            client: SlackClient::new(connector),
            token: SlackApiToken::new(SlackApiTokenValue::new(bot_token.expose().to_string())),
            api_origin,
            files,
        })
    }

    /// A file shared in the workspace (its `url_private`), read with the bot token: at most
    /// `max_bytes`. The token goes only to Slack's file host or to SLACK_API_URL's origin.
    pub async fn file(&self, url: &str, max_bytes: usize) -> anyhow::Result<Vec<u8>> {
        let parsed = url::Url::parse(url).context("the file's address is not a URL")?;
        let slack_files = parsed.scheme() == "https" && parsed.host_str() == Some(SLACK_FILES_HOST);
        anyhow::ensure!(
            slack_files || parsed.origin() == self.api_origin,
            "the file is not on Slack's file host"
        );
        let response = self
            .files
            .get(parsed)
            .bearer_auth(self.token.token_value.0.as_str())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("Slack did not serve the file: {}", e.without_url()))?;
        anyhow::ensure!(
            response.status().is_success(),
            "Slack answered {} for the file",
            response.status()
        );
        crate::integrations::providers::read_image(response, max_bytes).await
    }

    /// Who the bot token signs in as: `user (team)`.
    pub async fn auth_test(&self) -> anyhow::Result<String> {
        let session = self.client.open_session(&self.token);
        let me = session
            .auth_test()
            .await
            .context("Slack refused the bot token")?;
        let team = me.team_id.to_string();
        let user = me.user.clone().unwrap_or_else(|| me.user_id.to_string());
        Ok(format!("{user} in team {team}"))
    }

    /// Shows `text` to `user` only, in `channel` (in the thread `thread_ts`).
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread_ts: Option<&str>,
        text: &str,
    ) -> anyhow::Result<()> {
        let session = self.client.open_session(&self.token);
        let mut request = SlackApiChatPostEphemeralRequest::new(
            SlackChannelId::new(channel.to_string()),
            SlackUserId::new(user.to_string()),
            SlackMessageContent::new().with_text(text.to_string()),
        );
        if let Some(ts) = thread_ts {
            request = request.with_thread_ts(SlackTs::new(ts.to_string()));
        }
        session
            .chat_post_ephemeral(&request)
            .await
            .context("Slack refused the ephemeral message")?;
        Ok(())
    }

    /// The messages of the thread that starts at `thread_ts`, oldest first (the first 200).
    pub async fn thread(
        &self,
        channel: &str,
        thread_ts: &str,
    ) -> anyhow::Result<Vec<PriorMessage>> {
        let session = self.client.open_session(&self.token);
        let request = SlackApiConversationsRepliesRequest::new(
            SlackChannelId::new(channel.to_string()),
            SlackTs::new(thread_ts.to_string()),
        )
        .with_limit(200);
        let replies = session
            .conversations_replies(&request)
            .await
            .context("Slack refused the thread's messages")?;
        Ok(replies
            .messages
            .into_iter()
            .map(|m| PriorMessage {
                author: m
                    .sender
                    .user
                    .map(|u| u.to_string())
                    .or(m.sender.bot_id.map(|b| b.to_string()))
                    .unwrap_or_default(),
                text: m.content.text.unwrap_or_default(),
            })
            .collect())
    }

    /// Adds the reaction `name` (`eyes`) to the message `ts`; already there is fine.
    pub async fn add_reaction(&self, channel: &str, ts: &str, name: &str) -> anyhow::Result<()> {
        let session = self.client.open_session(&self.token);
        let request = SlackApiReactionsAddRequest::new(
            SlackChannelId::new(channel.to_string()),
            SlackReactionName::new(name.to_string()),
            SlackTs::new(ts.to_string()),
        );
        match session.reactions_add(&request).await {
            Ok(_) => Ok(()),
            Err(slack_morphism::errors::SlackClientError::ApiError(error))
                if error.code == "already_reacted" =>
            {
                Ok(())
            }
            Err(error) => Err(anyhow::Error::new(error).context("Slack refused the reaction")),
        }
    }

    /// The reply in the thread that carries `key` in its metadata, if one was posted.
    pub async fn find_reply(
        &self,
        channel: &str,
        thread_ts: &str,
        key: &str,
    ) -> anyhow::Result<Option<String>> {
        let session = self.client.open_session(&self.token);
        // The typed request cannot ask for metadata, so the method is called with its parameters.
        let params = vec![
            ("channel", Some(channel)),
            ("ts", Some(thread_ts)),
            ("include_all_metadata", Some("true")),
            ("limit", Some("200")),
        ];
        let replies: SlackApiConversationsRepliesResponse = session
            .http_session_api
            .http_get("conversations.replies", &params, None)
            .await
            .context("Slack refused the thread's messages")?;
        Ok(replies.messages.into_iter().find_map(|m| {
            let metadata = m.content.metadata?;
            let carries = metadata.event_type == POST_EVENT_TYPE
                && metadata
                    .event_payload
                    .as_ref()
                    .and_then(|p| p.get("key"))
                    .map(String::as_str)
                    == Some(key);
            carries.then(|| m.origin.ts.to_string())
        }))
    }

    /// Replies in the thread with `text`, marked with `key` in the message's metadata; returns
    /// the reply's ts. `blocks`, a Block Kit `blocks` array, lays the message out (`text` is
    /// then what notifications show); blocks that do not read as slack-morphism's blocks (not
    /// an array of block objects) are an error, and nothing is posted.
    pub async fn post_reply(
        &self,
        channel: &str,
        thread_ts: &str,
        text: &str,
        blocks: Option<&serde_json::Value>,
        key: &str,
    ) -> anyhow::Result<String> {
        let blocks: Option<Vec<SlackBlock>> = blocks
            .map(|blocks| serde_json::from_value(blocks.clone()))
            .transpose()
            .context("the reply's blocks are not Block Kit blocks")?;
        let session = self.client.open_session(&self.token);
        let metadata = SlackMessageMetadata {
            event_type: POST_EVENT_TYPE.to_string(),
            event_payload: Some(std::collections::HashMap::from([(
                "key".to_string(),
                key.to_string(),
            )])),
        };
        let mut content = SlackMessageContent::new()
            .with_text(text.to_string())
            .with_metadata(metadata);
        if let Some(blocks) = blocks {
            content = content.with_blocks(blocks);
        }
        let request =
            SlackApiChatPostMessageRequest::new(SlackChannelId::new(channel.to_string()), content)
                .with_thread_ts(SlackTs::new(thread_ts.to_string()));
        let posted = session
            .chat_post_message(&request)
            .await
            .context("Slack refused the reply")?;
        Ok(posted.ts.to_string())
    }
}

/// The metadata event type of the service's own messages (they carry the post's key).
pub const POST_EVENT_TYPE: &str = "openhands_post";
