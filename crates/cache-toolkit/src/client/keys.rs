//! Whole keys: DEL, TTLs (PEXPIRE, PTTL), existence, batch deletes grouped by hash slot, and
//! deletes by pattern (SCAN on every primary, never KEYS).

use std::time::Duration;

use crate::{CacheClient, CacheError, Op, Ttl};
use store::{embedded::WrongType, redis};

impl CacheClient {
    /// DEL one key; `true` when it existed.
    pub async fn delete_key(&self, key: &str) -> Result<bool, CacheError> {
        let stored = self.key(key).into_owned();
        let deleted = self
            .call(
                Op::DeleteKey,
                &stored,
                async |route| redis::unlink(route, std::slice::from_ref(&stored)).await,
                |store| Ok(store.delete(&[stored.as_str()])),
            )
            .await?;
        Ok(deleted > 0)
    }

    /// Sets a TTL on an existing key (`false` when it does not exist). A zero TTL deletes the
    /// key, as in Redis; one over [`crate::MAX_TTL`] is refused.
    pub async fn set_expiry(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        let key = self.key(key);
        self.check_ttl_ceiling(Op::SetExpiry, &key, ttl)?;
        self.call(
            Op::SetExpiry,
            &key,
            async |route| redis::expire(route, &key, ttl).await,
            |store| Ok(store.expire(&key, ttl)),
        )
        .await
    }

    pub async fn key_exists(&self, key: &str) -> Result<bool, CacheError> {
        let key = self.key(key);
        self.call(Op::KeyExists, &key, async |route| redis::exists(route, &key).await, |store| Ok(store.exists(&key)))
            .await
    }

    /// Which of `keys` exist, in order; one round trip (a pipeline), even in a cluster. An
    /// empty list costs nothing.
    pub async fn existing_keys<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<bool>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let stored: Vec<String> = keys.iter().map(|key| self.key(key.as_ref()).into_owned()).collect();
        let first = stored[0].clone();
        self.call(
            Op::ExistingKeys,
            &first,
            async |route| redis::existing(route, &stored).await,
            |store| Ok(stored.iter().map(|key| store.exists(key)).collect()),
        )
        .await
    }

    pub async fn get_ttl(&self, key: &str) -> Result<Ttl, CacheError> {
        let key = self.key(key);
        self.call(Op::GetTtl, &key, async |route| redis::ttl(route, &key).await, |store| Ok(store.ttl(&key))).await
    }

    /// Deletes many keys; works in a cluster (grouped by hash slot). An empty list costs no
    /// round trip. Returns how many existed.
    pub async fn batch_delete_keys<K: AsRef<str>>(&self, keys: &[K]) -> Result<u64, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let stored: Vec<String> = keys.iter().map(|key| self.key(key.as_ref()).into_owned()).collect();
        let first = stored[0].clone();
        let deleted = self
            .call(
                Op::BatchDeleteKeys,
                &first,
                async |route| redis::unlink(route, &stored).await,
                |store| Ok(store.delete(&stored.iter().map(String::as_str).collect::<Vec<_>>())),
            )
            .await;
        self.written(&stored);
        deleted
    }

    /// Deletes every key matching a Redis glob pattern (under the prefix), by SCAN over every
    /// primary — never KEYS. Returns how many were deleted.
    pub async fn delete_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        let pattern = format!("{}{pattern}", store::embedded::glob_escape(self.inner.prefix.as_str()));
        let deleted = self
            .call_in_steps(
                Op::DeleteMatching,
                &pattern,
                async |route| redis::delete_matching(route, &pattern).await,
                async |store| Ok::<_, WrongType>(store.delete_matching(&pattern).await),
            )
            .await;
        // Which keys went is not known here: drop everything (tracking would tell, but only
        // after this call returned).
        if let Some(near) = &self.inner.near {
            near.invalidate_everything(None);
        }
        deleted
    }
}
