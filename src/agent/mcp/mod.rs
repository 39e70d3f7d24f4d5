//! The tools of MCP servers, offered to the model beside the built-in ones. A run connects to
//! every configured server once (all at the same time, each bounded in time), lists their
//! tools, and names each one so that it is unique and valid for every model provider. A server
//! that cannot be reached is left out with a warning; a call that fails or takes too long is
//! answered to the model as an error. Servers of `stdio_servers` run inside the sandbox.

pub mod config;
mod sse;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

pub use config::McpConfig;
use config::{DEFAULT_TIMEOUT_SECS, RemoteServer, StdioServer};

use super::llm::{ToolCall, ToolSpec};
use crate::sandbox::{SandboxBackend, WORKSPACE};

/// How long connecting to one server and listing its tools may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest tool name every provider takes (OpenAI's limit; Anthropic's is longer).
const MAX_NAME_LEN: usize = 64;
/// The longest tool description offered; longer ones are cut.
const MAX_DESCRIPTION_LEN: usize = 4_000;

type Client = RunningService<RoleClient, ()>;

struct Server {
    label: String,
    client: Client,
    timeout: Duration,
}

/// One tool of a server, as the model knows it.
struct Offered {
    server: usize,
    /// The server's own name for it.
    tool: String,
    spec: ToolSpec,
}

/// The MCP tools of one run. Dropping it closes the connections (and ends stdio servers).
#[derive(Default)]
pub struct McpTools {
    servers: Vec<Server>,
    offered: Vec<Offered>,
    /// The configuration's secret values, kept out of what is recorded.
    secrets: Vec<(String, String)>,
}

impl std::fmt::Debug for McpTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTools")
            .field(
                "servers",
                &self.servers.iter().map(|s| &s.label).collect::<Vec<_>>(),
            )
            .field(
                "tools",
                &self
                    .offered
                    .iter()
                    .map(|o| &o.spec.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Where stdio servers are started: the run's sandbox.
pub struct SandboxPlace<'a> {
    pub sandboxes: &'a dyn SandboxBackend,
    pub sandbox_id: &'a str,
}

impl McpTools {
    /// Connects to every server of `config` and lists their tools, naming them apart from
    /// `taken` (the built-in tools). Returns what could not be connected, in words.
    pub async fn connect(
        config: &McpConfig,
        sandbox: Option<SandboxPlace<'_>>,
        taken: &[&str],
    ) -> (McpTools, Vec<String>) {
        // rmcp's HTTP client takes the process's default TLS provider, and panics without one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let remote = config
            .sse_servers
            .iter()
            .map(|s| (s, true))
            .chain(config.shttp_servers.iter().map(|s| (s, false)));
        let mut attempts = Vec::new();
        for (server, sse) in remote {
            let http = http.clone();
            attempts.push(futures::future::Either::Left(async move {
                let label = server.label();
                // An error may quote the address, whose query may hold a secret.
                let connected = bounded(connect_remote(http, server, sse), server.timeout)
                    .await
                    .map_err(|reason| reason.replace(&server.url, &label));
                (label, server.timeout, connected)
            }));
        }
        for server in &config.stdio_servers {
            let sandbox = sandbox.as_ref();
            attempts.push(futures::future::Either::Right(async move {
                let label = format!("stdio server `{}`", server.name);
                let connected = match sandbox {
                    Some(place) => bounded(connect_stdio(place, server), server.timeout).await,
                    None => Err("the run has no sandbox to start it in".to_string()),
                };
                (label, server.timeout, connected)
            }));
        }
        let mut tools = McpTools {
            secrets: config.secret_values(),
            ..McpTools::default()
        };
        let mut problems = Vec::new();
        let mut names: HashSet<String> = taken.iter().map(|n| n.to_string()).collect();
        for (label, timeout, connected) in futures::future::join_all(attempts).await {
            let (client, listed) = match connected {
                Ok(done) => done,
                Err(reason) => {
                    tracing::warn!(server = %label, %reason, "an MCP server is left out of this run");
                    problems.push(format!("{label}: {reason}"));
                    continue;
                }
            };
            let server = tools.servers.len();
            for tool in listed {
                let name = unique_name(&tool.name, &label, &mut names);
                tools.offered.push(Offered {
                    server,
                    tool: tool.name.to_string(),
                    spec: ToolSpec {
                        name,
                        description: description_of(&tool),
                        parameters: parameters_of(&tool),
                    },
                });
            }
            tools.servers.push(Server {
                label,
                client,
                timeout: Duration::from_secs(timeout.unwrap_or(DEFAULT_TIMEOUT_SECS)),
            });
        }
        (tools, problems)
    }

    /// The tools to offer the model.
    pub fn specs(&self) -> impl Iterator<Item = &ToolSpec> {
        self.offered.iter().map(|o| &o.spec)
    }

    /// The secret values of the servers' configuration, as (name, value).
    pub fn secrets(&self) -> &[(String, String)] {
        &self.secrets
    }

    /// Whether `name` is one of these tools.
    pub fn offers(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    fn find(&self, name: &str) -> Option<&Offered> {
        self.offered.iter().find(|o| o.spec.name == name)
    }

    /// Calls the tool the model knows as `name`. The result is MCP's `CallToolResult` as JSON
    /// (what OpenHands records); a failure is said in words for the model.
    pub async fn call(&self, name: &str, arguments: &Value) -> Result<String, String> {
        let Some(offered) = self.find(name) else {
            return Err(format!("Tool `{name}` is not available."));
        };
        let Some(server) = self.servers.get(offered.server) else {
            return Err(format!("Tool `{name}` is not available."));
        };
        let Value::Object(arguments) = arguments else {
            return Err(format!("The arguments of `{name}` must be a JSON object."));
        };
        let request =
            CallToolRequestParams::new(offered.tool.clone()).with_arguments(arguments.clone());
        match tokio::time::timeout(server.timeout, server.client.call_tool(request)).await {
            Err(_) => Err(format!(
                "The MCP server {} did not answer `{}` within {} seconds.",
                server.label,
                offered.tool,
                server.timeout.as_secs()
            )),
            Ok(Err(error)) => Err(format!(
                "The MCP server {} could not run `{}`: {error}",
                server.label, offered.tool
            )),
            Ok(Ok(result)) => serde_json::to_string(&result).map_err(|e| {
                format!(
                    "The answer of the MCP server {} could not be read: {e}",
                    server.label
                )
            }),
        }
    }
}

/// Reads a call of an MCP tool: its arguments must be a JSON object.
pub fn arguments_of(call: &ToolCall) -> Result<Value, String> {
    if call.arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(&call.arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(format!(
            "The arguments of `{}` must be a JSON object.",
            call.name
        )),
        Err(error) => Err(format!(
            "The arguments of `{}` are not valid JSON ({error}); send them again as a JSON object.",
            call.name
        )),
    }
}

/// Connecting takes at most [`CONNECT_TIMEOUT`], or the server's own call timeout if shorter.
async fn bounded<T>(
    connecting: impl std::future::Future<Output = Result<T, String>>,
    timeout: Option<u64>,
) -> Result<T, String> {
    let limit = timeout
        .map(Duration::from_secs)
        .map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT));
    tokio::time::timeout(limit, connecting)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "it did not answer within {} seconds",
                limit.as_secs()
            ))
        })
}

/// A client started on a transport, with the server's tools.
async fn started<T, E, A>(transport: T) -> Result<(Client, Vec<rmcp::model::Tool>), String>
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let client = ()
        .serve(transport)
        .await
        .map_err(|e| format!("it did not complete MCP's handshake: {e}"))?;
    let tools = client
        .list_all_tools()
        .await
        .map_err(|e| format!("it did not list its tools: {e}"))?;
    Ok((client, tools))
}

async fn connect_remote(
    http: reqwest::Client,
    server: &RemoteServer,
    sse: bool,
) -> Result<(Client, Vec<rmcp::model::Tool>), String> {
    let url = url::Url::parse(&server.url).map_err(|e| format!("invalid address: {e}"))?;
    if server.from_user {
        on_public_addresses(&url).await?;
    }
    let mut headers = axum::http::HeaderMap::new();
    for (name, value) in &server.headers {
        let name = axum::http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        let mut value = axum::http::HeaderValue::from_str(value)
            .map_err(|_| format!("the value of `{name}` is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    if sse {
        if let Some(key) = &server.api_key {
            let mut value = axum::http::HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| "api_key cannot be sent in a header".to_string())?;
            value.set_sensitive(true);
            headers.insert(axum::http::header::AUTHORIZATION, value);
        }
        let (outgoing, incoming) = sse::connect(http, &url, headers, CONNECT_TIMEOUT).await?;
        return started((outgoing, incoming)).await;
    }
    let mut config = StreamableHttpClientTransportConfig::with_uri(server.url.as_str())
        .custom_headers(
            headers
                .into_iter()
                .filter_map(|(k, v)| Some((k?, v)))
                .collect::<HashMap<_, _>>(),
        );
    if let Some(key) = &server.api_key {
        config = config.auth_header(key.clone());
    }
    started(StreamableHttpClientTransport::from_config(config)).await
}

async fn connect_stdio(
    place: &SandboxPlace<'_>,
    server: &StdioServer,
) -> Result<(Client, Vec<rmcp::model::Tool>), String> {
    let argv: Vec<String> = std::iter::once(server.command.clone())
        .chain(server.args.iter().cloned())
        .collect();
    let env: Vec<(String, String)> = server
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let process = place
        .sandboxes
        .open_stdio(place.sandbox_id, &argv, &env, WORKSPACE)
        .await
        .map_err(|e| format!("it could not be started in the sandbox: {e}"))?;
    started((process.output, process.input)).await
}

/// Refuses an address that is, or resolves to, the service's own network: loopback, private,
/// link-local (cloud metadata among them), shared or unspecified addresses. A user's server
/// must not let them reach what the worker reaches; administrators configure internal servers.
async fn on_public_addresses(url: &url::Url) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("its host cannot be resolved: {e}"))?;
    for address in addresses {
        if !is_public(address.ip()) {
            return Err(
                "it is on the service's own network (a loopback, private or link-local address), which servers users configure may not reach; an administrator can add it for everyone"
                    .to_string(),
            );
        }
    }
    Ok(())
}

fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                // Carrier-grade NAT, shared by providers' internal networks.
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    // Unique local (fc00::/7) and link-local (fe80::/10) addresses.
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// A name valid for every provider (letters, digits, `_` and `-`, at most 64), not yet taken:
/// the tool's own name where it can be, else prefixed with its server's.
fn unique_name(tool: &str, server: &str, taken: &mut HashSet<String>) -> String {
    let clean = |text: &str| -> String {
        let cleaned: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        cleaned.trim_matches('_').to_string()
    };
    let own = clean(tool);
    let own = if own.is_empty() {
        "tool".to_string()
    } else {
        own
    };
    let short = |name: String| -> String { name.chars().take(MAX_NAME_LEN).collect() };
    let server_part: String = clean(server)
        .rsplit('_')
        .find(|part| !part.is_empty())
        .unwrap_or("mcp")
        .to_string();
    let mut candidates = vec![short(own.clone()), short(format!("{server_part}_{own}"))];
    for n in 2.. {
        let suffix = format!("_{n}");
        let room = MAX_NAME_LEN - suffix.len();
        candidates.push(format!(
            "{}{suffix}",
            own.chars().take(room).collect::<String>()
        ));
        if n > 1000 {
            break;
        }
    }
    for candidate in candidates {
        if taken.insert(candidate.clone()) {
            return candidate;
        }
    }
    // Unreachable in practice: a thousand tools of one name.
    let fallback = format!("mcp_{}", taken.len());
    taken.insert(fallback.clone());
    fallback
}

fn description_of(tool: &rmcp::model::Tool) -> String {
    let text = tool
        .description
        .as_deref()
        .or(tool.title.as_deref())
        .unwrap_or("A tool of an MCP server.");
    text.chars().take(MAX_DESCRIPTION_LEN).collect()
}

/// The tool's input schema as a JSON Schema object, as every provider wants it.
fn parameters_of(tool: &rmcp::model::Tool) -> Value {
    let mut schema = Value::Object((*tool.input_schema).clone());
    if schema.get("type").is_none() {
        schema["type"] = json!("object");
    }
    if schema.get("properties").is_none() {
        schema["properties"] = json!({});
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_unique() {
        let mut taken: HashSet<String> = ["execute_bash", "fetch"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            unique_name("weather.lookup", "x", &mut taken),
            "weather_lookup"
        );
        // A built-in's name goes to the server's tool with the server's name before it.
        assert_eq!(
            unique_name("fetch", "http://127.0.0.1:9/mcp", &mut taken),
            "mcp_fetch"
        );
        assert_eq!(
            unique_name("fetch", "stdio server `web`", &mut taken),
            "web_fetch"
        );
        assert_eq!(
            unique_name("fetch", "stdio server `web`", &mut taken),
            "fetch_2"
        );
        let long = "a".repeat(100);
        let name = unique_name(&long, "x", &mut taken);
        assert_eq!(name.len(), MAX_NAME_LEN);
        assert_eq!(unique_name("", "x", &mut taken), "tool");
        assert_eq!(unique_name("%%%", "x", &mut taken), "x_tool");
    }

    #[test]
    fn only_public_addresses_count_as_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.17.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "100.128.0.1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn a_users_server_on_the_services_network_is_refused() {
        // Literal addresses and a name resolved from /etc/hosts: nothing leaves the machine.
        for url in [
            "http://127.0.0.1:9/mcp",
            "http://localhost:9/mcp",
            "http://[::1]:9/mcp",
        ] {
            let error = on_public_addresses(&url::Url::parse(url).unwrap())
                .await
                .unwrap_err();
            assert!(error.contains("own network"), "{url}: {error}");
        }
    }

    #[test]
    fn arguments_must_be_an_object() {
        let call = |arguments: &str| ToolCall {
            id: "c".into(),
            name: "echo".into(),
            arguments: arguments.into(),
        };
        assert_eq!(arguments_of(&call("")).unwrap(), json!({}));
        assert_eq!(arguments_of(&call(r#"{"a":1}"#)).unwrap(), json!({"a": 1}));
        assert!(
            arguments_of(&call("[1]"))
                .unwrap_err()
                .contains("JSON object")
        );
        assert!(
            arguments_of(&call("{"))
                .unwrap_err()
                .contains("not valid JSON")
        );
    }
}
