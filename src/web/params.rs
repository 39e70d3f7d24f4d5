//! Query strings and JSON bodies read field by field, so that a wrong value is answered with a
//! 400 that names the field.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;

use super::ApiError;

/// A request's query parameters.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let RawQuery(query) = RawQuery::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::BadRequest("the query string cannot be read".into()))?;
        let mut params = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if params.insert(name.to_string(), value.to_string()).is_some() {
                return Err(ApiError::BadRequest(format!("`{name}` is given twice")));
            }
        }
        Ok(Params(params))
    }
}

impl Params {
    /// Fails on parameters outside `known`: a misspelt filter must not silently match all.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|name| !known.contains(&name.as_str())) {
            Some(name) => Err(ApiError::BadRequest(format!(
                "unknown query parameter `{name}`; known: {}",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// An integer from `min` to `max`, or `default` when absent.
    pub fn int(&self, name: &str, min: i64, max: i64, default: i64) -> Result<i64, ApiError> {
        match self.text(name) {
            None => Ok(default),
            Some(value) => value
                .parse::<i64>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`{name}` must be a whole number from {min} to {max}, not `{value}`"
                    ))
                }),
        }
    }

    pub fn optional_int(&self, name: &str, min: i64) -> Result<Option<i64>, ApiError> {
        self.text(name)
            .map(|value| {
                value
                    .parse::<i64>()
                    .ok()
                    .filter(|v| *v >= min)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "`{name}` must be a whole number of at least {min}, not `{value}`"
                        ))
                    })
            })
            .transpose()
    }

    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.text(name) {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "`{name}` must be true or false, not `{other}`"
            ))),
        }
    }

    /// One of `allowed`, if given.
    pub fn choice(&self, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        match self.text(name) {
            None => Ok(None),
            Some(value) if allowed.contains(&value) => Ok(Some(value.to_string())),
            Some(value) => Err(ApiError::BadRequest(format!(
                "`{name}` must be one of {}, not `{value}`",
                allowed.join(", ")
            ))),
        }
    }
}

/// A JSON object body, or a 400 that says what is wrong with it.
pub fn json_object(
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    match body {
        Ok(Json(serde_json::Value::Object(map))) => Ok(map),
        Ok(_) => Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        )),
        Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => Err(
            ApiError::TooLarge("the body is larger than this API accepts (API_MAX_BODY_BYTES)"),
        ),
        Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
    }
}

/// Reads fields of a JSON object body, naming the field that is wrong.
pub struct Fields<'a> {
    map: &'a serde_json::Map<String, serde_json::Value>,
}

impl<'a> Fields<'a> {
    /// Fails on fields outside `known`.
    pub fn new(
        map: &'a serde_json::Map<String, serde_json::Value>,
        known: &[&str],
    ) -> Result<Self, ApiError> {
        if let Some(name) = map.keys().find(|name| !known.contains(&name.as_str())) {
            return Err(ApiError::BadRequest(format!(
                "unknown field `{name}`; known: {}",
                known.join(", ")
            )));
        }
        Ok(Self { map })
    }

    /// A string of at most `max` characters; `None` when absent or null.
    pub fn text(&self, name: &str, max: usize) -> Result<Option<&'a str>, ApiError> {
        match self.map.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(text)) if text.chars().count() <= max => {
                Ok(Some(text.as_str()))
            }
            Some(serde_json::Value::String(_)) => Err(ApiError::BadRequest(format!(
                "`{name}` must be at most {max} characters"
            ))),
            Some(_) => Err(ApiError::BadRequest(format!("`{name}` must be a string"))),
        }
    }

    pub fn required_text(&self, name: &str, max: usize) -> Result<&'a str, ApiError> {
        self.text(name, max)?
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| ApiError::BadRequest(format!("`{name}` is required")))
    }

    pub fn number(&self, name: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
        match self.map.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => value
                .as_f64()
                .filter(|v| (min..=max).contains(v))
                .map(Some)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("`{name}` must be a number from {min} to {max}"))
                }),
        }
    }

    pub fn integer(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        match self.map.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => value
                .as_i64()
                .filter(|v| (min..=max).contains(v))
                .map(Some)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`{name}` must be a whole number from {min} to {max}"
                    ))
                }),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}
