//! The MCP server of the benchmarks: rmcp's streamable HTTP server on a loopback port at `/mcp`,
//! with a few tools that repeat their `text`, and beside it `/plain`, which answers a POST with
//! its own body: the reference for what an HTTP round trip costs without MCP.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The names of the tools it offers; each repeats its `text`.
pub(super) const TOOLS: [&str; 5] = ["echo", "search", "lookup", "summarise", "translate"];

#[derive(Clone, Default)]
struct EchoTools;

impl ServerHandler for EchoTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("openhands-bench", "1.0.0"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema = json!({
            "type": "object",
            "properties": {"text": {"type": "string", "description": "What to repeat."}},
            "required": ["text"],
        });
        let schema = schema.as_object().cloned().unwrap_or_default();
        Ok(ListToolsResult::with_all_items(
            TOOLS
                .iter()
                .map(|name| Tool::new(*name, "Repeats the text it is given.", schema.clone()))
                .collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let text = request
            .arguments
            .as_ref()
            .and_then(|args| args.get("text"))
            .and_then(|text| text.as_str())
            .unwrap_or_default()
            .to_string();
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

/// A running benchmark MCP server; dropping it stops it.
pub(super) struct BenchMcpServer {
    /// `http://127.0.0.1:PORT/mcp`.
    pub(super) url: String,
    /// `http://127.0.0.1:PORT/plain`, the reference.
    pub(super) plain_url: String,
    stop: CancellationToken,
}

impl Drop for BenchMcpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(super) async fn serve() -> anyhow::Result<BenchMcpServer> {
    let stop = CancellationToken::new();
    let service = StreamableHttpService::new(
        || Ok(EchoTools),
        std::sync::Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token()),
    );
    let router = axum::Router::new().route_service("/mcp", service).route(
        "/plain",
        axum::routing::post(|body: axum::body::Bytes| async move { body }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let stopped = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(stopped.cancelled_owned())
            .await;
    });
    Ok(BenchMcpServer {
        url: format!("http://{address}/mcp"),
        plain_url: format!("http://{address}/plain"),
        stop,
    })
}
