//! WebSocket clients of the service for tests: connecting with an API key, sending text, and
//! waiting a bounded time for the next JSON frame or for the close frame.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `url` (`ws://…`), with `Authorization: Bearer KEY` when a key is given.
pub async fn connect(url: &str, key: Option<&str>) -> Socket {
    let mut request = url.into_client_request().unwrap();
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

pub async fn send(socket: &mut Socket, text: &str) {
    socket.send(Message::Text(text.into())).await.unwrap();
}

/// The next JSON frame, within `wait`; pings and pongs are passed over.
pub async fn next_within(socket: &mut Socket, wait: Duration) -> Value {
    loop {
        let frame = tokio::time::timeout(wait, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no frame within {wait:?}"))
            .expect("the socket is open")
            .unwrap();
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }
}

/// The next JSON frame, within ten seconds.
pub async fn next_json(socket: &mut Socket) -> Value {
    next_within(socket, Duration::from_secs(10)).await
}

/// The code of the close frame that comes within ten seconds, other frames passed over.
pub async fn close_code(socket: &mut Socket) -> CloseCode {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a close within 10 s");
        match frame {
            Some(Ok(Message::Close(Some(close)))) => return close.code,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}
