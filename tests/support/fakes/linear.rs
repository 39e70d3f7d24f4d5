//! Linear's GraphQL API with an API key: the `commentCreate` and `commentUpdate` mutations and
//! the comments of an issue (`issue(id: …) { comments { nodes { … } } }`). Arguments may be
//! literals or variables; answers carry every field of a comment whatever the selection asks.

use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use super::{LINEAR_API_KEY, LINEAR_PROFILE_URL, LINEAR_USER_ID, Shared, Store};

/// A comment posted on an issue.
#[derive(Clone, Debug)]
pub struct LinearComment {
    pub id: String,
    pub issue_id: String,
    pub body: String,
    pub created_at: String,
    pub updated_at: String,
    pub edited_at: Option<String>,
}

pub(super) fn routes(router: Router<Store>) -> Router<Store> {
    router.route("/linear/graphql", post(graphql))
}

/// Whether a GraphQL request body is a mutation.
pub(super) fn is_mutation(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| b.get("query").and_then(Value::as_str).map(str::to_string))
        .is_some_and(|query| {
            let mut reader = Reader::new(&query);
            reader.skip_ignored();
            reader.name().as_deref() == Some("mutation")
        })
}

fn errors(status: StatusCode, message: &str, code: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{
            "message": message,
            "extensions": {"code": code, "userPresentableMessage": message}
        }]})),
    )
        .into_response()
}

fn now_millis() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn comment_json(comment: &LinearComment) -> Value {
    let short: String = comment.id.chars().take(8).collect();
    json!({
        "id": comment.id,
        "body": comment.body,
        "url": format!("https://linear.app/acme/issue/{}#comment-{short}", comment.issue_id),
        "createdAt": comment.created_at,
        "updatedAt": comment.updated_at,
        "editedAt": comment.edited_at,
        "issue": {"id": comment.issue_id},
        "user": {"id": LINEAR_USER_ID, "name": "OpenHands", "displayName": "openhands"}
    })
}

async fn graphql(State(state): Shared, headers: HeaderMap, body: String) -> Response {
    let key = headers.get("authorization").and_then(|v| v.to_str().ok());
    if key != Some(LINEAR_API_KEY) {
        return errors(
            StatusCode::UNAUTHORIZED,
            "Authentication required, not authenticated",
            "AUTHENTICATION_ERROR",
        );
    }
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return errors(
            StatusCode::BAD_REQUEST,
            "Body is not JSON",
            "GRAPHQL_PARSE_FAILED",
        );
    };
    let Some(query) = request.get("query").and_then(Value::as_str) else {
        return errors(
            StatusCode::BAD_REQUEST,
            "No query given",
            "GRAPHQL_PARSE_FAILED",
        );
    };
    let variables = request.get("variables").cloned().unwrap_or(json!({}));
    let mut state = state.lock().unwrap();
    if query.contains("viewer") {
        return Json(json!({"data": {"viewer": {
            "id": LINEAR_USER_ID,
            "url": LINEAR_PROFILE_URL
        }}}))
        .into_response();
    }
    if let Some(args) = field_arguments(query, "commentCreate", &variables) {
        let input = args.get("input").cloned().unwrap_or_default();
        let field = |name: &str| {
            input
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        if let Some(id) = field("id") {
            if uuid::Uuid::parse_str(&id).is_err() {
                return invalid_input("id must be a UUID");
            }
            // The same id again is the same comment.
            if let Some(existing) = state.linear_comments.iter().find(|c| c.id == id) {
                return created("commentCreate", existing);
            }
        }
        let (Some(issue_id), Some(text)) = (field("issueId"), field("body")) else {
            return invalid_input("issueId and body are required");
        };
        let at = now_millis();
        let comment = LinearComment {
            id: field("id").unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            issue_id,
            body: text,
            created_at: at.clone(),
            updated_at: at,
            edited_at: None,
        };
        state.linear_comments.push(comment.clone());
        return created("commentCreate", &comment);
    }
    if let Some(args) = field_arguments(query, "commentUpdate", &variables) {
        let id = args.get("id").and_then(Value::as_str).unwrap_or_default();
        let text = args
            .get("input")
            .and_then(|i| i.get("body"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(text) = text else {
            return invalid_input("body is required");
        };
        let Some(comment) = state.linear_comments.iter_mut().find(|c| c.id == id) else {
            return invalid_input("Entity not found: Comment");
        };
        let at = now_millis();
        comment.body = text;
        comment.updated_at = at.clone();
        comment.edited_at = Some(at);
        let comment = comment.clone();
        return created("commentUpdate", &comment);
    }
    if let Some(args) = field_arguments(query, "issue", &variables)
        && query.contains("comments")
    {
        let id = args
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let nodes: Vec<Value> = state
            .linear_comments
            .iter()
            .filter(|c| c.issue_id == id)
            .map(comment_json)
            .collect();
        return Json(json!({"data": {"issue": {
            "id": id,
            "comments": {
                "nodes": nodes,
                "pageInfo": {"hasNextPage": false, "endCursor": null}
            }
        }}}))
        .into_response();
    }
    errors(
        StatusCode::BAD_REQUEST,
        "This fake of Linear answers commentCreate, commentUpdate and issue comments only",
        "GRAPHQL_VALIDATION_FAILED",
    )
}

fn created(mutation: &str, comment: &LinearComment) -> Response {
    let mut data = Map::new();
    data.insert(
        mutation.to_string(),
        json!({"success": true, "lastSyncId": 1, "comment": comment_json(comment)}),
    );
    Json(json!({"data": data})).into_response()
}

/// GraphQL answers invalid input with HTTP 200 and `errors`.
fn invalid_input(message: &str) -> Response {
    Json(json!({
        "data": null,
        "errors": [{
            "message": "Argument Validation Error",
            "extensions": {"code": "INVALID_INPUT", "userPresentableMessage": message}
        }]
    }))
    .into_response()
}

/// The arguments of the first `field(…)` in the operation's selection, variables resolved.
fn field_arguments(query: &str, field: &str, variables: &Value) -> Option<Map<String, Value>> {
    let mut reader = Reader::new(query);
    reader.skip_to_selection()?;
    while reader.pos < reader.chars.len() {
        reader.skip_ignored();
        match reader.peek()? {
            '"' => {
                reader.string()?;
            }
            c if c == '_' || c.is_ascii_alphabetic() => {
                let name = reader.name()?;
                reader.skip_ignored();
                if name == field && reader.peek() == Some('(') {
                    return reader.arguments(variables);
                }
            }
            _ => reader.pos += 1,
        }
    }
    None
}

/// Reads GraphQL text: names, values and argument lists.
struct Reader {
    chars: Vec<char>,
    pos: usize,
}

impl Reader {
    fn new(text: &str) -> Self {
        Reader {
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Skips whitespace, commas and comments.
    fn skip_ignored(&mut self) {
        while let Some(c) = self.peek() {
            if c == '#' {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.pos += 1;
                }
            } else if c.is_whitespace() || c == ',' || c == '\u{feff}' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Moves past the operation's header (name, variable definitions) into its selection.
    fn skip_to_selection(&mut self) -> Option<()> {
        let mut depth = 0;
        loop {
            match self.peek()? {
                '(' => depth += 1,
                ')' => depth -= 1,
                '"' => {
                    self.string()?;
                    continue;
                }
                '{' if depth == 0 => {
                    self.pos += 1;
                    return Some(());
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    fn name(&mut self) -> Option<String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c == '_' || c.is_ascii_alphanumeric())
        {
            self.pos += 1;
        }
        (self.pos > start).then(|| self.chars[start..self.pos].iter().collect())
    }

    fn expect(&mut self, c: char) -> Option<()> {
        self.skip_ignored();
        (self.peek()? == c).then(|| self.pos += 1)
    }

    /// `(name: value …)`.
    fn arguments(&mut self, variables: &Value) -> Option<Map<String, Value>> {
        self.expect('(')?;
        self.fields(')', variables)
    }

    /// `name: value` pairs up to `end`.
    fn fields(&mut self, end: char, variables: &Value) -> Option<Map<String, Value>> {
        let mut fields = Map::new();
        loop {
            self.skip_ignored();
            if self.peek()? == end {
                self.pos += 1;
                return Some(fields);
            }
            let name = self.name()?;
            self.expect(':')?;
            let value = self.value(variables)?;
            fields.insert(name, value);
        }
    }

    fn value(&mut self, variables: &Value) -> Option<Value> {
        self.skip_ignored();
        match self.peek()? {
            '$' => {
                self.pos += 1;
                let name = self.name()?;
                Some(variables.get(&name).cloned().unwrap_or(Value::Null))
            }
            '"' => self.string().map(Value::String),
            '{' => {
                self.pos += 1;
                self.fields('}', variables).map(Value::Object)
            }
            '[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ignored();
                    if self.peek()? == ']' {
                        self.pos += 1;
                        return Some(Value::Array(items));
                    }
                    items.push(self.value(variables)?);
                }
            }
            c if c == '-' || c.is_ascii_digit() => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || "-+.eE".contains(c))
                {
                    self.pos += 1;
                }
                let number: String = self.chars[start..self.pos].iter().collect();
                serde_json::from_str(&number).ok()
            }
            _ => match self.name()?.as_str() {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                "null" => Some(Value::Null),
                other => Some(Value::String(other.to_string())),
            },
        }
    }

    /// A `"…"` string (escapes as in JSON) or a `"""…"""` block string.
    fn string(&mut self) -> Option<String> {
        let rest: String = self.chars[self.pos..].iter().take(3).collect();
        if rest == "\"\"\"" {
            self.pos += 3;
            let start = self.pos;
            while self.pos + 3 <= self.chars.len() {
                let end: String = self.chars[self.pos..self.pos + 3].iter().collect();
                if end == "\"\"\"" && self.chars[self.pos - 1] != '\\' {
                    let text: String = self.chars[start..self.pos].iter().collect();
                    self.pos += 3;
                    return Some(text.trim().to_string());
                }
                self.pos += 1;
            }
            return None;
        }
        let start = self.pos;
        self.pos += 1;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '\\' => self.pos += 1,
                '"' => {
                    let literal: String = self.chars[start..self.pos].iter().collect();
                    return serde_json::from_str(&literal).ok();
                }
                _ => {}
            }
        }
        None
    }
}
