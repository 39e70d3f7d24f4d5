//! The test MCP servers of `support::mcp` checked on their own, before any test trusts them:
//! rmcp's client against the streamable HTTP server and the stdio example, and raw HTTP
//! against the HTTP+SSE bridge and the server that never answers.

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use support::mcp;

const TOOLS: [&str; 6] = [
    "echo",
    "add",
    "slow",
    "fail",
    "weather.lookup",
    "environment",
];

fn call(name: &'static str, args: Value) -> CallToolRequestParams {
    let Value::Object(args) = args else {
        panic!("tool arguments must be an object")
    };
    CallToolRequestParams::new(name).with_arguments(args)
}

fn text(result: &CallToolResult) -> &str {
    assert_eq!(result.content.len(), 1, "{result:?}");
    &result.content[0].as_text().expect("a text block").text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_serves_the_tools_to_rmcp() {
    mcp::install_crypto_provider();
    let server = mcp::streamable_http().await;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.url.clone()).auth_header("tok"),
    );
    let client = ().serve(transport).await.unwrap();

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    assert_eq!(names, TOOLS);
    assert!(tools.iter().all(|tool| tool.description.is_some()));
    assert_eq!(
        tools[1].input_schema.get("required"),
        Some(&json!(["a", "b"]))
    );

    let sum = client
        .call_tool(call("add", json!({"a": 2, "b": 3})))
        .await
        .unwrap();
    assert_eq!(text(&sum), "5");
    assert_eq!(sum.is_error, Some(false));
    assert_eq!(server.tool_calls(), 1);

    let failed = client.call_tool(call("fail", json!({}))).await.unwrap();
    assert_eq!(text(&failed), "this tool always fails");
    assert_eq!(failed.is_error, Some(true));
    let weather = client
        .call_tool(call("weather.lookup", json!({"city": "Oslo"})))
        .await
        .unwrap();
    assert_eq!(text(&weather), "sunny in Oslo");
    let unknown = client.call_tool(call("nope", json!({}))).await;
    assert!(unknown.is_err(), "{unknown:?}");
    assert_eq!(server.tool_calls(), 4);

    // rmcp's transport adds the scheme to the token it is given.
    let authorizations = server.authorizations();
    assert!(!authorizations.is_empty());
    assert!(
        authorizations.iter().all(|value| value == "Bearer tok"),
        "{authorizations:?}"
    );

    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_example_serves_the_tools_and_exits_when_stdin_closes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(mcp::stdio_server_binary())
        .current_dir(dir.path())
        .env("MCP_GREETING", "hi")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let client = ().serve((stdout, stdin)).await.unwrap();

    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), TOOLS.len());
    let echo = client
        .call_tool(call("echo", json!({"text": "over stdio"})))
        .await
        .unwrap();
    assert_eq!(text(&echo), "echo: over stdio");
    let environment = client
        .call_tool(call("environment", json!({})))
        .await
        .unwrap();
    assert_eq!(
        text(&environment),
        format!(
            "greeting=hi cwd={} workspace={}",
            dir.path().canonicalize().unwrap().display(),
            std::path::Path::new("/workspace").exists()
        )
    );

    // Closing the client closes the server's stdin, and that alone ends it.
    client.cancel().await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the stdio server exits once stdin is closed")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// Reads server-sent events from a streaming response.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// The next event with data: its name (`message` when unnamed) and its data.
    async fn next(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = "message".to_owned();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim_start().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                    }
                }
                if !data.is_empty() {
                    return (name, data.join("\n"));
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .expect("the event stream stays open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The data of the next event, which must be a `message`, as JSON.
    async fn message(&mut self) -> Value {
        let (name, data) = self.next().await;
        assert_eq!(name, "message", "{data}");
        serde_json::from_str(&data).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_bridge_answers_on_the_event_stream() {
    let server = mcp::sse().await;
    let http = reqwest::Client::new();
    let response = http
        .get(&server.url)
        .header("accept", "text/event-stream")
        .header("x-test", "opened")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events = Events {
        response,
        buffer: String::new(),
    };
    let (name, endpoint) = events.next().await;
    assert_eq!(name, "endpoint");
    assert!(endpoint.starts_with("/message?sessionId="), "{endpoint}");
    let post_url = server.url.replace("/sse", &endpoint);

    let post = |body: Value| {
        let request = http.post(&post_url).header("x-test", "posted").json(&body);
        async move { request.send().await.unwrap().status() }
    };
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2024-11-05",
            "capabilities": {},
            "clientInfo": {"name": "smoke", "version": "0"},
        },
    });
    assert_eq!(post(initialize).await, 202);
    let answer = events.message().await;
    assert_eq!(answer["id"], 1, "{answer}");
    assert_eq!(
        answer["result"]["protocolVersion"], "2024-11-05",
        "{answer}"
    );
    assert!(
        answer["result"]["capabilities"]["tools"].is_object(),
        "{answer}"
    );

    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(initialized).await, 202);
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    assert_eq!(post(list).await, 202);
    let answer = events.message().await;
    assert_eq!(answer["id"], 2, "{answer}");
    assert_eq!(answer["result"]["tools"].as_array().unwrap().len(), 6);
    let add = json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "add", "arguments": {"a": 2, "b": 3.5}},
    });
    assert_eq!(post(add).await, 202);
    let answer = events.message().await;
    assert_eq!(answer["id"], 3, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "5.5", "{answer}");
    assert_eq!(server.tool_calls(), 1);
    assert_eq!(server.header_values("X-Test")[0], "opened");
    assert_eq!(server.header_values("x-test").len(), 5);

    let unknown = http
        .post(server.url.replace("/sse", "/message?sessionId=nope"))
        .json(&json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // Disconnecting ends the session.
    drop(events);
    support::wait_for("the session to end", Duration::from_secs(5), || {
        let status = post(json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}));
        async move { (status.await == 404).then_some(()) }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_holds_requests_until_it_stops() {
    let server = mcp::silent().await;
    let http = reqwest::Client::new();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
    let timed_out = http
        .post(&server.url)
        .timeout(Duration::from_millis(300))
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(timed_out.is_timeout(), "{timed_out}");
    assert_eq!(server.header_values("content-type"), ["application/json"]);

    let held = tokio::spawn(http.post(&server.url).json(&body).send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished());
    server.shutdown().await;
    // The held request is let go once the server stops, answered or not.
    tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("the request ends when the server stops")
        .unwrap()
        .ok();
}
