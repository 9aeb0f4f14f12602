//! String values: SET (with NX and a TTL), GET (through the near cache when there is one),
//! JSON stored as a string (the seed's set_dict/get_dict and set_list/get_list_value), and the
//! reads process memory answers without asking the store.

use std::{sync::Arc, time::Duration};

use serde::{Serialize, de::DeserializeOwned};
use tokio::time::Instant;

use store::redis;

use crate::{CacheClient, CacheError, CacheStore, Op};

impl CacheClient {
    /// SET `key` to `value`, with an optional TTL (none: the key never expires, and any earlier
    /// TTL is cleared, as Redis does).
    pub async fn set_value(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), CacheError> {
        let key = self.key(key);
        self.check_ttl(Op::SetValue, &key, ttl)?;
        self.call(
            Op::SetValue,
            &key,
            async |route| redis::set(route, &key, value, ttl, false).await,
            |store| Ok(store.set(&key, value, ttl, false)),
        )
        .await
        .map(drop)
    }

    /// SET NX: writes only if the key is absent; `true` when written.
    pub async fn set_value_if_absent(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<bool, CacheError> {
        let key = self.key(key);
        self.check_ttl(Op::SetValueIfAbsent, &key, ttl)?;
        self.call(
            Op::SetValueIfAbsent,
            &key,
            async |route| redis::set(route, &key, value, ttl, true).await,
            |store| Ok(store.set(&key, value, ttl, true)),
        )
        .await
    }

    /// GET: `None` when the key is missing (or expired). A value that is not UTF-8 (a Bloom
    /// bitmap, say) is a [`crate::CacheErrorKind::BadData`] error on every store.
    pub async fn get_value(&self, key: &str) -> Result<Option<String>, CacheError> {
        let key = self.key(key);
        let found = match &self.inner.near {
            Some(near) => {
                if let Some(cached) = near.lookup(&key) {
                    self.inner.metrics.record_read(cached.is_some());
                    return Ok(cached);
                }
                self.call_refusing(
                    Op::GetValue,
                    &key,
                    async |route| near.read_through(route, &key).await,
                    |store| store.get(&key),
                )
                .await
            }
            None => {
                self.call_refusing(
                    Op::GetValue,
                    &key,
                    async |route| redis::get(route, &key).await,
                    |store| store.get(&key),
                )
                .await
            }
        };
        self.read(found)
    }

    /// Stores any serializable value as compact JSON (simd-json), like the seed's orjson.
    pub async fn set_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let json = crate::json::encode(value)
            .map_err(|error| CacheError::invalid_input(Op::SetJson, Some(&self.key(key)), error))?;
        self.set_value(key, &json, ttl).await
    }

    /// Reads a JSON value: `None` when missing; a stored value that is not valid JSON for `T`
    /// is a [`crate::CacheErrorKind::BadData`] error naming the key.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        let Some(text) = self.get_value(key).await? else { return Ok(None) };
        let mut bytes = text.into_bytes();
        crate::json::decode::<T>(&mut bytes)
            .map(Some)
            .map_err(|error| CacheError::bad_data(Op::GetJson, &self.key(key), error))
    }

    /// The value of `key` if the near cache can answer for it now (`Some(None)`: known to be
    /// missing); `None` when it cannot (no near cache, or not cached). Never asks the store.
    pub fn get_value_if_cached(&self, key: &str) -> Option<Option<String>> {
        let value = self.inner.near.as_ref()?.lookup_if_cached(&self.key(key))?;
        self.inner.metrics.record_read(value.is_some());
        Some(value)
    }

    /// The value of `key` decoded by `decode`, if process memory can answer for it now: the
    /// near cache, or the embedded store (which is process memory). `decode` runs once per
    /// stored value: the decoded form stays beside it, shared by every reader, and goes when
    /// the value is replaced, invalidated, flushed or expires. `Some(None)`: known to be
    /// missing; `None`: not answerable here (not cached, no near cache on Redis, or a key of
    /// another type — ask with [`Self::get_value`]). For a value read on every request, such as
    /// a session's token, this saves the copy and the decode on each read.
    pub fn get_decoded_if_cached<T: std::any::Any + Send + Sync>(
        &self,
        key: &str,
        decode: impl Fn(&str) -> T,
    ) -> Option<Option<Arc<T>>> {
        let key = self.key(key);
        let value = match (&self.inner.near, &self.inner.store) {
            (Some(near), _) => near.lookup_decoded_if_cached(&key, decode)?,
            (None, CacheStore::Embedded(store)) => {
                let started = Instant::now();
                let value = store.get_decoded(&key, decode).ok()?;
                self.inner.metrics.record(Op::GetValue, &key, started.elapsed(), None);
                value
            }
            (None, CacheStore::Redis(_)) => return None,
        };
        self.inner.metrics.record_read(value.is_some());
        Some(value)
    }
}
