//! Which MCP servers the agent may use, in the shape of OpenHands' `mcp_config`: remote servers
//! over SSE (`sse_servers`) or streamable HTTP (`shttp_servers`), and servers started inside the
//! conversation's sandbox that speak over their standard input and output (`stdio_servers`).
//! The same shape is read from MCP_CONFIG, stored by administrators and stored per user.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// What stands for a secret value when a configuration is shown: sending it back keeps the
/// stored value.
pub const HIDDEN: &str = "**********";
/// How long a server may take to answer one call when its entry does not say, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// The longest `timeout` an entry may give, in seconds.
const MAX_TIMEOUT_SECS: u64 = 600;
/// The most servers one configuration lists.
const MAX_SERVERS: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// Servers of MCP's HTTP+SSE transport: the address of the event stream, or an entry.
    #[serde(default)]
    pub sse_servers: Vec<RemoteServer>,
    /// Servers of MCP's streamable HTTP transport.
    #[serde(default)]
    pub shttp_servers: Vec<RemoteServer>,
    /// Programs started inside the conversation's sandbox.
    #[serde(default)]
    pub stdio_servers: Vec<StdioServer>,
}

/// A server reached over HTTP(S). Upstream accepts a bare URL for it too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RemoteServer {
    pub url: String,
    /// Sent as `Authorization: Bearer …`; stored sealed and never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Further request headers (their values are stored sealed and never shown).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Seconds one call may take (default 60, at most 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Whether a user configured it (not the service): such a server must be on a public
    /// address, so that no user reaches the service's own network through the worker.
    #[serde(skip)]
    #[schema(ignore)]
    pub from_user: bool,
}

/// A program started inside the sandbox (never on the host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StdioServer {
    /// Letters, digits, `-` and `_`; unique among the stdio servers.
    pub name: String,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables of the program (their values are stored sealed and never shown).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Seconds one call may take (default 60, at most 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

impl<'de> Deserialize<'de> for RemoteServer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            url: String,
            #[serde(default)]
            api_key: Option<String>,
            #[serde(default)]
            headers: BTreeMap<String, String>,
            #[serde(default)]
            timeout: Option<u64>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Url(String),
            Entry(Entry),
        }
        let value = Value::deserialize(deserializer)?;
        let form = match value {
            Value::String(url) => Form::Url(url),
            Value::Object(_) => Form::Entry(
                serde_json::from_value::<Entry>(value).map_err(serde::de::Error::custom)?,
            ),
            _ => {
                return Err(serde::de::Error::custom(
                    "a remote MCP server is its URL or an object with `url`",
                ));
            }
        };
        Ok(match form {
            Form::Url(url) => RemoteServer {
                url,
                api_key: None,
                headers: BTreeMap::new(),
                timeout: None,
                from_user: false,
            },
            Form::Entry(entry) => RemoteServer {
                url: entry.url,
                api_key: entry.api_key.filter(|key| !key.is_empty()),
                headers: entry.headers,
                timeout: entry.timeout,
                from_user: false,
            },
        })
    }
}

impl RemoteServer {
    /// How the server is named in logs and messages: its address without query or user
    /// information, which may hold secrets.
    pub fn label(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(url) => {
                format!(
                    "{}://{}{}",
                    url.scheme(),
                    url.host_str().unwrap_or_default(),
                    url.port().map(|p| format!(":{p}")).unwrap_or_default()
                ) + url.path()
            }
            Err(_) => "an MCP server with an invalid address".to_string(),
        }
    }
}

impl McpConfig {
    /// Reads a configuration from JSON, saying where it is wrong.
    pub fn from_json(text: &str) -> Result<McpConfig, String> {
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        let config: McpConfig = serde_path_to_error::deserialize(deserializer)
            .map_err(|e| format!("at `{}`: {}", e.path(), e.inner()))?;
        config.check()?;
        Ok(config)
    }

    pub fn is_empty(&self) -> bool {
        self.sse_servers.is_empty()
            && self.shttp_servers.is_empty()
            && self.stdio_servers.is_empty()
    }

    /// Says what is wrong with the configuration, if anything.
    pub fn check(&self) -> Result<(), String> {
        let total = self.sse_servers.len() + self.shttp_servers.len() + self.stdio_servers.len();
        if total > MAX_SERVERS {
            return Err(format!(
                "at most {MAX_SERVERS} MCP servers may be configured; got {total}"
            ));
        }
        for (field, servers) in [
            ("sse_servers", &self.sse_servers),
            ("shttp_servers", &self.shttp_servers),
        ] {
            for (at, server) in servers.iter().enumerate() {
                check_remote(server).map_err(|e| format!("{field}[{at}]: {e}"))?;
            }
        }
        let mut names = std::collections::HashSet::new();
        for (at, server) in self.stdio_servers.iter().enumerate() {
            check_stdio(server).map_err(|e| format!("stdio_servers[{at}]: {e}"))?;
            if !names.insert(server.name.as_str()) {
                return Err(format!(
                    "stdio_servers[{at}]: the name `{}` is used twice",
                    server.name
                ));
            }
        }
        Ok(())
    }

    /// The configuration as it may be shown: every secret value replaced by [`HIDDEN`].
    pub fn masked(&self) -> McpConfig {
        let mut shown = self.clone();
        for server in shown.remote_mut() {
            if let Some(key) = &mut server.api_key {
                *key = HIDDEN.to_string();
            }
            server.headers.values_mut().for_each(|v| *v = HIDDEN.into());
        }
        for server in &mut shown.stdio_servers {
            server.env.values_mut().for_each(|v| *v = HIDDEN.into());
        }
        shown
    }

    /// Puts back the stored values of secrets sent as [`HIDDEN`] (a masked configuration sent
    /// back), from the entry of `stored` with the same address or name.
    pub fn keep_hidden(&mut self, stored: Option<&McpConfig>) -> Result<(), String> {
        let empty = McpConfig::default();
        let stored = stored.unwrap_or(&empty);
        let missing =
            |what: &str| format!("{what} is {HIDDEN} but nothing is stored for it: give its value");
        for (field, servers, before) in [
            ("sse_servers", &mut self.sse_servers, &stored.sse_servers),
            (
                "shttp_servers",
                &mut self.shttp_servers,
                &stored.shttp_servers,
            ),
        ] {
            for (at, server) in servers.iter_mut().enumerate() {
                let old = before.iter().find(|o| o.url == server.url);
                if server.api_key.as_deref() == Some(HIDDEN) {
                    let key = old
                        .and_then(|o| o.api_key.clone())
                        .ok_or_else(|| missing(&format!("{field}[{at}].api_key")))?;
                    server.api_key = Some(key);
                }
                for (name, value) in &mut server.headers {
                    if value == HIDDEN {
                        *value = old
                            .and_then(|o| o.headers.get(name).cloned())
                            .ok_or_else(|| missing(&format!("{field}[{at}].headers.{name}")))?;
                    }
                }
            }
        }
        for (at, server) in self.stdio_servers.iter_mut().enumerate() {
            let old = stored.stdio_servers.iter().find(|o| o.name == server.name);
            for (name, value) in &mut server.env {
                if value == HIDDEN {
                    *value = old
                        .and_then(|o| o.env.get(name).cloned())
                        .ok_or_else(|| missing(&format!("stdio_servers[{at}].env.{name}")))?;
                }
            }
        }
        Ok(())
    }

    /// Every secret value of the configuration, named for where it is, so that a tool's
    /// answer that repeats one is not recorded with it.
    pub fn secret_values(&self) -> Vec<(String, String)> {
        let mut values = Vec::new();
        for server in self.sse_servers.iter().chain(&self.shttp_servers) {
            if let Some(key) = &server.api_key {
                values.push(("MCP api_key".to_string(), key.clone()));
            }
            for (name, value) in &server.headers {
                values.push((format!("MCP header {name}"), value.clone()));
            }
        }
        for server in &self.stdio_servers {
            for (name, value) in &server.env {
                values.push((name.clone(), value.clone()));
            }
        }
        values
    }

    /// The service's servers and a user's, the service's first; the user's remote servers are
    /// marked as theirs.
    pub fn joined(&self, users: &McpConfig) -> McpConfig {
        let mut all = self.clone();
        let mut users = users.clone();
        users
            .remote_mut()
            .for_each(|server| server.from_user = true);
        all.sse_servers.extend(users.sse_servers);
        all.shttp_servers.extend(users.shttp_servers);
        all.stdio_servers.extend(users.stdio_servers);
        all
    }

    fn remote_mut(&mut self) -> impl Iterator<Item = &mut RemoteServer> {
        self.sse_servers
            .iter_mut()
            .chain(self.shttp_servers.iter_mut())
    }
}

fn check_timeout(timeout: Option<u64>) -> Result<(), String> {
    match timeout {
        Some(secs) if !(1..=MAX_TIMEOUT_SECS).contains(&secs) => Err(format!(
            "timeout must be between 1 and {MAX_TIMEOUT_SECS} seconds; got {secs}"
        )),
        _ => Ok(()),
    }
}

fn check_remote(server: &RemoteServer) -> Result<(), String> {
    let url = url::Url::parse(&server.url)
        .map_err(|e| format!("url `{}` is not a valid address: {e}", server.url))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "url `{}` must be an http or https address",
            server.label()
        ));
    }
    for (name, value) in &server.headers {
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("headers: `{name}` is not a valid header name"));
        }
        if axum::http::HeaderValue::from_str(value).is_err() {
            return Err(format!(
                "headers: the value of `{name}` is not a valid header value"
            ));
        }
    }
    if let Some(key) = &server.api_key
        && axum::http::HeaderValue::from_str(&format!("Bearer {key}")).is_err()
    {
        return Err("api_key cannot be sent in a header".into());
    }
    check_timeout(server.timeout)
}

fn check_stdio(server: &StdioServer) -> Result<(), String> {
    let name_ok = !server.name.is_empty()
        && server.name.len() <= 64
        && server
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(format!(
            "name `{}` must be 1 to 64 letters, digits, `-` or `_`",
            server.name
        ));
    }
    if server.command.trim().is_empty() {
        return Err("command is empty".into());
    }
    for name in server.env.keys() {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "env: `{name}` is not a valid environment variable name"
            ));
        }
    }
    check_timeout(server.timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration of OpenHands' documentation, with a bare URL among the SSE servers.
    const UPSTREAM: &str = r#"{
        "sse_servers": ["http://127.0.0.1:8080/sse", {"url": "https://mcp.example.com/sse", "api_key": "k-1"}],
        "shttp_servers": [{"url": "https://mcp.example.com/mcp", "api_key": "k-2", "timeout": 90}],
        "stdio_servers": [{"name": "fetch", "command": "uvx", "args": ["mcp-server-fetch"], "env": {"TOKEN": "t-3"}}]
    }"#;

    #[test]
    fn reads_upstream_shapes() {
        let config = McpConfig::from_json(UPSTREAM).unwrap();
        assert_eq!(config.sse_servers[0].url, "http://127.0.0.1:8080/sse");
        assert_eq!(config.sse_servers[1].api_key.as_deref(), Some("k-1"));
        assert_eq!(config.shttp_servers[0].timeout, Some(90));
        assert_eq!(config.stdio_servers[0].args, ["mcp-server-fetch"]);
    }

    #[test]
    fn says_what_is_wrong() {
        let cases = [
            (
                r#"{"shttp_servers": [{"url": "ftp://x/y"}]}"#,
                "shttp_servers[0]: url",
            ),
            (
                r#"{"sse_servers": [{"url": "http://x", "headers": {"a b": "c"}}]}"#,
                "not a valid header name",
            ),
            (
                r#"{"stdio_servers": [{"name": "a b", "command": "x"}]}"#,
                "stdio_servers[0]: name",
            ),
            (
                r#"{"stdio_servers": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]}"#,
                "used twice",
            ),
            (
                r#"{"stdio_servers": [{"name": "a", "command": " "}]}"#,
                "command is empty",
            ),
            (
                r#"{"stdio_servers": [{"name": "a", "command": "x", "env": {"1X": "v"}}]}"#,
                "not a valid environment variable",
            ),
            (
                r#"{"shttp_servers": [{"url": "http://x", "timeout": 0}]}"#,
                "timeout must be between",
            ),
            (
                r#"{"shttp_servers": [{"url": "http://x", "token": "t"}]}"#,
                "unknown field `token`",
            ),
            (r#"{"mcp_servers": []}"#, "unknown field `mcp_servers`"),
            (r#"{"sse_servers": [3]}"#, "its URL or an object"),
        ];
        for (json, expected) in cases {
            let error = McpConfig::from_json(json).unwrap_err();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }

    #[test]
    fn secrets_are_masked_and_kept_when_sent_back() {
        let stored = McpConfig::from_json(UPSTREAM).unwrap();
        let shown = stored.masked();
        let text = serde_json::to_string(&shown).unwrap();
        for secret in ["k-1", "k-2", "t-3"] {
            assert!(!text.contains(secret), "{text}");
        }
        let mut back = McpConfig::from_json(&text).unwrap();
        back.keep_hidden(Some(&stored)).unwrap();
        assert_eq!(back, stored);
        // A hidden value with nothing stored behind it is refused.
        let mut orphan = shown.clone();
        orphan.shttp_servers[0].url = "https://other.example.com/mcp".into();
        let error = orphan.keep_hidden(Some(&stored)).unwrap_err();
        assert!(error.contains("shttp_servers[0].api_key"), "{error}");
    }

    #[test]
    fn labels_leave_out_credentials_and_queries() {
        let server = RemoteServer {
            url: "https://user:pw@mcp.example.com:8443/mcp?token=abc".into(),
            api_key: None,
            headers: BTreeMap::new(),
            timeout: None,
            from_user: false,
        };
        assert_eq!(server.label(), "https://mcp.example.com:8443/mcp");
    }
}
