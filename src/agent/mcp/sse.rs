//! MCP's HTTP+SSE transport (protocol 2024-11-05), which many deployed servers still speak and
//! rmcp no longer has a client for: a GET opens an event stream whose first `endpoint` event
//! names where to POST messages; the server's messages arrive as `message` events.

use std::time::Duration;

use futures::{Sink, Stream, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use sse_stream::SseStream;

/// Why a message could not be sent to the server.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SendError(String);

pub type Outgoing =
    std::pin::Pin<Box<dyn Sink<TxJsonRpcMessage<RoleClient>, Error = SendError> + Send>>;
pub type Incoming = std::pin::Pin<Box<dyn Stream<Item = RxJsonRpcMessage<RoleClient>> + Send>>;

/// Opens the event stream at `url` and waits (at most `wait`) for the address to post to,
/// which must be on the same origin: the headers, credentials among them, go nowhere else.
pub async fn connect(
    http: reqwest::Client,
    url: &url::Url,
    headers: HeaderMap,
    wait: Duration,
) -> Result<(Outgoing, Incoming), String> {
    let response = http
        .get(url.clone())
        .headers(headers.clone())
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| format!("cannot open its event stream: {}", without_url(e)))?;
    if !response.status().is_success() {
        return Err(format!("its event stream answered {}", response.status()));
    }
    let mut events = SseStream::from_bytes_stream(response.bytes_stream());
    let endpoint = tokio::time::timeout(wait, async {
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| format!("its event stream broke: {e}"))?;
            if event.event.as_deref() == Some("endpoint") {
                return Ok(event.data.unwrap_or_default());
            }
        }
        Err("its event stream ended before it named where to send messages".to_string())
    })
    .await
    .map_err(|_| "it did not name where to send messages in time".to_string())??;
    let endpoint = url
        .join(endpoint.trim())
        .map_err(|e| format!("it named an invalid address to send messages to: {e}"))?;
    if endpoint.origin() != url.origin() {
        return Err("it named an address on another origin to send messages to".into());
    }
    let incoming = events.filter_map(|event| async move {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::debug!(%error, "an MCP event stream broke");
                return None;
            }
        };
        if !matches!(event.event.as_deref(), None | Some("message")) {
            return None;
        }
        match serde_json::from_str::<RxJsonRpcMessage<RoleClient>>(event.data.as_deref()?) {
            Ok(message) => Some(message),
            Err(error) => {
                tracing::debug!(%error, "an MCP server sent a message that is not JSON-RPC");
                None
            }
        }
    });
    let outgoing = futures::sink::unfold(
        (http, endpoint, headers),
        |(http, endpoint, headers), message: TxJsonRpcMessage<RoleClient>| async move {
            let body = serde_json::to_vec(&message).map_err(|e| SendError(e.to_string()))?;
            let response = http
                .post(endpoint.clone())
                .headers(headers.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| {
                    SendError(format!("cannot send to the MCP server: {}", without_url(e)))
                })?;
            if !response.status().is_success() {
                return Err(SendError(format!(
                    "the MCP server answered {} to a message",
                    response.status()
                )));
            }
            Ok((http, endpoint, headers))
        },
    );
    Ok((Box::pin(outgoing), Box::pin(incoming)))
}

/// A request error without its address, which may carry a secret in its query.
fn without_url(error: reqwest::Error) -> reqwest::Error {
    error.without_url()
}
