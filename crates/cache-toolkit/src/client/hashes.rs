//! Hashes: HSET, HGET, HGETALL, HDEL of one field.

use std::collections::HashMap;

use crate::{CacheClient, CacheError, Op};
use store::redis;

impl CacheClient {
    /// HSET one field; `true` when the field is new.
    pub async fn set_hash(&self, name: &str, field: &str, value: &str) -> Result<bool, CacheError> {
        let name = self.key(name);
        self.call(
            Op::SetHash,
            &name,
            async |route| redis::hash_set(route, &name, field, value).await,
            |store| store.hash_set(&name, field, value),
        )
        .await
    }

    pub async fn get_hash(&self, name: &str, field: &str) -> Result<Option<String>, CacheError> {
        let name = self.key(name);
        let found = self
            .call(
                Op::GetHash,
                &name,
                async |route| redis::hash_get(route, &name, field).await,
                |store| store.hash_get(&name, field),
            )
            .await;
        self.read(found)
    }

    /// HGETALL: every field; empty when the hash is missing.
    pub async fn get_hash_all(&self, name: &str) -> Result<HashMap<String, String>, CacheError> {
        let name = self.key(name);
        self.call(
            Op::GetHashAll,
            &name,
            async |route| redis::hash_get_all(route, &name).await,
            |store| store.hash_get_all(&name),
        )
        .await
    }

    /// HDEL one field; `true` when it existed.
    pub async fn delete_hash_field(&self, name: &str, field: &str) -> Result<bool, CacheError> {
        let name = self.key(name);
        self.call(
            Op::DeleteHashField,
            &name,
            async |route| redis::hash_delete(route, &name, field).await,
            |store| store.hash_delete(&name, field),
        )
        .await
    }
}
