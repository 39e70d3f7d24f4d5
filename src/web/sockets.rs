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
    /// V1 (OpenHands' agent server): every stored event first, then live ones.
    resend_all: Option<bool>,
    /// V1: `all` as `resend_all=true`; `none` for live events only.
    resend_mode: Option<String>,
    /// V1: the conversation's session key (or an API key), instead of a header.
    session_api_key: Option<String>,
}

impl SocketQuery {
    /// Whether the client speaks V1: it asked for a V1 replay or gave a key in the query.
    fn is_v1(&self, headers: &axum::http::HeaderMap) -> bool {
        self.resend_all.is_some()
            || self.resend_mode.is_some()
            || self.session_api_key.is_some()
            || super::auth::presented_key(headers)
                .is_some_and(|key| key.starts_with(super::auth::SESSION_KEY_PREFIX))
    }
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
    headers: axum::http::HeaderMap,
    caller: MaybeCaller,
    query: Result<Query<SocketQuery>, ApiError>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(super::error::not_a_websocket(rejection)),
    };
    let Query(query) = query?;
    let v1 = query.is_v1(&headers);
    let mut caller = caller.0;
    if v1 {
        // As OpenHands' agent server: a key given with the handshake must be right (403).
        let key = query
            .session_api_key
            .as_deref()
            .or_else(|| super::auth::presented_key(&headers));
        if let Some(key) = key {
            caller = Some(v1_caller(&state, key, &conversation_id).await?);
        }
    }
    let resend =
        !v1 || query.resend_all == Some(true) || query.resend_mode.as_deref() == Some("all");
    let after = query.after.unwrap_or(0);
    Ok(upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            Session {
                state,
                socket,
                conversation_id,
                after,
                v1,
                resend,
            }
            .run(caller)
            .await
        }))
}

/// Who a key given to a V1 socket stands for: the conversation's session key opens it as its
/// owner; an API key opens it as its user. A wrong key is refused before the upgrade.
async fn v1_caller(state: &AppState, key: &str, conversation_id: &str) -> Result<Caller, ApiError> {
    let refused = || ApiError::Forbidden("the session key does not open this conversation".into());
    if key.starts_with(super::auth::SESSION_KEY_PREFIX) {
        return match state.owner_by_session_key(key, conversation_id).await {
            Err(ApiError::Unauthorized) => Err(refused()),
            answer => answer,
        };
    }
    match state.user_of_key(key).await? {
        Some(user) => Ok(Caller(user)),
        None => Err(refused()),
    }
}

struct Session {
    state: AppState,
    socket: WebSocket,
    conversation_id: String,
    /// The last event id the client has.
    after: i64,
    /// Events go out in the V1 shape, after a first full-state frame.
    v1: bool,
    /// Stored events are sent before live ones (always, for V0 clients).
    resend: bool,
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
        if self.v1 {
            let conversation = match self.state.db.conversation(&conversation.id).await {
                Ok(now) => now,
                Err(_) => conversation.clone(),
            };
            let count = super::v1::agent_server::count(&self.state, &conversation, None, None)
                .await
                .unwrap_or_default();
            let first = super::v1::events::full_state(&conversation, count);
            if self.send_text(first.to_string()).await.is_err() {
                return;
            }
            if self.resend {
                self.after = 0;
            } else {
                self.after = conversation.last_event_id;
            }
        }
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
                        let answer = if self.v1 {
                            self.v1_frame(&caller, &conversation, &text).await
                        } else {
                            self.client_frame(&caller, &conversation, &text).await
                        };
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
        if key.starts_with(super::auth::SESSION_KEY_PREFIX) {
            // A session key is OpenHands' agent-server protocol: the client speaks V1.
            self.v1 = true;
            return self
                .state
                .owner_by_session_key(key, &self.conversation_id)
                .await
                .ok();
        }
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

    /// Tells the client what was wrong with its frame; the socket stays open. V1 clients get
    /// a `ServerErrorEvent`, as the agent server sends.
    async fn send_error(&mut self, error: &str) -> Result<(), ()> {
        let reply = if self.v1 {
            json!({
                "kind": "ServerErrorEvent",
                "id": uuid::Uuid::new_v4().simple().to_string(),
                "timestamp": super::conversations::iso(crate::storage::now_millis()),
                "source": "environment",
                "code": "BadFrame",
                "detail": error,
            })
        } else {
            json!({"type": "error", "error": error})
        };
        self.send_text(reply.to_string()).await
    }

    async fn send_text(&mut self, text: String) -> Result<(), ()> {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| ())
    }

    /// The frames of the event as this client reads it: one, or two for a V1 client reading
    /// the agent's finish.
    fn shown(&self, event: &crate::storage::Event) -> Vec<String> {
        if self.v1 {
            super::v1::events::v1_events(event)
                .iter()
                .map(Value::to_string)
                .collect()
        } else {
            vec![event_json(event).to_string()]
        }
    }

    /// Queues a live event without flushing: the batch is flushed once.
    async fn feed_live(&mut self, event: &LiveEvent) -> Result<(), ()> {
        if self.v1 {
            // Not the shared frame: that one is rendered for V0 clients.
            for frame in self.shown(event) {
                self.socket
                    .feed(Message::Text(frame.into()))
                    .await
                    .map_err(|_| ())?;
            }
            self.after = event.id;
            return Ok(());
        }
        let frame = event.frame(|event| event_json(event).to_string());
        self.socket
            .feed(Message::Text(frame))
            .await
            .map_err(|_| ())?;
        self.after = event.id;
        Ok(())
    }

    async fn send_event(&mut self, event: &crate::storage::Event) -> Result<(), ()> {
        for text in self.shown(event) {
            self.socket
                .send(Message::Text(text.into()))
                .await
                .map_err(|_| ())?;
        }
        self.after = event.id;
        Ok(())
    }

    /// A client's frame as JSON. Each frame may start a run: frames count against the user's
    /// rate limit like requests.
    fn frame_of(&self, caller: &Caller, text: &str) -> Result<Value, ApiError> {
        self.state
            .rate_limits
            .take_for_user(&caller.0.id)
            .map_err(ApiError::TooManyRequests)?;
        serde_json::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("the frame is not JSON: {e}")))
    }

    /// A V1 client's frame: a user message `{"role": "user", "content": […]}`, on which the
    /// agent runs. A repeated auth frame is ignored.
    async fn v1_frame(
        &mut self,
        caller: &Caller,
        conversation: &Conversation,
        text: &str,
    ) -> Result<(), ApiError> {
        let frame = self.frame_of(caller, text)?;
        if frame["type"] == "auth" {
            return Ok(());
        }
        if frame["role"] != "user" {
            return Err(ApiError::BadRequest(
                "a frame must be a message {\"role\": \"user\", \"content\": [...]}".into(),
            ));
        }
        let (content, images) = super::v1::later_message(&frame["content"])?;
        record(
            &self.state,
            &conversation.id,
            &[message_from(caller, &content, &images)],
            None,
            true,
        )
        .await?;
        Ok(())
    }

    /// A message or a state change from the client.
    async fn client_frame(
        &mut self,
        caller: &Caller,
        conversation: &Conversation,
        text: &str,
    ) -> Result<(), ApiError> {
        let frame = self.frame_of(caller, text)?;
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
