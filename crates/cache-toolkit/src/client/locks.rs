//! Compare-and-act on one key, for the locks: delete or re-expire it only while it still holds
//! the expected value, atomically.

use std::time::Duration;

use crate::{CacheClient, CacheError, Op};
use store::redis;

impl CacheClient {
    /// Deletes `key` only while it still holds `expected`, atomically.
    pub(crate) async fn delete_if_equals(&self, key: &str, expected: &str) -> Result<bool, CacheError> {
        let key = self.key(key);
        self.call(
            Op::ReleaseLock,
            &key,
            async |route| redis::delete_if_equals(route, &key, expected).await,
            |store| store.delete_if_equals(&key, expected),
        )
        .await
    }

    /// Sets a new TTL on `key` only while it still holds `expected`, atomically.
    pub(crate) async fn expire_if_equals(&self, key: &str, expected: &str, ttl: Duration) -> Result<bool, CacheError> {
        let key = self.key(key);
        self.check_ttl(Op::ExtendLock, &key, Some(ttl))?;
        self.call(
            Op::ExtendLock,
            &key,
            async |route| redis::expire_if_equals(route, &key, expected, ttl).await,
            |store| store.expire_if_equals(&key, expected, ttl),
        )
        .await
    }
}
