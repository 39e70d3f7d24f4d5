//! One-time links that let a person link their own provider account (a Slack member, a Jira or
//! Linear user) to their user of ours. Only a hash of each token is stored; a token links once,
//! and only before it expires.

use serde::Serialize;

use super::{Db, Result, Tx, now_millis, on_backend, text};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LinkToken {
    pub provider: String,
    /// The Slack team id, Jira site or Linear organization id.
    pub workspace: String,
    pub external_id: String,
    /// The account's name as the provider showed it, for the page that asks to confirm.
    pub account_name: String,
    /// The request refused for want of the link: it runs once the account is linked.
    pub delivery_id: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by: Option<String>,
}

/// What a new link token is for.
#[derive(Debug, Clone)]
pub struct NewLinkToken<'a> {
    pub provider: &'a str,
    pub workspace: &'a str,
    pub external_id: &'a str,
    pub account_name: &'a str,
    pub delivery_id: Option<i64>,
    /// How long it may be used, in milliseconds.
    pub lifetime_ms: i64,
}

/// `SELECT … FROM link_tokens WHERE token_hash = $1`, followed by the rest of the statement.
macro_rules! select_token {
    ($rest:literal) => {
        concat!(
            "SELECT provider, workspace, external_id, account_name, delivery_id, created_at, \
             expires_at, used_at, used_by FROM link_tokens WHERE token_hash = $1",
            $rest
        )
    };
}

impl Tx {
    pub async fn create_link_token(
        &mut self,
        token_hash: &str,
        new: &NewLinkToken<'_>,
    ) -> Result<()> {
        let now = now_millis();
        on_backend!(self, tx => sqlx::query(
            "INSERT INTO link_tokens (token_hash, provider, workspace, external_id, account_name, \
             delivery_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(token_hash)
        .bind(text(new.provider))
        .bind(text(new.workspace))
        .bind(text(new.external_id))
        .bind(text(new.account_name))
        .bind(new.delivery_id)
        .bind(now)
        .bind(now.saturating_add(new.lifetime_ms))
        .execute(&mut **tx)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The token with this hash, locked for this transaction on PostgreSQL.
    pub async fn link_token(&mut self, token_hash: &str) -> Result<Option<LinkToken>> {
        Ok(match self {
            Tx::Postgres(tx) => {
                sqlx::query_as::<_, LinkToken>(select_token!(" FOR UPDATE"))
                    .bind(token_hash)
                    .fetch_optional(&mut **tx)
                    .await?
            }
            Tx::Sqlite(tx) => {
                sqlx::query_as::<_, LinkToken>(select_token!(""))
                    .bind(token_hash)
                    .fetch_optional(&mut **tx)
                    .await?
            }
        })
    }

    /// Marks every usable token of the account as used by `user_id` (the account is linked
    /// now); returns the requests they held, to run them.
    pub async fn use_link_tokens_of(
        &mut self,
        provider: &str,
        workspace: &str,
        external_id: &str,
        user_id: &str,
    ) -> Result<Vec<i64>> {
        let now = now_millis();
        let held: Vec<Option<i64>> = on_backend!(self, tx => sqlx::query_scalar(
            "UPDATE link_tokens SET used_at = $4, used_by = $5 WHERE provider = $1 AND workspace = $2 \
             AND external_id = $3 AND used_at IS NULL AND expires_at > $4 RETURNING delivery_id",
        )
        .bind(text(provider))
        .bind(text(workspace))
        .bind(text(external_id))
        .bind(now)
        .bind(user_id)
        .fetch_all(&mut **tx)
        .await?);
        let mut held: Vec<i64> = held.into_iter().flatten().collect();
        held.sort_unstable();
        held.dedup();
        Ok(held)
    }
}

impl Db {
    pub async fn link_token(&self, token_hash: &str) -> Result<Option<LinkToken>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, LinkToken>(select_token!(""))
            .bind(token_hash)
            .fetch_optional(pool)
            .await?),
        )
    }
}
