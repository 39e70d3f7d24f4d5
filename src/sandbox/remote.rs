//! The `remote` backend: sandboxes on another machine, through the Runtime API that
//! `openhands runtime-api` serves there (RUNTIME_API_URL, key RUNTIME_API_KEY).
//!
//! Errors keep their meaning across the hop: the server names each error's kind, and the same
//! `SandboxError` variant is rebuilt here, so `Busy`, `NoRunningCommand`, `FileNotFound`… reach
//! the agent as if the sandbox were local. A rejected key is `RemoteUnauthorized`, a server that
//! cannot be reached `RemoteUnavailable`.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderValue;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::runtime_api::{
    ErrorBody, ExecBody, ExecuteLine, FileList, KEY_HEADER, RuntimeBody, RuntimeList, RuntimeView,
    StartBody, StopBody, sandbox_error,
};
use super::{
    CommandOutcome, CommandRequest, ExecOutput, FileEntry, OutputSink, SandboxBackend,
    SandboxError, SandboxInfo, SandboxResult,
};
use crate::setting::Secret;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Lifecycle calls (start, stop, pause, …): starting a container takes seconds, not minutes.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(120);
/// File and archive transfers (up to 1 GiB).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(1800);
/// The longest line of a streamed answer this client accepts.
const MAX_LINE: usize = 16 << 20;

pub struct RemoteBackend {
    base: Url,
    /// The URL as messages show it.
    shown: String,
    key: HeaderValue,
    client: reqwest::Client,
}

/// How long a call may take in all.
#[derive(Clone, Copy)]
enum Limit {
    Control,
    Transfer,
    /// Commands: the server interrupts them at their own timeout.
    None,
}

impl RemoteBackend {
    /// A client of the Runtime API at `url` (e.g. `http://sandbox-host:3030`), sending `key`.
    pub fn new(url: &str, key: Secret) -> SandboxResult<Self> {
        let base = Url::parse(url).map_err(|error| {
            SandboxError::Other(anyhow::anyhow!(
                "RUNTIME_API_URL `{url}` is not a URL ({error}); give e.g. http://sandbox-host:3030"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(SandboxError::Other(anyhow::anyhow!(
                "RUNTIME_API_URL `{url}` must be an http:// or https:// URL"
            )));
        }
        let mut key = HeaderValue::from_str(key.expose()).map_err(|_| {
            SandboxError::Other(anyhow::anyhow!(
                "RUNTIME_API_KEY cannot be sent in a header: use visible ASCII characters only"
            ))
        })?;
        key.set_sensitive(true);
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .map_err(|error| {
                SandboxError::Other(anyhow::anyhow!("cannot build the HTTP client: {error}"))
            })?;
        Ok(RemoteBackend {
            shown: base.as_str().trim_end_matches('/').to_string(),
            base,
            key,
            client,
        })
    }

    /// The URL of an endpoint: the base URL followed by `segments` (each percent-encoded),
    /// with `?path=…` when given.
    fn endpoint(&self, segments: &[&str], path: Option<&str>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut parts) = url.path_segments_mut() {
            parts.pop_if_empty().extend(segments);
        }
        url.set_query(None);
        if let Some(path) = path {
            url.query_pairs_mut().append_pair("path", path);
        }
        url
    }

    fn request(&self, method: Method, url: Url, limit: Limit) -> RequestBuilder {
        let request = self
            .client
            .request(method, url)
            .header(KEY_HEADER, self.key.clone());
        match limit {
            Limit::Control => request.timeout(CONTROL_TIMEOUT),
            Limit::Transfer => request.timeout(TRANSFER_TIMEOUT),
            Limit::None => request,
        }
    }

    /// Sends the request; any answer comes back, only a failure to talk is an error.
    async fn send(&self, request: RequestBuilder) -> SandboxResult<Response> {
        request
            .send()
            .await
            .map_err(|error| self.unavailable(error))
    }

    /// Sends the request; an error answer becomes the error it stands for.
    async fn call(
        &self,
        request: RequestBuilder,
        sandbox_id: Option<&str>,
    ) -> SandboxResult<Response> {
        let response = self.send(request).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.failure(response, sandbox_id).await)
        }
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        sandbox_id: Option<&str>,
    ) -> SandboxResult<T> {
        let response = self.call(request, sandbox_id).await?;
        self.read_json(response).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
        sandbox_id: Option<&str>,
    ) -> SandboxResult<T> {
        let request = self
            .request(Method::POST, self.endpoint(segments, None), Limit::Control)
            .json(body);
        self.call_json(request, sandbox_id).await
    }

    async fn read_json<T: DeserializeOwned>(&self, response: Response) -> SandboxResult<T> {
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.unavailable(error))?;
        serde_json::from_slice(&bytes).map_err(|error| SandboxError::Remote {
            status,
            message: format!("the answer is not what this client understands: {error}"),
        })
    }

    async fn read_bytes(&self, response: Response) -> SandboxResult<Vec<u8>> {
        response
            .bytes()
            .await
            .map(|bytes| bytes.to_vec())
            .map_err(|error| self.unavailable(error))
    }

    fn unavailable(&self, error: reqwest::Error) -> SandboxError {
        let error = error.without_url();
        let mut reason = if error.is_timeout() {
            "no answer in time".to_string()
        } else {
            error.to_string()
        };
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !reason.contains(&text) {
                reason.push_str(": ");
                reason.push_str(&text);
            }
            source = cause.source();
        }
        SandboxError::RemoteUnavailable {
            url: self.shown.clone(),
            reason,
        }
    }

    /// The error an error answer stands for.
    async fn failure(&self, response: Response, sandbox_id: Option<&str>) -> SandboxError {
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return SandboxError::RemoteUnauthorized;
        }
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => return self.unavailable(error),
        };
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => sandbox_error(
                status.as_u16(),
                body.kind.as_deref(),
                body.error,
                body.detail,
                sandbox_id,
            ),
            Err(_) => {
                let text: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
                let text = text.trim();
                SandboxError::Remote {
                    status: status.as_u16(),
                    message: if text.is_empty() {
                        status.canonical_reason().unwrap_or("no message").into()
                    } else {
                        text.to_string()
                    },
                }
            }
        }
    }

    /// Reads the NDJSON answer of `execute`: output lines go to `sink` as they arrive.
    async fn read_execution(
        &self,
        mut response: Response,
        sandbox_id: &str,
        sink: Option<&OutputSink>,
    ) -> SandboxResult<CommandOutcome> {
        let status = response.status().as_u16();
        let mut pending: Vec<u8> = Vec::new();
        loop {
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = &line[..line.len() - 1];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let line: ExecuteLine =
                    serde_json::from_slice(line).map_err(|error| SandboxError::Remote {
                        status,
                        message: format!("a line of the command's answer is unreadable: {error}"),
                    })?;
                if let Some(output) = line.output
                    && let Some(sink) = sink
                {
                    let _ = sink.send(output);
                }
                if let Some(outcome) = line.result {
                    return Ok(outcome);
                }
                if let Some(error) = line.error {
                    return Err(sandbox_error(
                        status,
                        Some(&error.kind),
                        error.message,
                        error.detail,
                        Some(sandbox_id),
                    ));
                }
            }
            if pending.len() > MAX_LINE {
                return Err(SandboxError::Remote {
                    status,
                    message: format!(
                        "a line of the command's answer is longer than {MAX_LINE} bytes"
                    ),
                });
            }
            match response.chunk().await {
                Ok(Some(chunk)) => pending.extend_from_slice(&chunk),
                Ok(None) => {
                    return Err(SandboxError::RemoteUnavailable {
                        url: self.shown.clone(),
                        reason: "the connection ended before the command's result arrived (the command may still be running)".into(),
                    });
                }
                Err(error) => return Err(self.unavailable(error)),
            }
        }
    }
}

#[async_trait]
impl SandboxBackend for RemoteBackend {
    fn kind(&self) -> &'static str {
        "remote"
    }

    async fn start(&self, conversation_id: &str) -> SandboxResult<SandboxInfo> {
        let body = StartBody {
            session_id: conversation_id.to_string(),
            image: None,
        };
        let view: RuntimeView = self.post(&["start"], &body, None).await?;
        Ok(view.into())
    }

    async fn get(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo> {
        let request = self.request(
            Method::GET,
            self.endpoint(&["runtime", sandbox_id], None),
            Limit::Control,
        );
        let view: RuntimeView = self.call_json(request, Some(sandbox_id)).await?;
        Ok(view.into())
    }

    async fn find(&self, conversation_id: &str) -> SandboxResult<Option<SandboxInfo>> {
        let request = self.request(
            Method::GET,
            self.endpoint(&["sessions", conversation_id], None),
            Limit::Control,
        );
        let response = self.send(request).await?;
        if response.status().is_success() {
            let view: RuntimeView = self.read_json(response).await?;
            return Ok(Some(view.into()));
        }
        match self.failure(response, None).await {
            SandboxError::NotFound(_) => Ok(None),
            other => Err(other),
        }
    }

    async fn list(&self) -> SandboxResult<Vec<SandboxInfo>> {
        let request = self.request(Method::GET, self.endpoint(&["list"], None), Limit::Control);
        let list: RuntimeList = self.call_json(request, None).await?;
        Ok(list.runtimes.into_iter().map(SandboxInfo::from).collect())
    }

    async fn pause(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo> {
        let body = RuntimeBody {
            runtime_id: sandbox_id.to_string(),
        };
        let view: RuntimeView = self.post(&["pause"], &body, Some(sandbox_id)).await?;
        Ok(view.into())
    }

    async fn resume(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo> {
        let body = RuntimeBody {
            runtime_id: sandbox_id.to_string(),
        };
        let view: RuntimeView = self.post(&["resume"], &body, Some(sandbox_id)).await?;
        Ok(view.into())
    }

    async fn stop(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo> {
        let body = StopBody {
            runtime_id: sandbox_id.to_string(),
            remove: false,
        };
        let view: RuntimeView = self.post(&["stop"], &body, Some(sandbox_id)).await?;
        Ok(view.into())
    }

    async fn remove(&self, sandbox_id: &str) -> SandboxResult<()> {
        let body = StopBody {
            runtime_id: sandbox_id.to_string(),
            remove: true,
        };
        let _: serde_json::Value = self.post(&["stop"], &body, Some(sandbox_id)).await?;
        Ok(())
    }

    async fn execute(
        &self,
        sandbox_id: &str,
        request: &CommandRequest,
        output: Option<OutputSink>,
    ) -> SandboxResult<CommandOutcome> {
        let http = self
            .request(
                Method::POST,
                self.endpoint(&["runtime", sandbox_id, "execute"], None),
                Limit::None,
            )
            .json(request);
        let response = self.call(http, Some(sandbox_id)).await?;
        self.read_execution(response, sandbox_id, output.as_ref())
            .await
    }

    async fn exec(
        &self,
        sandbox_id: &str,
        argv: &[String],
        workdir: &str,
    ) -> SandboxResult<ExecOutput> {
        let body = ExecBody {
            argv: argv.to_vec(),
            workdir: workdir.to_string(),
        };
        let request = self
            .request(
                Method::POST,
                self.endpoint(&["runtime", sandbox_id, "exec"], None),
                Limit::None,
            )
            .json(&body);
        self.call_json(request, Some(sandbox_id)).await
    }

    async fn read_file(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<u8>> {
        let request = self.request(
            Method::GET,
            self.endpoint(&["runtime", sandbox_id, "file"], Some(path)),
            Limit::Transfer,
        );
        let response = self.call(request, Some(sandbox_id)).await?;
        self.read_bytes(response).await
    }

    async fn write_file(&self, sandbox_id: &str, path: &str, content: &[u8]) -> SandboxResult<()> {
        let request = self
            .request(
                Method::PUT,
                self.endpoint(&["runtime", sandbox_id, "file"], Some(path)),
                Limit::Transfer,
            )
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(content.to_vec());
        self.call(request, Some(sandbox_id)).await?;
        Ok(())
    }

    async fn list_files(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<FileEntry>> {
        let request = self.request(
            Method::GET,
            self.endpoint(&["runtime", sandbox_id, "files"], Some(path)),
            Limit::Control,
        );
        let list: FileList = self.call_json(request, Some(sandbox_id)).await?;
        Ok(list.files)
    }

    async fn put_archive(
        &self,
        sandbox_id: &str,
        directory: &str,
        tar: Vec<u8>,
    ) -> SandboxResult<()> {
        let request = self
            .request(
                Method::PUT,
                self.endpoint(&["runtime", sandbox_id, "archive"], Some(directory)),
                Limit::Transfer,
            )
            .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
            .body(tar);
        self.call(request, Some(sandbox_id)).await?;
        Ok(())
    }

    async fn get_archive(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<u8>> {
        let request = self.request(
            Method::GET,
            self.endpoint(&["runtime", sandbox_id, "archive"], Some(path)),
            Limit::Transfer,
        );
        let response = self.call(request, Some(sandbox_id)).await?;
        self.read_bytes(response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(url: &str) -> RemoteBackend {
        RemoteBackend::new(url, "k".parse().unwrap()).unwrap()
    }

    #[test]
    fn endpoints_encode_their_parts() {
        let remote = backend("http://127.0.0.1:3030");
        assert_eq!(
            remote.endpoint(&["sessions", "a/b c"], None).as_str(),
            "http://127.0.0.1:3030/sessions/a%2Fb%20c"
        );
        assert_eq!(
            remote
                .endpoint(&["runtime", "s1", "file"], Some("/workspace/a&b.txt"))
                .as_str(),
            "http://127.0.0.1:3030/runtime/s1/file?path=%2Fworkspace%2Fa%26b.txt"
        );
        let prefixed = backend("http://127.0.0.1:3030/sandboxes/");
        assert_eq!(
            prefixed.endpoint(&["list"], None).as_str(),
            "http://127.0.0.1:3030/sandboxes/list"
        );
    }

    #[test]
    fn refuses_what_is_not_an_http_url() {
        assert!(RemoteBackend::new("sandbox-host:3030", "k".parse().unwrap()).is_err());
        assert!(RemoteBackend::new("ftp://host", "k".parse().unwrap()).is_err());
        assert!(RemoteBackend::new("http://host", "bad\nkey".parse().unwrap()).is_err());
    }
}
