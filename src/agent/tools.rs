//! The agent's tools, with OpenHands CodeAct's names and parameters: `execute_bash`,
//! `str_replace_editor`, `think`, `finish` and `task_tracker`, and `fetch` with the parameters
//! of the MCP fetch server's tool. A call the model got wrong becomes an error it can read and
//! correct; only a fault of the host ends the run.

use std::time::Duration;

use serde_json::{Value, json};

use super::editor::{EditorCall, FileEditor};
use super::events::{self, Draft, ToolCallMeta};
use super::llm::{ToolCall, ToolSpec};
use super::mcp::McpTools;
use crate::sandbox::{CommandRequest, SandboxBackend, SandboxError, WORKSPACE};

pub const EXECUTE_BASH: &str = "execute_bash";
pub const STR_REPLACE_EDITOR: &str = "str_replace_editor";
pub const THINK: &str = "think";
pub const FINISH: &str = "finish";
pub const TASK_TRACKER: &str = "task_tracker";
pub const FETCH: &str = "fetch";

/// What a `fetch` returns when the model does not say, in characters.
const FETCH_DEFAULT_LENGTH: usize = 10_000;
/// The most a `fetch` returns at once, in characters.
const FETCH_MAX_LENGTH: usize = 50_000;
/// The largest page a `fetch` downloads.
const FETCH_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// The longest per-call timeout the model may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long a user's `browse` may take to fetch its page.
const BROWSE_TIMEOUT_SECS: u32 = 60;
/// The longest page text a `browse` keeps.
const MAX_PAGE_CHARS: usize = 30_000;

/// The actions a user may issue themselves (the legacy `/ws` protocol's names).
pub const USER_ACTIONS: [&str; 6] = ["run", "read", "write", "browse", "think", "finish"];

/// The `security_risk` parameter of the tools that act, as OpenHands names it: a person may be
/// asked to confirm MEDIUM and HIGH actions (and those that give none) before they run.
static SECURITY_RISK: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    json!({
        "type": "string",
        "enum": ["LOW", "MEDIUM", "HIGH"],
        "description": "How much harm this could do: LOW for reading and for changes inside the workspace that are easy to undo; MEDIUM for changes that are hard to undo or that install software; HIGH for deleting data, touching credentials, or acting outside the sandbox."
    })
});

/// Whether a call waits for the user in confirmation mode: a command, an edit or a fetch the
/// model did not rate LOW (no rating counts as HIGH). Reading and thinking never wait.
pub fn needs_confirmation(call: &ToolCall, parsed: &Call) -> bool {
    let acts = match parsed {
        Call::Bash(_)
        | Call::Fetch { .. }
        | Call::Write { .. }
        | Call::Browse { .. }
        | Call::Mcp { .. } => true,
        Call::Editor(edit) => edit.command != "view",
        Call::Think { .. } | Call::Finish { .. } | Call::Tasks { .. } => false,
    };
    if !acts {
        return false;
    }
    let risk = serde_json::from_str::<Value>(&call.arguments)
        .ok()
        .and_then(|args| args["security_risk"].as_str().map(str::to_ascii_uppercase));
    risk.as_deref() != Some("LOW")
}

/// The tools offered to the model.
pub fn specs() -> Vec<ToolSpec> {
    let spec = |name: &str, description: &str, parameters: Value| ToolSpec {
        name: name.to_string(),
        description: description.to_string(),
        parameters,
    };
    vec![
        spec(
            EXECUTE_BASH,
            "Runs a command in a bash shell that stays open between calls.\n\n\
             * One command at a time: chain several with `&&` or `;`.\n\
             * The session keeps the working directory, environment and virtualenv between calls.\n\
             * A command that prints nothing new for a while returns with exit code -1 and keeps running: \
             send an empty command to wait for more output, text with `is_input` set to `true` to answer it, \
             or `C-c`, `C-d`, `C-z` with `is_input` to interrupt it.\n\
             * Long-running servers: run them in the background with `&` and redirect their output to a file.\n\
             * Output longer than 30,000 characters is cut in the middle.",
            json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "What to run. After an exit code of -1, an empty text waits for more output of the command still running, and `C-c` interrupts it."},
                    "is_input": {"type": "string", "enum": ["true", "false"], "description": "`true` sends `command` as input to the command still running; `false` (the default) runs it as a new command."},
                    "timeout": {"type": "number", "description": "Optional: the most seconds the command may run before it is stopped."},
                    "security_risk": SECURITY_RISK.clone()
                },
                "required": ["command"]
            }),
        ),
        spec(
            STR_REPLACE_EDITOR,
            "Reads, creates and changes text files.\n\
             * Edits last: they are kept between calls and across messages from the user.\n\
             * `view` on a file shows it with line numbers (as `cat -n`); on a directory it lists what is inside, two levels deep, hidden entries left out.\n\
             * `create` makes a new file and refuses a path that is already a file.\n\
             * Output that is too long is cut, with `<response clipped>` where it was cut.\n\
             * `undo_edit` takes back the latest edit of the file at `path`.\n\
             * `old_str` must be found exactly once in the file, whitespace included, as whole consecutive lines or part of them; otherwise nothing is replaced.",
            json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"], "description": "What to do."},
                    "path": {"type": "string", "description": "The file or directory, as an absolute path such as `/workspace/app.py` or `/workspace`."},
                    "file_text": {"type": "string", "description": "For `create`: the whole text of the new file."},
                    "old_str": {"type": "string", "description": "For `str_replace`: the text in the file to replace."},
                    "new_str": {"type": "string", "description": "For `str_replace`: the text that replaces `old_str` (left out, `old_str` is removed). For `insert`: the text to insert."},
                    "insert_line": {"type": "integer", "description": "For `insert`: `new_str` goes after this line of the file (0: at its start)."},
                    "view_range": {"type": "array", "items": {"type": "integer"}, "description": "For `view` of a file: the first and last line to show, as [5, 9]; [5, -1] shows from line 5 to the end."},
                    "security_risk": SECURITY_RISK.clone()
                },
                "required": ["command", "path"]
            }),
        ),
        spec(
            THINK,
            "Writes down a thought: nothing is read or changed. Useful to plan, or to reason through a hard problem before acting.",
            json!({
                "type": "object",
                "properties": {"thought": {"type": "string", "description": "The thought."}},
                "required": ["thought"]
            }),
        ),
        spec(
            FINISH,
            "Ends your work on the task: call it when the task is done, or when you cannot go further.\n\n\
             The message is posted where the task was asked: say briefly what you did and what came of it.",
            json!({
                "type": "object",
                "properties": {
                    "message": {"type": "string", "description": "Your closing message to the person who asked."},
                    "task_completed": {"type": "string", "enum": ["true", "false", "partial"], "description": "Whether the task is done."}
                },
                "required": ["message"]
            }),
        ),
        spec(
            FETCH,
            "Reads a web page (http or https) from the sandbox, so it reaches what the sandbox reaches, and returns it as Markdown.\n\
             * Long pages come in parts: the answer says where to go on with `start_index`.\n\
             * `raw` returns the page as it came, HTML included.",
            json!({
                "type": "object",
                "properties": {
                    "url": {"type": "string", "description": "The address to read, http:// or https://."},
                    "max_length": {"type": "integer", "description": "The most characters to return (default 10000, at most 50000)."},
                    "start_index": {"type": "integer", "description": "Where to start, in characters, for the next part of a long page (default 0)."},
                    "raw": {"type": "boolean", "description": "`true` returns the page unconverted (default `false`)."},
                    "security_risk": SECURITY_RISK.clone()
                },
                "required": ["url"]
            }),
        ),
        spec(
            TASK_TRACKER,
            "Keep a structured list of the steps of a complex task. `plan` replaces the whole list; `view` shows it.",
            json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "enum": ["view", "plan"]},
                    "task_list": {"type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "title": {"type": "string"},
                            "status": {"type": "string", "enum": ["todo", "in_progress", "done"]},
                            "notes": {"type": "string"}
                        },
                        "required": ["id", "title", "status"]
                    }}
                },
                "required": ["command"]
            }),
        ),
    ]
}

/// A tool call the model got right.
#[derive(Debug, Clone)]
pub enum Call {
    Bash(CommandRequest),
    Editor(EditorCall),
    Think {
        thought: String,
    },
    Finish {
        message: String,
        task_completed: Option<String>,
    },
    Tasks {
        command: String,
        task_list: Option<Vec<Value>>,
    },
    /// A user's `write`: the whole file, created or replaced.
    Write {
        path: String,
        content: String,
    },
    /// A user's `browse`: the page at `url`, fetched from inside the sandbox.
    Browse {
        url: String,
    },
    /// The model's `fetch`: part of the page at `url` (http or https), fetched from inside
    /// the sandbox, as Markdown unless `raw`.
    Fetch {
        url: String,
        start_index: usize,
        max_length: usize,
        raw: bool,
    },
    /// A tool of an MCP server, by the name the model knows it by.
    Mcp {
        name: String,
        arguments: Value,
    },
}

/// Reads a tool call; a mistake is described for the model.
pub fn parse(call: &ToolCall) -> Result<Call, String> {
    let known = [
        EXECUTE_BASH,
        STR_REPLACE_EDITOR,
        THINK,
        FINISH,
        TASK_TRACKER,
        FETCH,
    ];
    if !known.contains(&call.name.as_str()) {
        return Err(format!(
            "Tool `{}` is not available. The available tools are: {}.",
            call.name,
            known.join(", ")
        ));
    }
    let arguments = if call.arguments.trim().is_empty() {
        "{}"
    } else {
        call.arguments.as_str()
    };
    let args: Value = serde_json::from_str(arguments).map_err(|e| {
        format!(
            "The arguments of the {} call are not valid JSON ({e}); send them again as one JSON object.",
            call.name
        )
    })?;
    if !args.is_object() {
        return Err(format!(
            "The arguments of the {} call must be a JSON object.",
            call.name
        ));
    }
    let name = call.name.as_str();
    match name {
        EXECUTE_BASH => {
            let command = required_str(name, &args, "command")?;
            let is_input = flag(name, &args, "is_input")?;
            let timeout = match &args["timeout"] {
                Value::Null => None,
                value => {
                    let seconds = value
                        .as_f64()
                        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                        .filter(|s| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| {
                            format!("The `timeout` of {name} must be a positive number of seconds.")
                        })?;
                    Some(Duration::from_secs_f64(seconds).min(MAX_TIMEOUT))
                }
            };
            Ok(Call::Bash(CommandRequest {
                command,
                is_input,
                timeout,
            }))
        }
        STR_REPLACE_EDITOR => {
            required_str(name, &args, "command")?;
            required_str(name, &args, "path")?;
            serde_json::from_value::<EditorCall>(args)
                .map(Call::Editor)
                .map_err(|e| format!("Invalid arguments for {name}: {e}."))
        }
        THINK => Ok(Call::Think {
            thought: required_str(name, &args, "thought")?,
        }),
        FINISH => Ok(Call::Finish {
            message: required_str(name, &args, "message")?,
            task_completed: args["task_completed"].as_str().map(str::to_string),
        }),
        FETCH => {
            let url = required_str(name, &args, "url")?;
            let parsed = url::Url::parse(url.trim())
                .map_err(|e| format!("The `url` of {name} is not a web address ({e})."))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!(
                    "{name} reads http and https addresses, not `{}`: use execute_bash for files.",
                    parsed.scheme()
                ));
            }
            let count = |key: &str, default: usize| -> Result<usize, String> {
                match &args[key] {
                    Value::Null => Ok(default),
                    value => value
                        .as_u64()
                        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                        .map(|n| n as usize)
                        .ok_or_else(|| {
                            format!("The `{key}` of {name} must be a whole number, 0 or more.")
                        }),
                }
            };
            let max_length = count("max_length", FETCH_DEFAULT_LENGTH)?;
            if max_length == 0 {
                return Err(format!("The `max_length` of {name} must be at least 1."));
            }
            Ok(Call::Fetch {
                url: parsed.to_string(),
                start_index: count("start_index", 0)?,
                max_length: max_length.min(FETCH_MAX_LENGTH),
                raw: flag(name, &args, "raw")?,
            })
        }
        _ => {
            let command = required_str(name, &args, "command")?;
            let task_list = match &args["task_list"] {
                Value::Null => None,
                Value::Array(items) => Some(items.clone()),
                _ => return Err(format!("The `task_list` of {name} must be an array.")),
            };
            if command == "plan" && task_list.is_none() {
                return Err(format!(
                    "Missing required argument \"task_list\" in tool call {name} (command plan)."
                ));
            }
            if command != "plan" && command != "view" {
                return Err(format!(
                    "Unknown command `{command}` of {name}: use `view` or `plan`."
                ));
            }
            Ok(Call::Tasks { command, task_list })
        }
    }
}

fn required_str(tool: &str, args: &Value, key: &str) -> Result<String, String> {
    match &args[key] {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Err(format!(
            "Missing required argument \"{key}\" in tool call {tool}."
        )),
        _ => Err(format!(
            "The argument \"{key}\" of {tool} must be a string."
        )),
    }
}

/// OpenHands sends flags as the strings "true"/"false"; booleans are accepted too.
fn flag(tool: &str, args: &Value, key: &str) -> Result<bool, String> {
    match &args[key] {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") || s.is_empty() => Ok(false),
        _ => Err(format!(
            "The argument \"{key}\" of {tool} must be \"true\" or \"false\"."
        )),
    }
}

/// Reads an action the user issued (`run`, `read`, `write`, `browse`, `think`, `finish` with
/// their legacy arguments): the one place where those names meet the tools. A relative path
/// is taken from /workspace. `Err` says what is wrong, for the user.
pub fn user_call(action: &str, args: &Value) -> Result<Call, String> {
    if !args.is_object() && !args.is_null() {
        return Err(format!("the `args` of `{action}` must be a JSON object"));
    }
    let text = |key: &str| -> Result<String, String> {
        match &args[key] {
            Value::String(value) => Ok(value.clone()),
            Value::Null => Err(format!("`{action}` needs `args.{key}`, a string")),
            _ => Err(format!("`args.{key}` of `{action}` must be a string")),
        }
    };
    let path = || -> Result<String, String> {
        let path = text("path")?;
        let path = path.trim();
        if path.is_empty() {
            return Err(format!("`args.path` of `{action}` must not be empty"));
        }
        let absolute = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{WORKSPACE}/{}", path.trim_start_matches("./"))
        };
        crate::sandbox::paths::sandbox_path(&absolute).map_err(|e| e.to_string())
    };
    match action {
        "run" => {
            let command = text("command")?;
            if command.trim().is_empty() {
                return Err("`args.command` of `run` must not be empty".into());
            }
            Ok(Call::Bash(CommandRequest::new(command)))
        }
        "read" => Ok(Call::Editor(EditorCall {
            command: "view".into(),
            path: path()?,
            ..EditorCall::default()
        })),
        "write" => Ok(Call::Write {
            path: path()?,
            content: text("content")?,
        }),
        "browse" => {
            let url = text("url")?;
            let scheme = url::Url::parse(url.trim())
                .map(|u| u.scheme().to_string())
                .map_err(|e| format!("`args.url` of `browse` is not a URL ({e})"))?;
            if !matches!(scheme.as_str(), "http" | "https" | "file") {
                return Err(format!(
                    "`browse` fetches http, https and file URLs, not `{scheme}`"
                ));
            }
            Ok(Call::Browse {
                url: url.trim().to_string(),
            })
        }
        "think" => Ok(Call::Think {
            thought: text("thought")?,
        }),
        "finish" => Ok(Call::Finish {
            message: ["final_thought", "thought", "message"]
                .iter()
                .find_map(|key| args[*key].as_str())
                .unwrap_or_default()
                .to_string(),
            task_completed: args["task_completed"].as_str().map(str::to_string),
        }),
        other => Err(format!(
            "unknown action `{other}`: a user may issue {}",
            USER_ACTIONS.join(", ")
        )),
    }
}

impl Call {
    /// The action event recording the model's call before it runs.
    pub fn action(&self, meta: &ToolCallMeta) -> Draft {
        let (name, args, message) = self.described();
        events::action(name, args, message, meta)
    }

    /// The action event recording a call the user issued, for a worker to run.
    pub fn user_action(&self) -> Draft {
        let (name, args, message) = self.described();
        events::user_action(name, args, message)
    }

    /// Whether running it needs the conversation's sandbox.
    pub fn needs_sandbox(&self) -> bool {
        matches!(
            self,
            Call::Bash(_)
                | Call::Editor(_)
                | Call::Write { .. }
                | Call::Browse { .. }
                | Call::Fetch { .. }
        )
    }

    /// The action's name, arguments and message, in OpenHands' shapes.
    fn described(&self) -> (&'static str, Value, String) {
        match self {
            Call::Bash(request) => (
                "run",
                json!({
                    "command": request.command,
                    "is_input": request.is_input,
                    "thought": "",
                    "blocking": request.timeout.is_some(),
                    "hidden": false,
                    "confirmation_state": "confirmed",
                    "timeout": request.timeout.map(|t| t.as_secs_f64()),
                }),
                format!("Running command: {}", request.command),
            ),
            Call::Editor(call) => {
                let reading = call.command == "view";
                (
                    if reading { "read" } else { "edit" },
                    json!({
                        "path": call.path,
                        "command": call.command,
                        "file_text": call.file_text,
                        "old_str": call.old_str,
                        "new_str": call.new_str,
                        "insert_line": call.insert_line,
                        "view_range": call.view_range,
                        "thought": "",
                        "impl_source": "oh_aci",
                    }),
                    format!(
                        "{} {}",
                        if reading { "Reading" } else { "Editing" },
                        call.path
                    ),
                )
            }
            Call::Think { thought } => ("think", json!({"thought": thought}), thought.clone()),
            Call::Finish {
                message,
                task_completed,
            } => (
                "finish",
                json!({"final_thought": message, "task_completed": task_completed, "outputs": {}}),
                message.clone(),
            ),
            Call::Tasks { command, task_list } => (
                "task_tracking",
                json!({"command": command, "task_list": task_list.clone().unwrap_or_default()}),
                format!("Task list: {command}"),
            ),
            Call::Write { path, content } => (
                "write",
                json!({"path": path, "content": content, "thought": ""}),
                format!("Writing {path}"),
            ),
            Call::Browse { url } => (
                "browse",
                json!({"url": url, "thought": ""}),
                format!("Browsing {url}"),
            ),
            Call::Fetch {
                url,
                start_index,
                max_length,
                raw,
            } => (
                "browse",
                json!({
                    "url": url,
                    "thought": "",
                    "start_index": start_index,
                    "max_length": max_length,
                    "raw": raw,
                }),
                format!("Fetching {url}"),
            ),
            Call::Mcp { name, arguments } => (
                "call_tool_mcp",
                json!({"name": name, "arguments": arguments, "thought": ""}),
                format!("Calling the MCP tool {name}"),
            ),
        }
    }
}

/// A fault of the host, not of the model's call: the run cannot go on as it is.
#[derive(Debug, thiserror::Error)]
pub enum ToolFault {
    /// The sandbox stopped or vanished; a new one may take its place.
    #[error("{0}")]
    SandboxLost(String),
    #[error("{0}")]
    Host(String),
}

/// What a conversation's tools act on.
#[derive(Debug, Default)]
pub struct Toolbox {
    pub sandbox_id: String,
    pub editor: FileEditor,
    pub tasks: Vec<Value>,
    /// The tools of the MCP servers this run connected to.
    pub mcp: std::sync::Arc<McpTools>,
}

impl Toolbox {
    /// Runs `call` (recorded as event `action_id`; `meta` is the model's call, `None` for a
    /// user's action) and returns its observation; `None` for `finish`, which has none.
    /// `sandboxes` may be `None` only for calls that do not need the sandbox.
    pub async fn execute(
        &mut self,
        sandboxes: Option<&dyn SandboxBackend>,
        call: &Call,
        action_id: i64,
        meta: Option<&ToolCallMeta>,
    ) -> Result<Option<Draft>, ToolFault> {
        let backend = || sandboxes.ok_or_else(|| ToolFault::Host("the run has no sandbox".into()));
        let draft = match call {
            Call::Bash(request) => {
                match backend()?.execute(&self.sandbox_id, request, None).await {
                    Ok(outcome) => events::observation(
                        "run",
                        &outcome.output,
                        json!({
                            "command": request.command,
                            "exit_code": outcome.exit_code,
                            "metadata": {
                                "exit_code": outcome.exit_code,
                                "pid": -1,
                                "username": "openhands",
                                "hostname": null,
                                "working_dir": null,
                                "py_interpreter_path": null,
                                "prefix": "",
                                "suffix": "",
                            },
                            "hidden": false,
                        }),
                        format!(
                            "Command `{}` executed with exit code {}.",
                            request.command, outcome.exit_code
                        ),
                        action_id,
                        meta,
                    ),
                    Err(error) => {
                        events::error_observation(&model_error(error)?, Some(action_id), meta)
                    }
                }
            }
            Call::Editor(edit) => {
                let sandboxes = backend()?;
                match self.editor.run(sandboxes, &self.sandbox_id, edit).await {
                    Ok(content) => {
                        let name = if edit.command == "view" {
                            "read"
                        } else {
                            "edit"
                        };
                        // The version saved for undo, so that the history survives a restart.
                        let saved = self.editor.take_saved();
                        events::observation(
                            name,
                            &content,
                            json!({
                                "path": edit.path,
                                "command": edit.command,
                                "impl_source": "oh_aci",
                                "old_content": saved,
                            }),
                            format!(
                                "I {} the file {}.",
                                if name == "read" { "read" } else { "edited" },
                                edit.path
                            ),
                            action_id,
                            meta,
                        )
                    }
                    Err(error) => {
                        // A failure may be the sandbox's rather than the call's.
                        if let Err(fault) = sandboxes.get(&self.sandbox_id).await {
                            return Err(fault_of(fault));
                        }
                        events::error_observation(&error.0, Some(action_id), meta)
                    }
                }
            }
            Call::Think { .. } => events::observation(
                "think",
                "Your thought has been logged.",
                json!({}),
                "Your thought has been logged.".into(),
                action_id,
                meta,
            ),
            Call::Finish { .. } => return Ok(None),
            Call::Tasks { command, task_list } => {
                if let Some(list) = task_list {
                    self.tasks = list.clone();
                }
                let content = render_tasks(&self.tasks, command == "plan");
                events::observation(
                    "task_tracking",
                    &content,
                    json!({"command": command, "task_list": self.tasks}),
                    content.clone(),
                    action_id,
                    meta,
                )
            }
            Call::Write { path, content } => {
                let sandboxes = backend()?;
                match self
                    .editor
                    .overwrite(sandboxes, &self.sandbox_id, path, content)
                    .await
                {
                    Ok(written) => events::observation(
                        "write",
                        &written,
                        json!({"path": path, "old_content": self.editor.take_saved()}),
                        format!("I wrote to the file {path}."),
                        action_id,
                        meta,
                    ),
                    Err(error) => {
                        if let Err(fault) = sandboxes.get(&self.sandbox_id).await {
                            return Err(fault_of(fault));
                        }
                        events::error_observation(&error.0, Some(action_id), meta)
                    }
                }
            }
            Call::Browse { url } => {
                // The user's own fetch may read the sandbox's files too (file://).
                let fetched =
                    fetch_in_sandbox(backend()?, &self.sandbox_id, url, "=http,https,file")
                        .await
                        .map_err(fault_of)?;
                let failed = fetched.exit_code != 0;
                let page: String = if failed {
                    format!(
                        "The page could not be fetched (curl exit code {}): {}",
                        fetched.exit_code,
                        fetched.stderr.trim()
                    )
                } else {
                    fetched.stdout.chars().take(MAX_PAGE_CHARS).collect()
                };
                events::observation(
                    "browse",
                    &page,
                    json!({"url": url, "error": failed, "exit_code": fetched.exit_code}),
                    format!("Visited {url}"),
                    action_id,
                    meta,
                )
            }
            Call::Fetch {
                url,
                start_index,
                max_length,
                raw,
            } => {
                let fetched = fetch_in_sandbox(backend()?, &self.sandbox_id, url, "=http,https")
                    .await
                    .map_err(fault_of)?;
                if fetched.exit_code != 0 {
                    let why = format!(
                        "{url} could not be read (curl exit code {}): {}",
                        fetched.exit_code,
                        fetched.stderr.trim()
                    );
                    let mut draft = events::error_observation(&why, Some(action_id), meta);
                    draft.doc["extras"]["url"] = json!(url);
                    return Ok(Some(draft));
                }
                let page = page_part(&fetched.stdout, *start_index, *max_length, *raw);
                events::observation(
                    "browse",
                    &page,
                    json!({"url": url, "error": false, "exit_code": 0, "start_index": start_index}),
                    format!("Read {url}"),
                    action_id,
                    meta,
                )
            }
            Call::Mcp { name, arguments } => match self.mcp.call(name, arguments).await {
                Ok(result) => events::observation(
                    "mcp",
                    &result,
                    json!({"name": name, "arguments": arguments}),
                    format!("The MCP tool {name} answered."),
                    action_id,
                    meta,
                ),
                Err(why) => {
                    let mut draft = events::error_observation(&why, Some(action_id), meta);
                    draft.doc["extras"]["name"] = json!(name);
                    draft
                }
            },
        };
        Ok(Some(draft))
    }
}

/// `url` fetched with curl inside the sandbox: the page comes from where the agent works, and
/// the worker's own network and credentials are never used. `protocols` is curl's `--proto`
/// list, for the address and every redirect.
async fn fetch_in_sandbox(
    sandboxes: &dyn SandboxBackend,
    sandbox_id: &str,
    url: &str,
    protocols: &str,
) -> Result<crate::sandbox::ExecOutput, SandboxError> {
    let argv: Vec<String> = [
        "curl",
        "--silent",
        "--show-error",
        "--location",
        "--proto",
        protocols,
        "--proto-redir",
        "=http,https",
        "--max-filesize",
        &FETCH_MAX_BYTES.to_string(),
        "--max-time",
        &BROWSE_TIMEOUT_SECS.to_string(),
        // Parsed as a URL before, so it starts with its scheme and is never read as an option.
        url,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    sandboxes.exec(sandbox_id, &argv, WORKSPACE).await
}

/// The part of a fetched page the model asked for: HTML turned into Markdown (scripts, styles
/// and other markup that is not text left out) unless `raw`, then `max_length` characters from
/// `start_index`, with a note saying where the rest starts.
pub fn page_part(page: &str, start_index: usize, max_length: usize, raw: bool) -> String {
    let head: String = page
        .chars()
        .take(1024)
        .collect::<String>()
        .to_ascii_lowercase();
    let html = head.contains("<html") || head.contains("<!doctype html") || head.contains("<body");
    let text = if html && !raw {
        let converter = htmd::HtmlToMarkdown::builder()
            .skip_tags(vec![
                "script", "style", "noscript", "template", "svg", "canvas", "iframe", "head",
            ])
            .build();
        converter.convert(page).unwrap_or_else(|_| page.to_string())
    } else {
        page.to_string()
    };
    let total = text.chars().count();
    if start_index >= total && total > 0 {
        return format!("The page has {total} characters, so nothing starts at {start_index}.");
    }
    let part: String = text.chars().skip(start_index).take(max_length).collect();
    let end = start_index + part.chars().count();
    if end < total {
        format!(
            "{part}\n\n[Cut at character {end} of {total}: call fetch again with start_index={end} to read on.]"
        )
    } else {
        part
    }
}

fn render_tasks(tasks: &[Value], updated: bool) -> String {
    if tasks.is_empty() {
        return "The task list is empty.".to_string();
    }
    let mut text = String::from(if updated {
        "Task list updated:\n"
    } else {
        "Task list:\n"
    });
    for (n, task) in tasks.iter().enumerate() {
        let mark = match task["status"].as_str() {
            Some("done") => "[x]",
            Some("in_progress") => "[~]",
            _ => "[ ]",
        };
        text.push_str(&format!(
            "{}. {mark} {}{}\n",
            n + 1,
            task["title"].as_str().unwrap_or(""),
            task["notes"]
                .as_str()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ));
    }
    text
}

/// A sandbox error the model can act on becomes its message; the others are faults.
fn model_error(error: SandboxError) -> Result<String, ToolFault> {
    match error {
        SandboxError::Busy
        | SandboxError::NoRunningCommand
        | SandboxError::BadPath(_)
        | SandboxError::FileNotFound(_) => Ok(error.to_string()),
        other => Err(fault_of(other)),
    }
}

fn fault_of(error: SandboxError) -> ToolFault {
    match error {
        SandboxError::Gone { .. } | SandboxError::NotFound(_) => {
            ToolFault::SandboxLost(error.to_string())
        }
        other => ToolFault::Host(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch_call(arguments: Value) -> Result<Call, String> {
        parse(&ToolCall {
            id: "call_1".into(),
            name: FETCH.into(),
            arguments: arguments.to_string(),
        })
    }

    #[test]
    fn fetch_takes_web_addresses_only_and_bounds_its_length() {
        match fetch_call(json!({"url": "https://example.com/docs"})) {
            Ok(Call::Fetch {
                url,
                start_index,
                max_length,
                raw,
            }) => {
                assert_eq!(url, "https://example.com/docs");
                assert_eq!(
                    (start_index, max_length, raw),
                    (0, FETCH_DEFAULT_LENGTH, false)
                );
            }
            other => panic!("{other:?}"),
        }
        match fetch_call(
            json!({"url": "http://127.0.0.1:8000/", "max_length": 1_000_000, "raw": true}),
        ) {
            Ok(Call::Fetch {
                max_length, raw, ..
            }) => {
                assert_eq!((max_length, raw), (FETCH_MAX_LENGTH, true));
            }
            other => panic!("{other:?}"),
        }
        for (arguments, said) in [
            (json!({"url": "file:///etc/passwd"}), "not `file`"),
            (json!({"url": "ftp://example.com/"}), "not `ftp`"),
            (json!({"url": "not a url"}), "not a web address"),
            (
                json!({"url": "https://example.com", "max_length": 0}),
                "at least 1",
            ),
            (
                json!({"url": "https://example.com", "start_index": -5}),
                "whole number",
            ),
            (json!({}), "Missing required argument \"url\""),
        ] {
            let error = fetch_call(arguments.clone()).unwrap_err();
            assert!(error.contains(said), "{arguments}: {error}");
        }
    }

    #[test]
    fn pages_are_read_as_markdown_in_parts() {
        let page = "<!DOCTYPE html><html><head><title>T</title><style>p{}</style></head><body>\
            <h1>Release notes</h1><p>Version <strong>2.1</strong> fixes <a href=\"/bugs/7\">bug 7</a>.</p>\
            <script>var token = 'not-for-the-model';</script></body></html>";
        let text = page_part(page, 0, 10_000, false);
        assert!(text.starts_with("# Release notes"), "{text}");
        assert!(
            text.contains("**2.1**") && text.contains("[bug 7](/bugs/7)"),
            "{text}"
        );
        assert!(
            !text.contains("not-for-the-model") && !text.contains("p{}"),
            "{text}"
        );
        assert!(page_part(page, 0, 10_000, true).contains("<h1>"));

        let first = page_part(page, 0, 10, false);
        assert!(first.starts_with("# Release"), "{first}");
        assert!(first.contains("start_index=10"), "{first}");
        let rest = page_part(page, 10, 10_000, false);
        assert!(
            rest.starts_with(" notes") || rest.starts_with("notes"),
            "{rest}"
        );
        assert!(!rest.contains("start_index="), "{rest}");
        assert!(page_part(page, 5_000, 10, false).contains("nothing starts at 5000"));
        // Text that is not HTML stays as it is.
        assert_eq!(
            page_part("plain {\"json\": 1}", 0, 100, false),
            "plain {\"json\": 1}"
        );
    }
}
