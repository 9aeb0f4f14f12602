//! The Redis key space of the Python system, owned here and nowhere else: `token:{token}` (a
//! JSON object of user metadata with `user_id`, with EX) and `token_list:{user_id}` (a LIST of
//! the user's tokens, newest first). [`CacheDao`] exposes operations, never key strings.
//!
//! Depends only on `cache-toolkit`; knows nothing about HTTP, configuration or token format.

mod keys;
mod record;
#[cfg(test)]
mod tests;
mod verify;

use std::time::Duration;

use cache_toolkit::{CacheClient, CacheError, CacheErrorKind, ListEnd, Ttl};

pub use record::{CorruptMetadata, TokenRecord, UserId, UserIdError};
/// One metadata value.
pub use simd_json::OwnedValue as MetadataValue;
/// A metadata object: the JSON object stored under `token:{token}`.
pub use simd_json::owned::Object as MetadataObject;
pub use verify::Membership;

/// What is stored under `token:{token}`.
#[derive(Debug)]
pub enum TokenLookup {
    /// No such key (never issued, expired or logged out).
    Missing,
    /// The key holds something that is not a metadata object with a usable `user_id`.
    Corrupt(CorruptMetadata),
    Found(TokenRecord),
}

/// Typed access to the token key space through a [`CacheClient`] (whose key prefix, if any,
/// applies to both keys).
#[derive(Clone, Debug)]
pub struct CacheDao {
    cache: CacheClient,
    /// `{prefix}token_list:`, built once: the verification script completes it with the user id.
    list_head: std::sync::Arc<str>,
}

impl CacheDao {
    pub fn new(cache: CacheClient) -> Self {
        let list_head = format!("{}{}", cache.key_prefix().as_str(), keys::TOKEN_LIST).into();
        Self { cache, list_head }
    }

    pub fn cache(&self) -> &CacheClient {
        &self.cache
    }

    /// GET `token:{token}` and decode it. A value of the wrong Redis type is reported as
    /// corrupt, like undecodable JSON; only a store that cannot answer is an error.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn read_token(&self, token: &str) -> Result<TokenLookup, CacheError> {
        match self.cache.get_value(&keys::token(token)).await {
            Ok(None) => Ok(TokenLookup::Missing),
            Ok(Some(text)) => Ok(match TokenRecord::decode(text) {
                Ok(record) => TokenLookup::Found(record),
                Err(corrupt) => TokenLookup::Corrupt(corrupt),
            }),
            Err(error) if error.kind() == CacheErrorKind::WrongType => {
                Ok(TokenLookup::Corrupt(CorruptMetadata::NotAString))
            }
            Err(error) => Err(error),
        }
    }

    /// LPOS: whether `token` is in the user's list, without fetching the list.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn is_listed(&self, user_id: &UserId, token: &str) -> Result<bool, CacheError> {
        Ok(self.cache.list_position(&keys::token_list(user_id), token).await?.is_some())
    }

    /// The user's tokens, newest first.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn user_tokens(&self, user_id: &UserId) -> Result<Vec<String>, CacheError> {
        self.cache.get_list(&keys::token_list(user_id)).await
    }

    /// Writes `token:{token}` (EX `ttl`) and LPUSHes the token on the user's list, as the
    /// Python system does; returns the list's new length.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn store_token(&self, token: &str, record: &TokenRecord, ttl: Duration) -> Result<u64, CacheError> {
        self.cache.set_value(&keys::token(token), record.json(), Some(ttl)).await?;
        self.cache.push_to_list(&keys::token_list(record.user_id()), token, ListEnd::Left).await
    }

    /// Makes the user's list live at least `ttl` from now (never shortens it).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn extend_list_ttl(&self, user_id: &UserId, ttl: Duration) -> Result<(), CacheError> {
        let list = keys::token_list(user_id);
        let longer = match self.cache.get_ttl(&list).await? {
            Ttl::Missing => return Ok(()),
            Ttl::NoExpiry => true,
            Ttl::ExpiresIn(left) => left < ttl,
        };
        if longer {
            self.cache.set_expiry(&list, ttl).await?;
        }
        Ok(())
    }

    /// Gives `token:{token}` a fresh TTL (sliding expiry); `false` when it is gone.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn refresh_token(&self, token: &str, ttl: Duration) -> Result<bool, CacheError> {
        self.cache.set_expiry(&keys::token(token), ttl).await
    }

    /// How long `token:{token}` has left.
    pub async fn token_ttl(&self, token: &str) -> Result<Ttl, CacheError> {
        self.cache.get_ttl(&keys::token(token)).await
    }

    /// For each token, in order, whether its `token:{token}` key still exists.
    pub async fn tokens_alive(&self, tokens: &[String]) -> Result<Vec<bool>, CacheError> {
        let token_keys: Vec<String> = tokens.iter().map(|token| keys::token(token)).collect();
        self.cache.existing_keys(&token_keys).await
    }

    /// Keeps the newest `keep` tokens of the user's list and deletes the others' token keys;
    /// returns the tokens it removed.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn keep_newest(&self, user_id: &UserId, keep: u64) -> Result<Vec<String>, CacheError> {
        let list = keys::token_list(user_id);
        let start = i64::try_from(keep).unwrap_or(i64::MAX);
        let oldest = self.cache.list_range(&list, start, -1).await?;
        if oldest.is_empty() {
            return Ok(oldest);
        }
        let token_keys: Vec<String> = oldest.iter().map(|token| keys::token(token)).collect();
        self.cache.batch_delete_keys(&token_keys).await?;
        self.cache.list_trim(&list, 0, start - 1).await?;
        Ok(oldest)
    }

    /// Drops list entries (not token keys): for entries whose token key is already gone.
    pub async fn unlist(&self, user_id: &UserId, tokens: &[String]) -> Result<(), CacheError> {
        let list = keys::token_list(user_id);
        for token in tokens {
            self.cache.list_remove(&list, 0, token).await?;
        }
        Ok(())
    }

    /// The Python system's logout: LREM the token from the list, DEL `token:{token}`.
    /// `true` when the token key existed.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn remove_token(&self, user_id: &UserId, token: &str) -> Result<bool, CacheError> {
        self.cache.list_remove(&keys::token_list(user_id), 0, token).await?;
        self.cache.delete_key(&keys::token(token)).await
    }

    /// Deletes every token key of the user's list and the list itself; returns how many token
    /// keys existed.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn remove_all(&self, user_id: &UserId) -> Result<u64, CacheError> {
        let list = keys::token_list(user_id);
        let tokens = self.cache.get_list(&list).await?;
        let token_keys: Vec<String> = tokens.iter().map(|token| keys::token(token)).collect();
        let removed = self.cache.batch_delete_keys(&token_keys).await?;
        self.cache.delete_key(&list).await?;
        Ok(removed)
    }
}
