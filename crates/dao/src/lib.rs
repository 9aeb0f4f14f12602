//! The Redis key space of the Python system, owned here and nowhere else: `token:{token}` (a
//! JSON object of user metadata with `user_id`, with EX) and `token_list:{user_id}` (a LIST of
//! the user's tokens, newest first). [`CacheDao`] exposes operations, never key strings.
//! With [`TokenStorage::Hashed`] the token is replaced by `sha256:{hex}` in both places
//! (`storage.rs`); `migrate.rs` moves plain tokens to that form.
//!
//! The operations: read a token (GET, decoded lazily) and its list membership (LPOS); store
//! (SET EX + LPUSH; with a session cap, push and trim are one atomic capped push, and the
//! evicted entries' token keys are deleted next); extend the list's TTL (never shortening it);
//! keep the newest N entries (N ≥ 1, the same atomic trim); unlist entries whose token key is
//! gone; log out (the Python system's LREM + DEL); remove all. [`CacheDao::revoking`] and
//! [`CacheDao::issuing`] wrap writes in a bounded wait for the master's replicas.
//!
//! Depends only on `cache-toolkit`; knows nothing about HTTP, configuration or token format.

mod keys;
mod known_users;
mod migrate;
mod record;
mod storage;
#[cfg(test)]
mod tests;
mod verify;

use std::{num::NonZeroU64, time::Duration};

use cache_toolkit::{CacheClient, CacheError, CacheErrorKind, ListEnd, ReplicaWait, Replication, Ttl};

pub use record::{CorruptMetadata, TokenRecord, UserId, UserIdError};
/// One metadata value.
pub use simd_json::OwnedValue as MetadataValue;
/// A metadata object: the JSON object stored under `token:{token}`.
pub use simd_json::owned::Object as MetadataObject;
pub use storage::{StoredEntry, TokenStorage};
pub use verify::Membership;

/// What [`CacheDao::store_token`] left in the user's list.
#[derive(Debug)]
pub struct StoredToken {
    /// The list's length after the write (at most the cap, when there is one).
    pub listed: u64,
    /// The oldest entries the cap evicted, newest first; their token keys are deleted.
    pub evicted: Vec<StoredEntry>,
}

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
///
/// Methods taking a presented `token` look it up under the forms [`TokenStorage`] names;
/// methods taking a [`StoredEntry`] (read from a list) act on that entry's own key.
#[derive(Clone, Debug)]
pub struct CacheDao {
    cache: CacheClient,
    storage: TokenStorage,
    /// `{prefix}token_list:`, built once: the verification script completes it with the user id.
    list_head: std::sync::Arc<str>,
    /// Stored entry → its user, for entries seen verified (`known_users.rs`).
    known_users: std::sync::Arc<known_users::KnownUsers>,
    /// How [`Self::revoking`] waits for replicas (not at all by default).
    revocation_wait: std::sync::Arc<ReplicaWait>,
    /// How [`Self::issuing`] waits for replicas (not at all by default).
    issue_wait: std::sync::Arc<ReplicaWait>,
}

/// How many entries' users [`CacheDao`] remembers (about 100 bytes each).
const KNOWN_USERS: usize = 100_000;

impl CacheDao {
    /// Loads the verification script (and, while migrating, the move script) ahead of the
    /// first request (optional).
    pub async fn prepare(&self) -> Result<(), CacheError> {
        self.cache.load_script(&verify::VERIFY).await?;
        if self.storage == TokenStorage::Migrate {
            self.cache.load_script(&migrate::MOVE_TO_HASHED).await?;
        }
        Ok(())
    }

    /// The token's record and whether it is in its user's list: one round trip on Redis
    /// standalone and sentinel, two elsewhere. While migrating, a token found only in plain
    /// form is moved to the hashed form (`migrate.rs`); `verify.rs` has the one-form lookup.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn membership(&self, token: &str) -> Result<Membership, CacheError> {
        match self.storage {
            TokenStorage::Plain => self.entry_membership(&StoredEntry::plain(token)).await,
            TokenStorage::Hashed => self.entry_membership(&StoredEntry::hashed(token)).await,
            TokenStorage::Migrate => Box::pin(self.membership_migrating(token)).await,
        }
    }

    /// Plain storage: the Python system's key space.
    pub fn new(cache: CacheClient) -> Self {
        Self::with_storage(cache, TokenStorage::Plain)
    }

    pub fn with_storage(cache: CacheClient, storage: TokenStorage) -> Self {
        let list_head = format!("{}{}", cache.key_prefix().as_str(), keys::TOKEN_LIST).into();
        let known_users = std::sync::Arc::new(known_users::KnownUsers::new(KNOWN_USERS));
        let revocation_wait = std::sync::Arc::new(ReplicaWait::new(Duration::ZERO));
        let issue_wait = std::sync::Arc::new(ReplicaWait::new(Duration::ZERO));
        Self { cache, storage, list_head, known_users, revocation_wait, issue_wait }
    }

    /// The same DAO whose [`Self::revoking`] waits up to `wait` for the master's replicas to
    /// acknowledge a revocation (zero: no wait).
    pub fn with_revocation_wait(mut self, wait: Duration) -> Self {
        self.revocation_wait = std::sync::Arc::new(ReplicaWait::new(wait));
        self
    }

    /// The same DAO whose [`Self::issuing`] waits up to `wait` for the master's replicas to
    /// acknowledge a new token (zero: no wait).
    pub fn with_issue_wait(mut self, wait: Duration) -> Self {
        self.issue_wait = std::sync::Arc::new(ReplicaWait::new(wait));
        self
    }

    /// [`Self::revoking`] for the writes that issue a token, with the issue wait: an issued
    /// token the replicas acknowledged survives a failover.
    pub fn issuing<'a, T: 'a>(
        &'a self,
        issue: impl Future<Output = Result<T, CacheError>> + 'a,
    ) -> impl Future<Output = Result<(T, Replication), CacheError>> + 'a {
        self.issue_wait.run(&self.cache, Box::pin(issue))
    }

    /// Runs a revocation (reads and writes through this DAO) so that it survives a failover:
    /// once its writes have answered, a bounded WAIT for the master's replicas (see
    /// `cache_toolkit::ReplicaWait`). The revocation's own error is returned as it is; the
    /// [`Replication`] says whether the replicas confirmed it.
    pub fn revoking<'a, T: 'a>(
        &'a self,
        revocation: impl Future<Output = Result<T, CacheError>> + 'a,
    ) -> impl Future<Output = Result<(T, Replication), CacheError>> + 'a {
        // Boxed: a revocation's future is large (fred's are), and revocations are rare.
        self.revocation_wait.run(&self.cache, Box::pin(revocation))
    }

    pub fn cache(&self) -> &CacheClient {
        &self.cache
    }

    pub fn storage(&self) -> TokenStorage {
        self.storage
    }

    /// The token's record: the first of its forms that exists (hashed before plain when
    /// migrating). A value of the wrong Redis type is reported as corrupt, like undecodable
    /// JSON; only a store that cannot answer is an error.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn read_token(&self, token: &str) -> Result<TokenLookup, CacheError> {
        for entry in self.storage.lookup_entries(token) {
            match self.read_entry(&entry).await? {
                TokenLookup::Missing => {}
                found => return Ok(found),
            }
        }
        Ok(TokenLookup::Missing)
    }

    /// GET `token:{entry}` and decode it.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn read_entry(&self, entry: &StoredEntry) -> Result<TokenLookup, CacheError> {
        match self.cache.get_value(&keys::token(entry.as_str())).await {
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

    /// The user's list entries, newest first.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn user_entries(&self, user_id: &UserId) -> Result<Vec<StoredEntry>, CacheError> {
        Ok(self.cache.get_list(&keys::token_list(user_id)).await?.into_iter().map(StoredEntry::from_stored).collect())
    }

    /// Writes `token:{entry}` (EX `ttl`) and LPUSHes the entry on the user's list, as the
    /// Python system does, in the form [`TokenStorage`] issues.
    ///
    /// With a `cap`, the push and the trim of the list to its newest `cap` entries are one
    /// atomic step (a script on the list key), so the list never holds more than `cap`
    /// entries after it and two concurrent issuers cannot both keep, or both miss, an entry;
    /// the token keys of the evicted entries are deleted next (they live in other hash slots).
    /// An evicted session is invalid from the atomic step on: it is no longer listed.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn store_token(
        &self,
        token: &str,
        record: &TokenRecord,
        ttl: Duration,
        cap: Option<NonZeroU64>,
    ) -> Result<StoredToken, CacheError> {
        let entry = self.storage.issue_entry(token);
        self.cache.set_value(&keys::token(entry.as_str()), record.json(), Some(ttl)).await?;
        let list = keys::token_list(record.user_id());
        let Some(cap) = cap else {
            let listed = self.cache.push_to_list(&list, entry.as_str(), ListEnd::Left).await?;
            return Ok(StoredToken { listed, evicted: Vec::new() });
        };
        let pushed = self.cache.push_to_capped_list(&list, &[entry.as_str()], cap.get()).await?;
        Ok(StoredToken { listed: pushed.len, evicted: self.delete_evicted(pushed.evicted).await? })
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

    /// Gives the token's key a fresh TTL (sliding expiry); `false` when it is gone.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn refresh_token(&self, token: &str, ttl: Duration) -> Result<bool, CacheError> {
        for entry in self.storage.lookup_entries(token) {
            if self.cache.set_expiry(&keys::token(entry.as_str()), ttl).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// How long the token's key has left (the first of its forms that exists).
    pub async fn token_ttl(&self, token: &str) -> Result<Ttl, CacheError> {
        for entry in self.storage.lookup_entries(token) {
            match self.entry_ttl(&entry).await? {
                Ttl::Missing => {}
                found => return Ok(found),
            }
        }
        Ok(Ttl::Missing)
    }

    /// How long `token:{entry}` has left.
    pub async fn entry_ttl(&self, entry: &StoredEntry) -> Result<Ttl, CacheError> {
        self.cache.get_ttl(&keys::token(entry.as_str())).await
    }

    /// For each entry, in order, whether its `token:{entry}` key still exists.
    pub async fn entries_alive(&self, entries: &[StoredEntry]) -> Result<Vec<bool>, CacheError> {
        let token_keys: Vec<String> = entries.iter().map(|entry| keys::token(entry.as_str())).collect();
        self.cache.existing_keys(&token_keys).await
    }

    /// Keeps the newest `keep` entries of the user's list and deletes the others' token keys;
    /// returns the entries it removed. The trim and the list of what it removed come from one
    /// atomic step, so concurrent callers (and issuers) each delete what they removed and
    /// nothing else. `keep` is at least 1: keeping no session is [`Self::remove_all`], and a
    /// cap of 0 in the settings means "no cap", which never calls this.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn keep_newest(&self, user_id: &UserId, keep: NonZeroU64) -> Result<Vec<StoredEntry>, CacheError> {
        let trimmed = self.cache.push_to_capped_list::<&str>(&keys::token_list(user_id), &[], keep.get()).await?;
        self.delete_evicted(trimmed.evicted).await
    }

    /// Deletes the token keys of entries already taken off their list.
    async fn delete_evicted(&self, evicted: Vec<String>) -> Result<Vec<StoredEntry>, CacheError> {
        let token_keys: Vec<String> = evicted.iter().map(|entry| keys::token(entry)).collect();
        self.cache.batch_delete_keys(&token_keys).await?;
        Ok(evicted.into_iter().map(StoredEntry::from_stored).collect())
    }

    /// Drops list entries (not token keys): for entries whose token key is already gone.
    pub async fn unlist(&self, user_id: &UserId, entries: &[StoredEntry]) -> Result<(), CacheError> {
        let list = keys::token_list(user_id);
        for entry in entries {
            self.cache.list_remove(&list, 0, entry.as_str()).await?;
        }
        Ok(())
    }

    /// Logs a token out: the Python system's LREM + DEL, for every form the token is looked
    /// up under (both while migrating). `true` when a token key existed.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn remove_token(&self, user_id: &UserId, token: &str) -> Result<bool, CacheError> {
        let mut existed = false;
        for entry in self.storage.lookup_entries(token) {
            existed |= self.remove_entry(user_id, &entry).await?;
        }
        Ok(existed)
    }

    /// LREM the entry from the user's list, then DEL `token:{entry}`; `true` when the key existed.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn remove_entry(&self, user_id: &UserId, entry: &StoredEntry) -> Result<bool, CacheError> {
        self.cache.list_remove(&keys::token_list(user_id), 0, entry.as_str()).await?;
        self.cache.delete_key(&keys::token(entry.as_str())).await
    }

    /// Deletes every token key of the user's list and the list itself; returns how many token
    /// keys existed.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn remove_all(&self, user_id: &UserId) -> Result<u64, CacheError> {
        let list = keys::token_list(user_id);
        let entries = self.cache.get_list(&list).await?;
        let token_keys: Vec<String> = entries.iter().map(|entry| keys::token(entry)).collect();
        let removed = self.cache.batch_delete_keys(&token_keys).await?;
        self.cache.delete_key(&list).await?;
        Ok(removed)
    }
}
