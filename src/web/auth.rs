//! Who is calling: an API key (`Authorization: Bearer`, or `X-Session-API-Key` as OpenHands'
//! clients send it), the bootstrap admin key, or a browser session cookie.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::{ApiError, AppState};
use crate::crypto::key_hash;
use crate::storage::{StorageError, User};

/// The name of the browser session cookie.
pub const SESSION_COOKIE: &str = "openhands_session";
/// What every API key starts with.
pub const API_KEY_PREFIX: &str = "oh_";
/// What a conversation's session key starts with.
pub const SESSION_KEY_PREFIX: &str = "ohs_";
/// What a session key's MAC is bound to, so that no other signed value passes for one.
const SESSION_KEY_PURPOSE: &str = "conversation-session-key";
/// The user the bootstrap admin key (`OPENHANDS_ADMIN_API_KEY`) acts as.
pub const BOOTSTRAP_ADMIN: &str = "admin";

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub User);

impl Caller {
    /// Administrators see every conversation; others only their own.
    pub fn may_see(&self, owner_id: &str) -> bool {
        self.0.is_admin || self.0.id == owner_id
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(token) = presented_key(&parts.headers) {
            if token.starts_with(SESSION_KEY_PREFIX) {
                let path_conversation = conversation_in_path(parts.uri.path());
                return match path_conversation {
                    Some(id) => state.owner_by_session_key(token, id).await,
                    None => Err(ApiError::Unauthorized),
                };
            }
            return match state.user_of_key(token).await? {
                Some(user) => Ok(Caller(user)),
                None => Err(ApiError::Unauthorized),
            };
        }
        if let Some(user_id) = session_cookie(&parts.headers).and_then(|c| state.sessions.verify(c))
        {
            return match state.db.user(&user_id).await {
                Ok(user) => Ok(Caller(user)),
                Err(StorageError::NotFound(_)) => Err(ApiError::Unauthorized),
                Err(error) => Err(error.into()),
            };
        }
        Err(ApiError::Unauthorized)
    }
}

/// An administrator.
#[derive(Debug, Clone)]
pub struct Admin(pub User);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(user) = Caller::from_request_parts(parts, state).await?;
        if user.is_admin {
            Ok(Admin(user))
        } else {
            Err(ApiError::Forbidden("this needs an administrator".into()))
        }
    }
}

/// The key a client presents in its headers, if any.
pub(super) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer
        .or_else(|| {
            headers
                .get("x-session-api-key")
                .and_then(|v| v.to_str().ok())
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

pub(super) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie_value(headers, SESSION_COOKIE)
}

/// The value of the request's cookie `name`, if it has one.
pub(super) fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value)
}

/// A new API key: the prefix and 256 bits from the system's random source.
pub fn new_api_key() -> String {
    format!(
        "{API_KEY_PREFIX}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The conversation a path is about: `/api/conversations/{id}/…` (the agent-server surface
/// a session key opens) or `/sockets/events/{id}`.
pub(super) fn conversation_in_path(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/api/conversations/")
        .or_else(|| path.strip_prefix("/sockets/events/"))?;
    rest.split('/').next().filter(|id| !id.is_empty())
}

impl AppState {
    /// The session key of a conversation: it opens that conversation, as its owner, on the
    /// agent-server surface and its socket, and nothing else. It is derived from the service's
    /// key, so it is never stored; changing OPENHANDS_SECRET_KEY ends every one.
    pub fn session_key_of(&self, conversation_id: &str) -> String {
        format!(
            "{SESSION_KEY_PREFIX}{}",
            self.sessions
                .sign_token(SESSION_KEY_PURPOSE, conversation_id)
        )
    }

    /// Whether `key` is the session key of `conversation_id` (checked in constant time).
    fn is_session_key_of(&self, key: &str, conversation_id: &str) -> bool {
        key.strip_prefix(SESSION_KEY_PREFIX)
            .and_then(|signed| self.sessions.verify_token(SESSION_KEY_PURPOSE, signed))
            .is_some_and(|id| id == conversation_id)
    }

    /// The owner of `conversation_id`, when `key` is its session key.
    pub(super) async fn owner_by_session_key(
        &self,
        key: &str,
        conversation_id: &str,
    ) -> Result<Caller, ApiError> {
        if !self.is_session_key_of(key, conversation_id) {
            return Err(ApiError::Unauthorized);
        }
        let conversation = match self.db.conversation(conversation_id).await {
            Ok(conversation) => conversation,
            // The key was right: the conversation is gone.
            Err(StorageError::NotFound(_)) => return Err(ApiError::NotFound("conversation")),
            Err(error) => return Err(error.into()),
        };
        let user = self.db.user(&conversation.owner_id).await?;
        self.rate_limits.remember_key_owner(key_hash(key), &user.id);
        Ok(Caller(user))
    }

    /// The user a presented key stands for: the bootstrap admin key, or a stored API key.
    pub async fn user_of_key(&self, key: &str) -> Result<Option<User>, ApiError> {
        let user = if let Some(admin_key) = &self.admin_api_key
            && admin_key.matches(key)
        {
            Some(self.bootstrap_admin().await?)
        } else if key.starts_with(API_KEY_PREFIX) {
            self.db.user_of_api_key(&key_hash(key)).await?
        } else {
            None
        };
        if let Some(user) = &user {
            self.rate_limits.remember_key_owner(key_hash(key), &user.id);
        }
        Ok(user)
    }

    /// The administrator the bootstrap key acts as, made on its first use.
    async fn bootstrap_admin(&self) -> Result<User, ApiError> {
        if let Some(user) = self.db.user_by_login(BOOTSTRAP_ADMIN).await? {
            return Ok(user);
        }
        match self.db.create_user(BOOTSTRAP_ADMIN, None, true).await {
            Ok(user) => Ok(user),
            // Made meanwhile by another request.
            Err(StorageError::Conflict(_)) => self
                .db
                .user_by_login(BOOTSTRAP_ADMIN)
                .await?
                .ok_or(ApiError::Unauthorized),
            Err(error) => Err(error.into()),
        }
    }
}
