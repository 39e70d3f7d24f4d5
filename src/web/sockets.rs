//! `GET /sockets/events/{conversation_id}`: a conversation's events over a WebSocket. The
//! client authenticates (session cookie or API key header, else a first frame
//! `{"type":"auth","session_api_key":…}`), gets the stored events after `?after=N`, then live
//! events, in order, with no gap or duplicate between the two; it may send messages, ask
//! to stop, pause or resume (refused with an error frame where the state does not allow it),
//! and run its own actions (`{"action": "run", "args": {"command": …}}`), which a worker
//! runs and records as the user's. Closes with 4001 on bad authentication and 4004 for a
//! conversation it may not see.

use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use futures::SinkExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use utoipa::IntoParams;

use super::auth::Caller;
use super::conversations::{change_state, event_json, message_from, record, state_named, visible};
use super::params::Query;
use super::{ApiError, AppState};
use crate::agent::tools::{USER_ACTIONS, user_call};
use crate::live::LiveEvent;
use crate::storage::Conversation;

/// Close codes.
const BAD_AUTH: u16 = 4001;
const NOT_FOUND: u16 = 4004;
/// How long a client has to send its auth frame.
const AUTH_WAIT: Duration = Duration::from_secs(10);
/// Events read from the log per query while replaying.
pub(super) const REPLAY_PAGE: i64 = 500;
/// Live events written to a client at once, at most.
const LIVE_BATCH: usize = 256;
/// The longest client frame accepted.
const MAX_FRAME_BYTES: usize = 256 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new().route("/sockets/events/{conversation_id}", get(events_socket))
}

/// Who the upgrade request's headers say is calling, if they say.
pub(super) struct MaybeCaller(pub(super) Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(MaybeCaller(
            Caller::from_request_parts(parts, state).await.ok(),
        ))
    }
}

/// The query of `GET /sockets/events/{conversation_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SocketQuery {
    /// The last event id the client has: stored events after it come first (0 by default).
    #[param(minimum = 0)]
    after: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/sockets/events/{conversation_id}",
    tag = "conversations",
    summary = "WebSocket: stored events after ?after=N, then live ones",
    extensions(("x-access" = json!("user"))),
    params(("conversation_id" = String, Path, description = "The conversation's id"), SocketQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake"),
    ),
)]
pub(super) async fn events_socket(
    State(state): State<AppState>,
    Path(conversation_id): Path<String>,
    caller: MaybeCaller,
    query: Result<Query<SocketQuery>, ApiError>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(super::error::not_a_websocket(rejection)),
    };
    let Query(query) = query?;
    let after = query.after.unwrap_or(0);
    Ok(upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            Session {
                state,
                socket,
                conversation_id,
                after,
            }
            .run(caller.0)
            .await
        }))
}

struct Session {
    state: AppState,
    socket: WebSocket,
    conversation_id: String,
    /// The last event id the client has.
    after: i64,
}

impl Session {
    async fn run(mut self, caller: Option<Caller>) {
        let caller = match caller {
            Some(caller) => caller,
            None => match self.auth_frame().await {
                Some(caller) => caller,
                None => return close(&mut self.socket, BAD_AUTH, "authentication failed").await,
            },
        };
        let conversation = match visible(&self.state, &caller, &self.conversation_id).await {
            Ok(conversation) => conversation,
            Err(ApiError::NotFound(_)) => {
                return close(&mut self.socket, NOT_FOUND, "conversation not found").await;
            }
            Err(error) => {
                tracing::warn!(%error, "socket: cannot read the conversation");
                return close(&mut self.socket, 1011, "internal error").await;
            }
        };
        // Subscribed before the replay: an event committed meanwhile is either in the replay
        // or arrives live, and the live one is dropped if the replay had it.
        let mut live = self.state.bus.subscribe();
        if self.catch_up(i64::MAX).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                received = live.recv() => {
                    // Everything already waiting goes out in one write.
                    let mut batch = vec![received];
                    while batch.len() < LIVE_BATCH {
                        match live.try_recv() {
                            Ok(event) => batch.push(Ok(event)),
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Lagged(n)) => {
                                batch.push(Err(RecvError::Lagged(n)));
                                break;
                            }
                            Err(TryRecvError::Closed) => {
                                batch.push(Err(RecvError::Closed));
                                break;
                            }
                        }
                    }
                    for received in batch {
                        match received {
                            Ok(event) if event.conversation_id == conversation.id => {
                                if event.id <= self.after {
                                    continue;
                                }
                                if event.id > self.after + 1
                                    && self.catch_up(event.id - 1).await.is_err()
                                {
                                    return;
                                }
                                if self.feed_live(&event).await.is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(RecvError::Lagged(_)) => {
                                if self.catch_up(i64::MAX).await.is_err() {
                                    return;
                                }
                            }
                            Err(RecvError::Closed) => {
                                return close(&mut self.socket, 1001, "server stopping").await;
                            }
                        }
                    }
                    if self.socket.flush().await.is_err() {
                        return;
                    }
                }
                frame = self.socket.recv() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        let answer = self.client_frame(&caller, &conversation, &text).await;
                        if let Err(error) = answer
                            && self.send_error(&error.to_string()).await.is_err()
                        {
                            return;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        if self.send_error("frames must be JSON text").await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    /// Waits for `{"type":"auth","session_api_key":…}`.
    async fn auth_frame(&mut self) -> Option<Caller> {
        let frame = tokio::time::timeout(AUTH_WAIT, self.socket.recv())
            .await
            .ok()??
            .ok()?;
        let Message::Text(text) = frame else {
            return None;
        };
        let frame: Value = serde_json::from_str(&text).ok()?;
        if frame["type"] != "auth" {
            return None;
        }
        let key = frame["session_api_key"].as_str()?;
        match self.state.user_of_key(key).await {
            Ok(user) => user.map(Caller),
            Err(error) => {
                tracing::warn!(%error, "socket: cannot check a key");
                None
            }
        }
    }

    /// Sends the stored events after the client's last, up to `until`.
    async fn catch_up(&mut self, until: i64) -> Result<(), ()> {
        loop {
            let limit = REPLAY_PAGE.min(until.saturating_sub(self.after));
            if limit <= 0 {
                return Ok(());
            }
            let page = match self
                .state
                .db
                .events_after(&self.conversation_id, self.after, limit)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "socket: cannot read events");
                    close(&mut self.socket, 1011, "cannot read events").await;
                    return Err(());
                }
            };
            let done = (page.len() as i64) < limit;
            for event in &page {
                self.send_event(event).await?;
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Tells the client what was wrong with its frame; the socket stays open.
    async fn send_error(&mut self, error: &str) -> Result<(), ()> {
        let reply = json!({"type": "error", "error": error});
        self.socket
            .send(Message::Text(reply.to_string().into()))
            .await
            .map_err(|_| ())
    }

    /// Queues a live event without flushing: the batch is flushed once.
    async fn feed_live(&mut self, event: &LiveEvent) -> Result<(), ()> {
        let frame = event.frame(|event| event_json(event).to_string());
        self.socket
            .feed(Message::Text(frame))
            .await
            .map_err(|_| ())?;
        self.after = event.id;
        Ok(())
    }

    async fn send_event(&mut self, event: &crate::storage::Event) -> Result<(), ()> {
        let text = event_json(event).to_string();
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| ())?;
        self.after = event.id;
        Ok(())
    }

    /// A message or a state change from the client.
    async fn client_frame(
        &mut self,
        caller: &Caller,
        conversation: &Conversation,
        text: &str,
    ) -> Result<(), ApiError> {
        // Each frame may start a run: frames count against the user's rate limit like requests.
        self.state
            .rate_limits
            .take_for_user(&caller.0.id)
            .map_err(ApiError::TooManyRequests)?;
        let frame: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("the frame is not JSON: {e}")))?;
        let kind = frame["type"]
            .as_str()
            .or_else(|| frame["action"].as_str())
            .ok_or_else(|| {
                ApiError::BadRequest("the frame needs a `type`: message or state".into())
            })?;
        match kind {
            "message" => {
                let content = frame["content"]
                    .as_str()
                    .or_else(|| frame["args"]["content"].as_str())
                    .filter(|c| !c.trim().is_empty())
                    .ok_or_else(|| {
                        ApiError::BadRequest("a message frame needs a non-empty `content`".into())
                    })?;
                let images = match &frame["image_urls"] {
                    Value::Null => &frame["args"]["image_urls"],
                    given => given,
                };
                let images = crate::agent::events::image_urls(images)
                    .map_err(|e| ApiError::BadRequest(format!("`image_urls`: {e}")))?;
                record(
                    &self.state,
                    &conversation.id,
                    &[message_from(caller, content, &images)],
                    None,
                    true,
                )
                .await?;
                Ok(())
            }
            "state" | "change_agent_state" => {
                let wanted = frame["state"]
                    .as_str()
                    .or_else(|| frame["args"]["agent_state"].as_str())
                    .unwrap_or_default();
                let wanted = state_named(wanted).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`state` must be stop, pause, resume, confirm or reject, not `{wanted}`"
                    ))
                })?;
                // The conversation's status now, not when the socket opened.
                let current = self.state.db.conversation(&conversation.id).await?;
                change_state(&self.state, &current, wanted).await
            }
            // The user's own commands (the dashboard's terminal), run by a worker as the
            // legacy protocol runs them: `{"action": "run", "args": {"command": …}}`.
            action if USER_ACTIONS.contains(&action) => {
                let call = user_call(action, &frame["args"]).map_err(ApiError::BadRequest)?;
                record(
                    &self.state,
                    &conversation.id,
                    &[call.user_action()],
                    None,
                    true,
                )
                .await?;
                Ok(())
            }
            other => Err(ApiError::BadRequest(format!(
                "unknown frame type `{other}`: message, state, or an action ({})",
                USER_ACTIONS.join(", ")
            ))),
        }
    }
}

pub(super) async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        })))
        .await;
}
