//! `GET /ws`: the legacy OpenDevin server protocol, for clients written against it
//! (`websocat ws://127.0.0.1:3000/ws`, then `{"action": "start", "args": {"task": …}}`).
//!
//! Client frames are `{"action", "args"}`: `initialize` (credentials, or `conversation_id` to
//! follow one of the caller's conversations), `start` / `message` (a user message that runs the
//! agent), `change_agent_state` (stop, pause, resume), and the user's own actions `run`, `read`, `write`, `browse`, `think`, `finish`. They
//! are recorded in the conversation's log like any other event, and a worker runs them: the web
//! process never touches a sandbox. The server sends every event of the conversation in the
//! legacy shapes (`{action, args, message}`, `{observation, content, extras, message}`). A
//! wrong frame is answered with `{"error": true, "message": …}` and the socket stays open.
//! Closes with 4001 when the caller cannot be authenticated, 4004 for a conversation that is
//! not the caller's.

use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::auth::Caller;
use super::conversations::{
    MAX_MESSAGE_CHARS, change_state, message_from, record, state_named, title_from,
};
use super::sockets::{MaybeCaller, REPLAY_PAGE, close};
use super::{ApiError, AppState};
use crate::agent::events::to_v0;
use crate::agent::tools::{USER_ACTIONS, user_call};
use crate::live::LiveEvent;
use crate::storage::{Event, NewConversation, StorageError};

/// Close codes, as on `/sockets/events`.
const BAD_AUTH: u16 = 4001;
const NOT_FOUND: u16 = 4004;
/// What the client is told when it did not say who it is.
const HOW_TO_AUTHENTICATE: &str = "authentication needed: send an API key as `Authorization: Bearer KEY` or `X-Session-API-Key`, or as `token` in the args of a first `initialize` frame";

pub fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(legacy_socket))
}

#[utoipa::path(
    get,
    path = "/ws",
    tag = "conversations",
    summary = "WebSocket of the legacy OpenDevin protocol",
    description = "Frames `{\"action\", \"args\"}`: initialize, start, message, change_agent_state, and the user's own run, read, write, browse, think, finish; events come back in the legacy shapes.",
    extensions(("x-access" = json!("user"))),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake"),
    ),
)]
pub(super) async fn legacy_socket(
    State(state): State<AppState>,
    caller: MaybeCaller,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return super::error::not_a_websocket(rejection),
    };
    let frame_limit = state.http.api_max_body_bytes;
    // Frames a little over the limit are read and answered with an error frame; only far
    // larger ones end the connection.
    let hard_limit = frame_limit.saturating_mul(4).max(1 << 20);
    upgrade
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .on_upgrade(move |socket| async move {
            Legacy {
                state,
                socket,
                caller: caller.0,
                feed: None,
                frame_limit,
            }
            .run()
            .await
        })
}

/// Says at start-up whom OPENHANDS_LEGACY_WS_USER lets connections without credentials act as,
/// or that it names nobody (such connections are then refused).
pub async fn check_legacy_user(state: &AppState) {
    let Some(login) = legacy_login(state) else {
        return;
    };
    match state.db.user_by_login(login).await {
        Ok(Some(_)) => tracing::warn!(
            login,
            "OPENHANDS_LEGACY_WS_USER is set: connections to /ws without credentials act as this user"
        ),
        Ok(None) => tracing::error!(
            login,
            "OPENHANDS_LEGACY_WS_USER names no user, so /ws refuses connections without credentials; create it with `openhands user create {login}`"
        ),
        Err(error) => tracing::warn!(%error, "cannot check OPENHANDS_LEGACY_WS_USER"),
    }
}

fn legacy_login(state: &AppState) -> Option<&str> {
    state
        .http
        .legacy_ws_user
        .as_deref()
        .map(str::trim)
        .filter(|login| !login.is_empty())
}

/// Why a frame was not taken.
enum Refusal {
    /// Answered with an error frame; the socket stays open.
    Frame(String),
    /// Answered with an error frame, then the socket is closed with this code.
    Close(u16, String),
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        if let ApiError::Internal(detail) = &error {
            tracing::warn!(error = format!("{detail:#}"), "/ws: a frame failed");
        }
        Refusal::Frame(error.to_string())
    }
}

fn refuse(message: impl Into<String>) -> Refusal {
    Refusal::Frame(message.into())
}

struct Legacy {
    state: AppState,
    socket: WebSocket,
    /// Who is calling, once known.
    caller: Option<Caller>,
    /// The conversation the socket follows, once there is one.
    feed: Option<Feed>,
    /// The largest frame taken.
    frame_limit: usize,
}

impl Legacy {
    async fn run(mut self) {
        // Subscribed first: an event committed while a conversation's log is replayed arrives
        // live too, and the feed drops what it sent already.
        let mut live = self.state.bus.subscribe();
        loop {
            tokio::select! {
                received = live.recv() => {
                    let sent = match (received, self.feed.as_mut()) {
                        (Ok(event), Some(feed)) => feed.live(&self.state, &mut self.socket, &event).await,
                        (Err(RecvError::Lagged(_)), Some(feed)) => {
                            feed.catch_up(&self.state, &mut self.socket, i64::MAX).await
                        }
                        (Err(RecvError::Closed), _) => {
                            return close(&mut self.socket, 1001, "server stopping").await;
                        }
                        (_, None) => Ok(()),
                    };
                    if sent.is_err() {
                        return;
                    }
                }
                frame = self.socket.recv() => {
                    let answer = match frame {
                        Some(Ok(Message::Text(text))) if text.len() > self.frame_limit => Err(refuse(format!(
                            "the frame is {} bytes; at most {} are taken",
                            text.len(),
                            self.frame_limit
                        ))),
                        Some(Ok(Message::Text(text))) => self.client_frame(&text).await,
                        Some(Ok(Message::Binary(_))) => Err(refuse("frames must be JSON text")),
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                        Some(Ok(_)) => Ok(()),
                    };
                    match answer {
                        Ok(()) => {}
                        Err(Refusal::Frame(message)) => {
                            if self.send_error(&message).await.is_err() {
                                return;
                            }
                        }
                        Err(Refusal::Close(code, message)) => {
                            let _ = self.send_error(&message).await;
                            // A close frame's reason holds at most 123 bytes: the error frame
                            // has the whole story.
                            let reason = match code {
                                BAD_AUTH => "authentication failed",
                                NOT_FOUND => "conversation not found",
                                _ => "internal error",
                            };
                            return close(&mut self.socket, code, reason).await;
                        }
                    }
                }
            }
        }
    }

    async fn send_error(&mut self, message: &str) -> Result<(), axum::Error> {
        let frame = json!({"error": true, "message": message});
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await
    }

    /// A frame that starts work counts against its user's rate limit like a request.
    fn take_for(&self, caller: &Caller) -> Result<(), Refusal> {
        self.state
            .rate_limits
            .take_for_user(&caller.0.id)
            .map_err(Refusal::Frame)
    }

    async fn client_frame(&mut self, text: &str) -> Result<(), Refusal> {
        let frame: Value = serde_json::from_str(text)
            .map_err(|e| refuse(format!("the frame is not JSON: {e}")))?;
        let Some(action) = frame["action"].as_str() else {
            return Err(refuse(format!(
                "a frame is {{\"action\": …, \"args\": {{…}}}} with an action of initialize, start, message, change_agent_state, {}",
                USER_ACTIONS.join(", ")
            )));
        };
        let args = &frame["args"];
        if !args.is_object() && !args.is_null() {
            return Err(refuse("`args` must be a JSON object"));
        }
        match action {
            "initialize" => self.initialize(args).await,
            "start" | "message" => {
                let key = if action == "start" { "task" } else { "content" };
                let text = match &args[key] {
                    Value::String(text) if !text.trim().is_empty() => text,
                    _ => {
                        return Err(refuse(format!(
                            "`{action}` needs `args.{key}`, a non-empty string"
                        )));
                    }
                };
                if text.chars().count() > MAX_MESSAGE_CHARS {
                    return Err(refuse(format!(
                        "`args.{key}` is longer than {MAX_MESSAGE_CHARS} characters"
                    )));
                }
                let images = crate::agent::events::image_urls(&args["image_urls"])
                    .map_err(|e| refuse(format!("`args.image_urls`: {e}")))?;
                let caller = self.caller().await?;
                self.take_for(&caller)?;
                let conversation_id = self.conversation(&caller, Some(text)).await?;
                record(
                    &self.state,
                    &conversation_id,
                    &[message_from(&caller, text, &images)],
                    None,
                    true,
                )
                .await?;
                Ok(())
            }
            _ if USER_ACTIONS.contains(&action) => {
                let call = user_call(action, args).map_err(Refusal::Frame)?;
                let caller = self.caller().await?;
                self.take_for(&caller)?;
                let conversation_id = self.conversation(&caller, None).await?;
                // A worker runs it, as it runs the agent: enqueued like a message.
                record(
                    &self.state,
                    &conversation_id,
                    &[call.user_action()],
                    None,
                    true,
                )
                .await?;
                Ok(())
            }
            "change_agent_state" => {
                let wanted = args["agent_state"].as_str().unwrap_or_default();
                let wanted = state_named(wanted).ok_or_else(|| {
                    refuse(format!(
                        "`args.agent_state` must be stopped, paused, running, user_confirmed or user_rejected, not `{wanted}`"
                    ))
                })?;
                self.caller().await?;
                let Some(feed) = &self.feed else {
                    return Err(refuse("no conversation yet: send `start` first"));
                };
                // Its status now, not when the socket began to follow it.
                let conversation = self
                    .state
                    .db
                    .conversation(&feed.conversation_id)
                    .await
                    .map_err(ApiError::from)?;
                change_state(&self.state, &conversation, wanted).await?;
                Ok(())
            }
            other => Err(refuse(format!(
                "unknown action `{other}`: use initialize, start, message, change_agent_state, {}",
                USER_ACTIONS.join(", ")
            ))),
        }
    }

    /// Who is calling: from the upgrade request or `initialize`, else the configured legacy
    /// user. Refused with 4001 when there is none.
    async fn caller(&mut self) -> Result<Caller, Refusal> {
        if let Some(caller) = &self.caller {
            return Ok(caller.clone());
        }
        let Some(login) = legacy_login(&self.state) else {
            return Err(Refusal::Close(BAD_AUTH, HOW_TO_AUTHENTICATE.into()));
        };
        match self.state.db.user_by_login(login).await {
            Ok(Some(user)) => {
                let caller = Caller(user);
                self.caller = Some(caller.clone());
                Ok(caller)
            }
            Ok(None) => Err(Refusal::Close(
                BAD_AUTH,
                format!(
                    "OPENHANDS_LEGACY_WS_USER is `{login}`, which is not a user (create it with `openhands user create {login}`); meanwhile {HOW_TO_AUTHENTICATE}"
                ),
            )),
            Err(error) => Err(ApiError::from(error).into()),
        }
    }

    /// `initialize`: credentials (`token` or `session_api_key`), and the conversation to follow
    /// (`conversation_id`, from `latest_event_id` on), or none until `start`. Other args (model,
    /// agent, language) are the server's to choose and are ignored.
    async fn initialize(&mut self, args: &Value) -> Result<(), Refusal> {
        let key = ["token", "session_api_key"]
            .iter()
            .find_map(|name| args[*name].as_str())
            .map(str::trim)
            .filter(|key| !key.is_empty());
        if let Some(key) = key {
            match self.state.user_of_key(key).await? {
                Some(user) => self.caller = Some(Caller(user)),
                None => {
                    return Err(Refusal::Close(
                        BAD_AUTH,
                        "the `token` of `initialize` is not a valid API key".into(),
                    ));
                }
            }
        }
        let caller = self.caller().await?;
        let after = match &args["latest_event_id"] {
            Value::Null => 0,
            value => value
                .as_i64()
                .ok_or_else(|| refuse("`args.latest_event_id` must be a whole number"))?
                .max(0),
        };
        match &args["conversation_id"] {
            Value::Null => {
                self.feed = None;
                // Legacy clients wait for this before they send their task.
                let ready = json!({
                    "observation": "agent_state_changed",
                    "content": "",
                    "extras": {"agent_state": "init"},
                    "message": "Agent state changed to init",
                });
                self.socket
                    .send(Message::Text(ready.to_string().into()))
                    .await
                    .map_err(|_| Refusal::Close(1011, "cannot send".into()))
            }
            Value::String(id) => {
                match self.state.db.conversation(id).await {
                    Ok(conversation) if caller.may_see(&conversation.owner_id) => {}
                    Ok(_) | Err(StorageError::NotFound(_)) => {
                        return Err(Refusal::Close(NOT_FOUND, "conversation not found".into()));
                    }
                    Err(error) => return Err(ApiError::from(error).into()),
                }
                self.follow(id.clone(), after).await
            }
            _ => Err(refuse("`args.conversation_id` must be a string")),
        }
    }

    /// The conversation the socket follows; a new one of the caller's (started here, titled
    /// from `message`) when it follows none yet.
    async fn conversation(
        &mut self,
        caller: &Caller,
        message: Option<&str>,
    ) -> Result<String, Refusal> {
        if let Some(feed) = &self.feed {
            return Ok(feed.conversation_id.clone());
        }
        let title = title_from(message);
        let conversation = self
            .state
            .db
            .create_conversation(&NewConversation {
                owner_id: &caller.0.id,
                title: &title,
                trigger_kind: "web",
                ..Default::default()
            })
            .await
            .map_err(ApiError::from)?;
        tracing::info!(conversation_id = %conversation.id, user_id = %caller.0.id, "conversation created over /ws");
        self.follow(conversation.id.clone(), 0).await?;
        Ok(conversation.id)
    }

    /// Follows `conversation_id`: its stored events after `after` now, live ones from then on.
    async fn follow(&mut self, conversation_id: String, after: i64) -> Result<(), Refusal> {
        let feed = self.feed.insert(Feed {
            conversation_id,
            after,
        });
        feed.catch_up(&self.state, &mut self.socket, i64::MAX)
            .await
            .map_err(|()| Refusal::Close(1011, "cannot send the conversation's events".into()))
    }
}

/// The followed conversation's events on their way to the socket: the stored ones after
/// `after`, then live ones, each once and in order. Rendered here rather than through the bus's
/// shared frame, which holds the `/sockets/events` shape.
struct Feed {
    conversation_id: String,
    /// The last event id the client has.
    after: i64,
}

impl Feed {
    /// Sends the stored events after the client's last, up to `until`. `Err` when the socket
    /// is gone or the log cannot be read (the socket is then closed).
    async fn catch_up(
        &mut self,
        state: &AppState,
        socket: &mut WebSocket,
        until: i64,
    ) -> Result<(), ()> {
        loop {
            let limit = REPLAY_PAGE.min(until.saturating_sub(self.after));
            if limit <= 0 {
                return Ok(());
            }
            let page = match state
                .db
                .events_after(&self.conversation_id, self.after, limit)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "/ws: cannot read events");
                    close(socket, 1011, "cannot read events").await;
                    return Err(());
                }
            };
            let done = (page.len() as i64) < limit;
            for event in &page {
                self.send(socket, event).await?;
            }
            if done {
                return Ok(());
            }
        }
    }

    /// A live event of any conversation: sent if it is this one's and new to the client, after
    /// any events between (missed while lagging) from the log.
    async fn live(
        &mut self,
        state: &AppState,
        socket: &mut WebSocket,
        event: &LiveEvent,
    ) -> Result<(), ()> {
        if event.conversation_id != self.conversation_id || event.id <= self.after {
            return Ok(());
        }
        if event.id > self.after + 1 {
            self.catch_up(state, socket, event.id - 1).await?;
        }
        self.send(socket, event).await
    }

    async fn send(&mut self, socket: &mut WebSocket, event: &Event) -> Result<(), ()> {
        let frame = legacy_frame(event).to_string();
        socket
            .send(Message::Text(frame.into()))
            .await
            .map_err(|_| ())?;
        self.after = event.id;
        Ok(())
    }
}

/// An event as the legacy protocol shows it: an action (`action`, `args`, `message`) or an
/// observation (`observation`, `content`, `extras`, `message`), with its id, time and source.
fn legacy_frame(event: &Event) -> Value {
    let mut frame = to_v0(event);
    if frame.get("message").is_none() {
        frame["message"] = json!("");
    }
    frame
}
