//! Slack's Web API through slack-morphism, with the bot token.

use anyhow::Context;
use slack_morphism::prelude::*;

use crate::config::Secret;
use crate::integrations::request::PriorMessage;

type Connector = SlackClientHyperConnector<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;

pub struct SlackApi {
    client: SlackClient<Connector>,
    token: SlackApiToken,
}

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
        Ok(Self {
            client: SlackClient::new(connector),
            token: SlackApiToken::new(SlackApiTokenValue::new(bot_token.expose().to_string())),
        })
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
}
