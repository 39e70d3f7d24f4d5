//! The tools every test MCP server offers, written against rmcp's `ServerHandler` by hand so
//! that the input schemas are exactly the JSON the tests expect. The same file is the whole
//! server of `examples/mcp_stdio_server.rs`, which is why it uses only the crate's own
//! dependencies and never unwraps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

/// echo, add, slow, fail, weather.lookup and environment. Clones share one count of
/// `tools/call` requests, so a server that makes a handler per session still counts them all.
#[derive(Clone, Debug, Default)]
pub struct TestTools {
    calls: Arc<AtomicUsize>,
}

impl TestTools {
    pub fn new() -> TestTools {
        TestTools::default()
    }

    /// How many `tools/call` requests this handler and its clones received, unknown tools
    /// included.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The tools as `tools/list` gives them.
    pub fn tools() -> Vec<Tool> {
        vec![
            tool(
                "echo",
                "Repeats the text it is given, after `echo: `.",
                json!({
                    "type": "object",
                    "properties": {"text": {"type": "string", "description": "What to repeat."}},
                    "required": ["text"],
                }),
            ),
            tool(
                "add",
                "Adds two numbers.",
                json!({
                    "type": "object",
                    "properties": {
                        "a": {"type": "number", "description": "The first number."},
                        "b": {"type": "number", "description": "The second number."},
                    },
                    "required": ["a", "b"],
                }),
            ),
            tool(
                "slow",
                "Waits the given number of seconds, then answers `done`.",
                json!({
                    "type": "object",
                    "properties": {
                        "seconds": {"type": "number", "description": "How long to wait."},
                    },
                }),
            ),
            tool(
                "fail",
                "Always fails.",
                json!({"type": "object", "properties": {}}),
            ),
            // The dot is not allowed in the tool names of some LLM providers: clients must
            // rename this one.
            tool(
                "weather.lookup",
                "Today's weather in a city.",
                json!({
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": "The city."}},
                }),
            ),
            tool(
                "environment",
                "Describes where the server runs: MCP_GREETING, the working directory and \
                 whether /workspace exists.",
                json!({"type": "object", "properties": {}}),
            ),
        ]
    }

    async fn run(&self, name: &str, args: &JsonObject) -> Result<CallToolResult, ErrorData> {
        let text = match name {
            "echo" => format!("echo: {}", string_arg(args, "text")?),
            "add" => format!("{}", number_arg(args, "a")? + number_arg(args, "b")?),
            "slow" => {
                let seconds = number_arg(args, "seconds")?;
                let wait = Duration::try_from_secs_f64(seconds)
                    .map_err(|e| ErrorData::invalid_params(format!("seconds: {e}"), None))?;
                tokio::time::sleep(wait).await;
                "done".to_owned()
            }
            "fail" => {
                return Ok(CallToolResult::error(vec![ContentBlock::text(
                    "this tool always fails",
                )]));
            }
            "weather.lookup" => format!("sunny in {}", string_arg(args, "city")?),
            "environment" => {
                let greeting = std::env::var("MCP_GREETING").unwrap_or_else(|_| "unset".to_owned());
                let cwd = std::env::current_dir()
                    .map(|dir| dir.display().to_string())
                    .unwrap_or_else(|e| format!("({e})"));
                let workspace = std::path::Path::new("/workspace").exists();
                format!("greeting={greeting} cwd={cwd} workspace={workspace}")
            }
            _ => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool: {name}"),
                    None,
                ));
            }
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }
}

fn tool(name: &'static str, description: &'static str, schema: Value) -> Tool {
    let schema = match schema {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    };
    Tool::new(name, description, schema)
}

fn string_arg(args: &JsonObject, key: &str) -> Result<String, ErrorData> {
    args.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ErrorData::invalid_params(format!("`{key}` must be a string"), None))
}

fn number_arg(args: &JsonObject, key: &str) -> Result<f64, ErrorData> {
    args.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| ErrorData::invalid_params(format!("`{key}` must be a number"), None))
}

impl ServerHandler for TestTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("openhands-test-tools", "1.0.0"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(TestTools::tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let args = request.arguments.unwrap_or_default();
        self.run(&request.name, &args).await.map(Into::into)
    }
}
