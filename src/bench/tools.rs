//! `openhands bench tools`: what the agent's tools that reach out cost beyond their transport.
//! An MCP tool call through the run's client against rmcp's streamable HTTP server on loopback,
//! beside a plain POST of the same JSON-RPC body to the same server; and a `fetch` of a page
//! served inside a Docker sandbox, beside `curl` of that page run in the same sandbox.

use std::time::Instant;

use serde_json::json;

use super::{percentile, record};
use crate::config::Config;

/// A documentation page of about 40 KB: headings, paragraphs with links and code, a table, and
/// the scripts and styles that are left out of what the model reads.
fn page() -> String {
    let mut html = String::from(
        "<!DOCTYPE html><html><head><title>Release notes</title>\
         <style>body { font-family: sans-serif } .note { color: #555 }</style>\
         <script>window.analytics = { id: 'not-for-the-model' };</script></head><body>\
         <nav><a href=\"/\">Home</a> · <a href=\"/docs\">Docs</a></nav><h1>Release notes</h1>",
    );
    for n in 1..=60 {
        html.push_str(&format!(
            "<h2 id=\"v{n}\">Version 1.{n}</h2><p>This release fixes <a href=\"/issues/{n}\">issue {n}</a> \
             and makes <code>start --fast</code> the default. Upgrading needs no migration; \
             see the <a href=\"/docs/upgrade\">upgrade guide</a>.</p>\
             <table><tr><th>area</th><th>change</th></tr><tr><td>cli</td><td>faster start</td></tr></table>"
        ));
    }
    html.push_str("</body></html>");
    html
}

pub async fn tool_overhead(config: &Config, calls: u32) -> anyhow::Result<()> {
    let calls = calls.clamp(10, 10_000);
    let (mut mcp_ms, mut plain_ms) = mcp_calls(calls).await?;
    let (mut fetch_ms, mut curl_ms) = fetches(config, calls).await?;
    println!();
    println!("| figure | p50 ms | p99 ms | samples |");
    println!("|---|---|---|---|");
    for (name, values) in [
        ("MCP tool call (streamable HTTP, loopback)", &mut mcp_ms),
        (
            "reference: POST of the same body to the same server",
            &mut plain_ms,
        ),
        ("`fetch` of a 40 KB page in the sandbox", &mut fetch_ms),
        (
            "reference: `curl` of the page in the same sandbox",
            &mut curl_ms,
        ),
    ] {
        let count = values.len();
        let (p50, p99) = (percentile(values, 50.0), percentile(values, 99.0));
        println!("| {name} | {p50:.2} | {p99:.2} | {count} |");
    }
    record("tools.mcp_call.p50", percentile(&mut mcp_ms, 50.0))?;
    record("tools.mcp_call.p99", percentile(&mut mcp_ms, 99.0))?;
    record("reference.http_post.p50", percentile(&mut plain_ms, 50.0))?;
    record("tools.fetch.p50", percentile(&mut fetch_ms, 50.0))?;
    record("tools.fetch.p99", percentile(&mut fetch_ms, 99.0))?;
    record("reference.curl_exec.p50", percentile(&mut curl_ms, 50.0))?;
    Ok(())
}

/// `calls` MCP calls of `echo` through the run's client, and as many plain POSTs.
async fn mcp_calls(calls: u32) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    use crate::agent::mcp::{McpConfig, McpTools};

    let server = super::mcp::serve().await?;
    let config = McpConfig::from_json(&json!({"shttp_servers": [{"url": server.url}]}).to_string())
        .map_err(anyhow::Error::msg)?;
    let (tools, problems) = McpTools::connect(&config, None, &[]).await;
    anyhow::ensure!(problems.is_empty(), "the MCP server: {problems:?}");
    let arguments = json!({"text": "ping"});
    println!("calling an MCP tool {calls} times …");
    let mut mcp_ms = Vec::with_capacity(calls as usize);
    for n in 0..calls + 10 {
        let started = Instant::now();
        tools
            .call("echo", &arguments)
            .await
            .map_err(anyhow::Error::msg)?;
        // The first calls warm the connection up.
        if n >= 10 {
            mcp_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo", "arguments": arguments},
    })
    .to_string();
    let http = reqwest::Client::new();
    let mut plain_ms = Vec::with_capacity(calls as usize);
    for n in 0..calls + 10 {
        let started = Instant::now();
        http.post(&server.plain_url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        if n >= 10 {
            plain_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok((mcp_ms, plain_ms))
}

/// `calls` fetches of a page served inside a Docker sandbox, and as many `curl`s of it there.
async fn fetches(config: &Config, calls: u32) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    use crate::agent::tools::{Call, Toolbox};
    use crate::sandbox::docker::DockerBackend;
    use crate::sandbox::{CommandRequest, SandboxBackend, WORKSPACE};

    let settings = crate::sandbox::SandboxSettings {
        sandbox_owner: Some(format!(
            "bench-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        )),
        sandbox_warm_pool: 0,
        ..config.sandbox.clone()
    };
    let backend = DockerBackend::connect(&settings).await?;
    let result = async {
        let sandbox = backend.start("bench-fetch").await?;
        backend
            .write_file(&sandbox.id, "/workspace/site/notes.html", page().as_bytes())
            .await?;
        let url = "http://127.0.0.1:8765/notes.html";
        let serve = CommandRequest::new(
            "cd /workspace/site && (python3 -m http.server 8765 --bind 127.0.0.1 >/tmp/http.log 2>&1 &) \
             && for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8765/ && break; sleep 0.1; done",
        );
        backend.execute(&sandbox.id, &serve, None).await?;
        let mut toolbox = Toolbox {
            sandbox_id: sandbox.id.clone(),
            ..Toolbox::default()
        };
        let call = Call::Fetch {
            url: url.to_string(),
            start_index: 0,
            max_length: 10_000,
            raw: false,
        };
        println!("fetching a page {calls} times …");
        let mut fetch_ms = Vec::with_capacity(calls as usize);
        for n in 0..calls + 3 {
            let started = Instant::now();
            let observation = toolbox
                .execute(Some(backend.as_ref()), &call, 1, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if n >= 3 {
                fetch_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            if n == 0 {
                let kind = observation.map(|o| o.kind).unwrap_or_default();
                anyhow::ensure!(kind == "browse", "the fetch failed ({kind})");
            }
        }
        let argv: Vec<String> = ["curl", "--silent", "--show-error", url]
            .iter()
            .map(|a| a.to_string())
            .collect();
        let mut curl_ms = Vec::with_capacity(calls as usize);
        for n in 0..calls + 3 {
            let started = Instant::now();
            let fetched = backend.exec(&sandbox.id, &argv, WORKSPACE).await?;
            anyhow::ensure!(fetched.exit_code == 0, "curl failed: {}", fetched.stderr);
            if n >= 3 {
                curl_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        Ok::<_, anyhow::Error>((fetch_ms, curl_ms))
    }
    .await;
    for sandbox in backend.list().await.unwrap_or_default() {
        let _ = backend.remove(&sandbox.id).await;
    }
    result
}
