//! Distributed locks: SET NX PX with a unique identifier, released by an atomic
//! compare-and-delete and extended by an atomic compare-and-pexpire (Lua on Redis, EVALSHA
//! with a reload on NOSCRIPT), and [`LockGuard`], which releases when asked and says whether
//! the lock was still held.

use std::time::Duration;

use tokio::time::Instant;

use crate::{CacheClient, CacheError};

/// What [`LockGuard::release`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockRelease {
    /// The lock was still ours and is now free.
    Released,
    /// The lock had expired (and may belong to someone else now): the work done under it was
    /// not protected for its whole duration.
    Lost,
}

/// A held lock. Call [`LockGuard::release`]; a guard dropped without it releases in the
/// background when a runtime is available, and the lock's TTL frees it otherwise.
#[derive(Debug)]
#[must_use = "a lock is released by calling release(); dropping the guard releases it in the background"]
pub struct LockGuard {
    client: CacheClient,
    key: String,
    identifier: String,
    released: bool,
}

impl LockGuard {
    /// The lock's key (without the client's prefix).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The unique value stored in the lock key: what proves ownership.
    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    /// Releases the lock if it is still ours.
    pub async fn release(mut self) -> Result<LockRelease, CacheError> {
        self.released = true;
        let released = self.client.release_lock(&self.key, &self.identifier).await?;
        Ok(if released { LockRelease::Released } else { LockRelease::Lost })
    }

    /// Gives the lock a new TTL from now, if it is still ours; `false` when it was lost.
    pub async fn extend(&self, ttl: Duration) -> Result<bool, CacheError> {
        self.client.extend_lock(&self.key, &self.identifier, ttl).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let client = self.client.clone();
        let key = std::mem::take(&mut self.key);
        let identifier = std::mem::take(&mut self.identifier);
        runtime.spawn(async move {
            if let Err(error) = client.release_lock(&key, &identifier).await {
                tracing::warn!(%error, "releasing a dropped lock guard failed; its TTL will free it");
            }
        });
    }
}

impl CacheClient {
    /// Tries to take the lock at `key` for `expire`, retrying every `retry_interval` until
    /// `timeout` has passed. `None` when someone else held it the whole time.
    pub async fn acquire_lock(
        &self,
        key: &str,
        expire: Duration,
        timeout: Duration,
        retry_interval: Duration,
    ) -> Result<Option<LockGuard>, CacheError> {
        let identifier = format!("{:032x}", rand::random::<u128>());
        let deadline = Instant::now() + timeout;
        loop {
            if self.set_value_if_absent(key, &identifier, Some(expire)).await? {
                return Ok(Some(LockGuard { client: self.clone(), key: key.to_owned(), identifier, released: false }));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(retry_interval.max(Duration::from_millis(1)).min(deadline - now)).await;
        }
    }

    /// Releases the lock at `key` only if it still holds `identifier` (atomic
    /// compare-and-delete). `false` when it was held by someone else or had expired.
    pub async fn release_lock(&self, key: &str, identifier: &str) -> Result<bool, CacheError> {
        self.delete_if_equals(key, identifier).await
    }

    /// Sets the lock's TTL to `ttl` from now only if it still holds `identifier`.
    pub async fn extend_lock(&self, key: &str, identifier: &str, ttl: Duration) -> Result<bool, CacheError> {
        self.expire_if_equals(key, identifier, ttl).await
    }
}
