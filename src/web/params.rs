//! What a request carries besides its route: a JSON body ([`Body`]), a query string
//! ([`Query`]) and the path's parameters ([`path_params_are_utf8`]). Bodies and queries are
//! checked against the very schemas the OpenAPI document publishes for their types before
//! they are deserialized, so a wrong value is answered with a 400 naming the field and what
//! it must be, and the document cannot allow what a handler refuses. Range and length limits
//! live in those schemas (`#[schema(...)]`, `#[param(...)]`), not in the handlers.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawQuery, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::openapi::path::ParameterIn;
use utoipa::{IntoParams, PartialSchema};

use super::ApiError;

/// A JSON object body of type `T`, checked against `T`'s schema.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned + PartialSchema,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let value = match Json::<Value>::from_request(request, state).await {
            Ok(Json(value)) => value,
            Err(rejection) => return Err(unreadable(rejection)),
        };
        checked(value).map(Body)
    }
}

/// `value` as a `T`, checked against `T`'s schema first (as a [`Body`] is).
pub fn checked<T: DeserializeOwned + PartialSchema>(value: Value) -> Result<T, ApiError> {
    let schema = serde_json::to_value(T::schema())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("a body schema: {e}")))?;
    check_body(&value, &schema)?;
    // The schema passed, so this fails only where it says less than the type does.
    serde_path_to_error::deserialize(value)
        .map_err(|e| ApiError::BadRequest(format!("`{}`: {}", e.path(), e.inner())))
}

/// Why a body could not be read as JSON at all.
fn unreadable(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge("the body is larger than this API accepts (API_MAX_BODY_BYTES)")
    } else {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// The query parameters of type `T`, checked against `T`'s parameter schemas: unknown or
/// repeated parameters are refused (a misspelt filter must not silently match all), and an
/// empty value counts as absent.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned + IntoParams,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let RawQuery(query) = RawQuery::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::BadRequest("the query string cannot be read".into()))?;
        let known: BTreeMap<String, Value> = T::into_params(|| Some(ParameterIn::Query))
            .into_iter()
            .filter_map(|parameter| {
                let schema = serde_json::to_value(parameter.schema?).ok()?;
                Some((parameter.name, schema))
            })
            .collect();
        let mut given = Map::new();
        let mut seen = Vec::new();
        for (name, text) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if seen.contains(&name) {
                return Err(ApiError::BadRequest(format!("`{name}` is given twice")));
            }
            seen.push(name.clone());
            let Some(schema) = known.get(name.as_ref()) else {
                let names: Vec<&str> = known.keys().map(String::as_str).collect();
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter `{name}`; known: {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            };
            if text.is_empty() {
                continue;
            }
            let value = query_value(&text, schema)
                .filter(|value| fits(value, schema))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`{name}` must be {}, not `{text}`",
                        describe(schema, false)
                    ))
                })?;
            given.insert(name.into_owned(), value);
        }
        serde_json::from_value(Value::Object(given))
            .map(Query)
            .map_err(|e| ApiError::BadRequest(format!("the query does not fit: {e}")))
    }
}

/// The query of a route that takes no parameters: any parameter given is refused.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NoQuery {}

/// A query parameter's text as the JSON value its schema's type asks for.
fn query_value(text: &str, schema: &Value) -> Option<Value> {
    let types = types_of(schema);
    if types.contains(&"integer") {
        text.parse::<i64>().ok().map(Value::from)
    } else if types.contains(&"number") {
        text.parse::<f64>().ok().map(Value::from)
    } else if types.contains(&"boolean") {
        match text {
            "true" | "1" => Some(Value::Bool(true)),
            "false" | "0" => Some(Value::Bool(false)),
            _ => None,
        }
    } else {
        Some(Value::String(text.to_string()))
    }
}

/// Refuses a body that its schema (an object's) does not allow, naming the first field at
/// fault.
fn check_body(body: &Value, schema: &Value) -> Result<(), ApiError> {
    let Value::Object(fields) = body else {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    };
    let empty = Map::new();
    let properties = schema["properties"].as_object().unwrap_or(&empty);
    if schema["additionalProperties"] == Value::Bool(false)
        && let Some(name) = fields.keys().find(|name| !properties.contains_key(*name))
    {
        let known: Vec<&str> = properties.keys().map(String::as_str).collect();
        return Err(ApiError::BadRequest(format!(
            "unknown field `{name}`; known: {}",
            known.join(", ")
        )));
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        if let Some(name) = required.as_str()
            && !fields.contains_key(name)
        {
            return Err(ApiError::BadRequest(format!("`{name}` is required")));
        }
    }
    for (name, property) in properties {
        let Some(value) = fields.get(name) else {
            continue;
        };
        if fits(value, property) {
            continue;
        }
        // A string of the right type but the wrong length says which bound it missed.
        if let Value::String(text) = value
            && fits(value, &without_lengths(property))
        {
            let length = text.chars().count() as u64;
            if let Some(min) = lengths(property).0
                && length < min
            {
                return Err(ApiError::BadRequest(if min == 1 {
                    format!("`{name}` is required and must not be empty")
                } else {
                    format!("`{name}` must be at least {min} characters")
                }));
            }
            if let Some(max) = lengths(property).1 {
                return Err(ApiError::BadRequest(format!(
                    "`{name}` must be at most {max} characters"
                )));
            }
        }
        return Err(ApiError::BadRequest(format!(
            "`{name}` must be {}",
            describe(property, true)
        )));
    }
    if let Some(min) = schema["minProperties"].as_u64()
        && (fields.len() as u64) < min
    {
        return Err(ApiError::BadRequest(format!(
            "give at least {min} of {}",
            properties
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// The JSON types a schema allows (`type` as one name or a list).
fn types_of(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The smallest and largest length a string schema allows, anywhere in its alternatives.
fn lengths(schema: &Value) -> (Option<u64>, Option<u64>) {
    let here = (schema["minLength"].as_u64(), schema["maxLength"].as_u64());
    alternatives(schema)
        .iter()
        .fold(here, |(min, max), branch| {
            let (bmin, bmax) = lengths(branch);
            (min.or(bmin), max.or(bmax))
        })
}

fn without_lengths(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Value::Object(map) = &mut schema {
        map.remove("minLength");
        map.remove("maxLength");
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(branches)) = map.get_mut(key) {
                for branch in branches {
                    *branch = without_lengths(branch);
                }
            }
        }
    }
    schema
}

fn alternatives(schema: &Value) -> Vec<&Value> {
    ["oneOf", "anyOf"]
        .iter()
        .filter_map(|key| schema[*key].as_array())
        .flatten()
        .collect()
}

/// Whether `value` is one `schema` allows: the part of JSON Schema the request types use
/// (type, enum, alternatives, string lengths, number bounds, nested objects).
pub(super) fn fits(value: &Value, schema: &Value) -> bool {
    let branches = alternatives(schema);
    if !branches.is_empty() && !branches.iter().any(|branch| fits(value, branch)) {
        return false;
    }
    if let Some(all) = schema["allOf"].as_array()
        && !all.iter().all(|branch| fits(value, branch))
    {
        return false;
    }
    let types = types_of(schema);
    if !types.is_empty() && !types.iter().any(|t| is_type(value, t)) {
        return false;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return false;
    }
    match value {
        Value::String(text) => {
            let length = text.chars().count() as u64;
            schema["minLength"].as_u64().is_none_or(|min| length >= min)
                && schema["maxLength"].as_u64().is_none_or(|max| length <= max)
        }
        Value::Number(number) => {
            let Some(n) = number.as_f64() else {
                return false;
            };
            schema["minimum"].as_f64().is_none_or(|min| n >= min)
                && schema["maximum"].as_f64().is_none_or(|max| n <= max)
                && schema["exclusiveMinimum"]
                    .as_f64()
                    .is_none_or(|min| n > min)
                && schema["exclusiveMaximum"]
                    .as_f64()
                    .is_none_or(|max| n < max)
        }
        Value::Object(_) if schema["properties"].is_object() => check_body(value, schema).is_ok(),
        _ => true,
    }
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => true,
    }
}

/// What `schema` allows, in words for an error message.
pub(super) fn describe(schema: &Value, with_null: bool) -> String {
    let branches = alternatives(schema);
    if !branches.is_empty() {
        let words: Vec<String> = branches
            .iter()
            .filter(|branch| with_null || types_of(branch) != ["null"])
            .map(|branch| describe(branch, with_null))
            .filter(|words| !words.is_empty())
            .collect();
        // What a value may be first; that it may also be null last.
        let (null, mut words): (Vec<String>, Vec<String>) =
            words.into_iter().partition(|w| w == "null");
        words.extend(null);
        return words.join(" or ");
    }
    if let Some(allowed) = schema["enum"].as_array() {
        let names: Vec<String> = allowed
            .iter()
            .map(|v| v.as_str().map(str::to_string).unwrap_or(v.to_string()))
            .collect();
        return format!("one of {}", names.join(", "));
    }
    let range = |what: &str| match (schema["minimum"].as_f64(), schema["maximum"].as_f64()) {
        (Some(min), Some(max)) => format!("{what} from {min} to {max}"),
        (Some(min), None) => format!("{what} of at least {min}"),
        (None, Some(max)) => format!("{what} of at most {max}"),
        (None, None) => what.to_string(),
    };
    let words: Vec<String> = types_of(schema)
        .into_iter()
        .filter(|t| with_null || *t != "null")
        .map(|t| match t {
            "string" => "a string".to_string(),
            "integer" => range("a whole number"),
            "number" => range("a number"),
            "boolean" => "true or false".to_string(),
            "null" => "null".to_string(),
            "object" => "an object".to_string(),
            "array" => "a list".to_string(),
            other => other.to_string(),
        })
        .collect();
    words.join(" or ")
}

/// Refuses a request whose path parameters are not UTF-8 once percent-decoded, with the
/// JSON error of the rest of the API and the parameter's name. A route layer, so that it
/// covers every route with a parameter, pages and WebSockets included.
pub async fn path_params_are_utf8(request: Request, next: Next) -> Response {
    if let Some(matched) = request.extensions().get::<MatchedPath>() {
        let path = request.uri().path();
        for (template, segment) in matched.as_str().split('/').zip(path.split('/')) {
            let Some(name) = template.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
                continue;
            };
            if std::str::from_utf8(&percent_decoded(segment)).is_err() {
                return ApiError::BadRequest(format!(
                    "the path parameter `{}` is not valid UTF-8",
                    name.trim_start_matches('*')
                ))
                .into_response();
            }
        }
    }
    next.run(request).await
}

/// `%XX` escapes as bytes; anything else, a malformed escape included, as it is.
fn percent_decoded(segment: &str) -> Vec<u8> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_are_decoded_and_malformed_ones_kept() {
        assert_eq!(percent_decoded("a%20b"), b"a b");
        assert_eq!(percent_decoded("%FF%FE"), [0xff, 0xfe]);
        assert_eq!(percent_decoded("100%"), b"100%");
        assert_eq!(percent_decoded("%zz%4"), b"%zz%4");
    }

    #[test]
    fn values_fit_their_schemas_and_misfits_are_described() {
        let name = json!({"type": "string", "minLength": 1, "maxLength": 3});
        assert!(fits(&json!("abc"), &name));
        assert!(!fits(&json!(""), &name));
        assert!(!fits(&json!("abcd"), &name));
        assert!(!fits(&Value::Null, &name));
        let limit = json!({"type": ["integer", "null"], "minimum": 1, "maximum": 100});
        assert!(fits(&json!(5), &limit) && fits(&Value::Null, &limit));
        assert!(!fits(&json!(5.5), &limit) && !fits(&json!(0), &limit));
        assert_eq!(describe(&limit, false), "a whole number from 1 to 100");
        let host =
            json!({"oneOf": [{"type": "null"}, {"type": "string", "enum": ["github", "gitlab"]}]});
        assert!(fits(&json!("gitlab"), &host) && !fits(&json!("x"), &host));
        assert_eq!(describe(&host, true), "one of github, gitlab or null");
    }

    #[test]
    fn a_body_names_the_field_at_fault() {
        let schema = json!({
            "type": "object",
            "required": ["name"],
            "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 5},
                "days": {"type": ["integer", "null"], "minimum": 1},
            },
        });
        let error = |body: Value| match check_body(&body, &schema) {
            Err(ApiError::BadRequest(message)) => message,
            other => format!("{other:?}"),
        };
        assert!(check_body(&json!({"name": "k", "days": null}), &schema).is_ok());
        assert_eq!(error(json!([])), "the body must be a JSON object");
        assert_eq!(error(json!({})), "`name` is required");
        assert_eq!(error(json!({"name": null})), "`name` must be a string");
        assert!(error(json!({"name": ""})).contains("must not be empty"));
        assert_eq!(
            error(json!({"name": "toolong"})),
            "`name` must be at most 5 characters"
        );
        assert!(error(json!({"name": "k", "x": 1})).starts_with("unknown field `x`"));
        assert_eq!(
            error(json!({"name": "k", "days": 0})),
            "`days` must be a whole number of at least 1 or null"
        );
    }
}
