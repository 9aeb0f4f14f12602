//! Lists: pushes (capped pushes too), pops, LRANGE, LPOS, LREM, LTRIM, LLEN, and membership
//! answered by the near cache's copy of the list when there is one.

use std::sync::Arc;

use near_cache::NearCache;
use store::{embedded::TextReadFailure, redis};

use crate::{CacheClient, CacheError, CacheStore, ListEnd, ListVerdict, Op};

/// What [`CacheClient::push_to_capped_list`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CappedPush {
    /// The list's length after the push and the trim: at most the cap.
    pub len: u64,
    /// What the trim removed from the tail, in list order (the oldest last).
    pub evicted: Vec<String>,
}

impl CacheClient {
    /// LPUSH or RPUSH one value; returns the list's new length.
    pub async fn push_to_list(&self, name: &str, value: &str, end: ListEnd) -> Result<u64, CacheError> {
        self.push_many_to_list(name, &[value], end).await
    }

    /// LPUSH or RPUSH several values in one command (LPUSH a b leaves b first, as Redis does).
    pub async fn push_many_to_list<V: AsRef<str>>(
        &self,
        name: &str,
        values: &[V],
        end: ListEnd,
    ) -> Result<u64, CacheError> {
        let name = self.key(name);
        let owned: Vec<String> = values.iter().map(|value| value.as_ref().to_owned()).collect();
        if owned.is_empty() {
            return self.list_len_stored(&name).await;
        }
        self.call(
            Op::PushToList,
            &name,
            async |route| redis::list_push(route, &name, owned.clone(), end).await,
            |store| store.list_push(&name, &owned.iter().map(String::as_str).collect::<Vec<_>>(), end),
        )
        .await
    }

    /// Pushes `values` at the head (LPUSH: the last one ends up first) and keeps only the
    /// first `max_len` elements, in one atomic step — a bounded list, newest first. Returns
    /// the length left and the elements the trim evicted from the tail, in list order: nobody
    /// ever sees the list longer than `max_len` after this call's push, and each evicted
    /// element is returned to exactly one caller. No values: only the trim (a missing list
    /// stays missing). `max_len` 0 deletes the list. The list keeps its TTL. On Redis this
    /// is a script on the one key, so it runs on a cluster too.
    pub async fn push_to_capped_list<V: AsRef<str>>(
        &self,
        name: &str,
        values: &[V],
        max_len: u64,
    ) -> Result<CappedPush, CacheError> {
        let name = self.key(name);
        let owned: Vec<String> = values.iter().map(|value| value.as_ref().to_owned()).collect();
        // A Redis list holds at most 2^32 - 1 elements: a larger cap is the same cap, and this
        // one is exact in Lua's numbers.
        let max_len = max_len.min(u64::from(u32::MAX));
        let (len, evicted) = self
            .call(
                Op::PushToCappedList,
                &name,
                async |route| redis::push_capped(route, &name, &owned, max_len).await,
                |store| store.list_push_capped(&name, &owned.iter().map(String::as_str).collect::<Vec<_>>(), max_len),
            )
            .await?;
        Ok(CappedPush { len, evicted })
    }

    /// LRANGE 0 -1: the whole list; empty when missing. Answered by the near cache when there
    /// is one.
    pub async fn get_list(&self, name: &str) -> Result<Vec<String>, CacheError> {
        match &self.inner.near {
            Some(near) => Ok(self.near_list(Op::GetList, near, &self.key(name)).await?.to_vec()),
            None => self.list_range(name, 0, -1).await,
        }
    }

    /// Whether the list `name` holds `element`: LPOS, or the near cache's copy of the list.
    pub async fn list_contains(&self, name: &str, element: &str) -> Result<bool, CacheError> {
        let name = self.key(name);
        let found = match &self.inner.near {
            Some(near) => self.near_list(Op::ListContains, near, &name).await?.iter().any(|item| item == element),
            None => self
                .call(
                    Op::ListContains,
                    &name,
                    async |route| redis::list_position(route, &name, element).await,
                    |store| store.list_position(&name, element),
                )
                .await?
                .is_some(),
        };
        self.inner.metrics.record_read(found);
        Ok(found)
    }

    /// [`Self::list_contains`] for a question asked over and over (the same list, the same
    /// element): the answer is remembered in `memo` against the list it came from, and
    /// answered from there, without a lookup, while that list is unchanged: with a near cache,
    /// while its list entry stays the near cache's (any invalidation, expiry, eviction or flush
    /// of it ends that); on the embedded store, while the list's items and TTL stay as they
    /// were. On Redis without a near cache it is [`Self::list_contains`]. Use one `memo` per
    /// (list, element) pair.
    pub async fn list_contains_remembered(
        &self,
        name: &str,
        element: &str,
        memo: &ListVerdict,
    ) -> Result<bool, CacheError> {
        if let Some(found) = self.list_contains_in_memory(name, element, memo) {
            return found;
        }
        let Some(near) = &self.inner.near else { return self.list_contains(name, element).await };
        let name = self.key(name);
        let found = self.near_list(Op::ListContains, near, &name).await?.iter().any(|item| item == element);
        near.remember_verdict(&name, element, memo);
        self.inner.metrics.record_read(found);
        Ok(found)
    }

    /// [`Self::list_contains_remembered`] when memory can answer at once: a remembered
    /// verdict, or the embedded store (which then remembers one). `None` when only Redis can
    /// (the caller then awaits [`Self::list_contains_remembered`]). Lets a hot path stay
    /// synchronous, so its future does not carry the Redis path's state.
    pub fn list_contains_in_memory(
        &self,
        name: &str,
        element: &str,
        memo: &ListVerdict,
    ) -> Option<Result<bool, CacheError>> {
        let found = match (&self.inner.near, &self.inner.store) {
            (Some(near), _) => Ok(near.remembered_verdict(memo)?),
            (None, CacheStore::Embedded(store)) => {
                let started = tokio::time::Instant::now();
                match memo.embedded(started) {
                    // The list is unchanged since the verdict: no lookup, no lock.
                    Some(listed) => Ok(listed),
                    None => {
                        let name = self.key(name);
                        let verdict = store.list_verdict(&name, element).map(|(listed, verdict)| {
                            if let Some(verdict) = verdict {
                                memo.remember_embedded(verdict);
                            }
                            listed
                        });
                        let verdict = verdict.map_err(|_| CacheError::wrong_type(Op::ListContains, &name));
                        self.finish(Op::ListContains, &name, started, verdict)
                    }
                }
            }
            (None, CacheStore::Redis(_)) => return None,
        };
        if let Ok(found) = found {
            self.inner.metrics.record_read(found);
        }
        Some(found)
    }

    /// The string `key` and whether the list `list` holds `element`, in one round trip at most:
    /// from the near cache (reading only what it lacks, GET and LRANGE pipelined), or GET and
    /// LPOS pipelined without a script. The embedded store answers both at once. A wrong type
    /// under either key is a [`crate::CacheErrorKind::WrongType`] error (ask separately to tell
    /// which).
    pub async fn get_value_and_list_contains(
        &self,
        key: &str,
        list: &str,
        element: &str,
    ) -> Result<(Option<String>, bool), CacheError> {
        let (key, list) = (self.key(key), self.key(list));
        let (value, listed) = match &self.inner.near {
            Some(near) => match (near.lookup(&key), near.lookup_list(&list)) {
                (Some(value), Some(items)) => (value, items.iter().any(|item| item == element)),
                (Some(value), None) => (
                    value,
                    self.near_list_read(Op::GetValueAndListContains, near, &list)
                        .await?
                        .iter()
                        .any(|item| item == element),
                ),
                (None, cached_list) => {
                    let (value, items) = self
                        .call_refusing(
                            Op::GetValueAndListContains,
                            &key,
                            async |route| match &cached_list {
                                Some(items) => Ok((near.read_through(route, &key).await?, Arc::clone(items))),
                                None => near.read_text_and_list_through(route, &key, &list).await,
                            },
                            |store| -> Result<_, TextReadFailure> {
                                Ok((store.get(&key)?, store.list_range(&list, 0, -1)?.into()))
                            },
                        )
                        .await?;
                    (value, items.iter().any(|item| item == element))
                }
            },
            None => {
                let (value, position) = self
                    .call_refusing(
                        Op::GetValueAndListContains,
                        &key,
                        async |route| redis::get_and_list_position(route, &key, &list, element).await,
                        // A WRONGTYPE from either command wins over a value that is not
                        // UTF-8, as in Redis's pipeline (the server's error comes first).
                        |store| -> Result<_, TextReadFailure> {
                            let value = store.get(&key);
                            let position = store.list_position(&list, element)?;
                            Ok((value?, position))
                        },
                    )
                    .await?;
                (value, position.is_some())
            }
        };
        self.inner.metrics.record_read(value.is_some());
        Ok((value, listed))
    }

    /// The list from the near cache, or read through it.
    /// The list `name` from the near cache, read through it when it lacks it; errors name
    /// `operation` (the caller's).
    async fn near_list(&self, operation: Op, near: &NearCache, name: &str) -> Result<Arc<[String]>, CacheError> {
        match near.lookup_list(name) {
            Some(items) => Ok(items),
            None => self.near_list_read(operation, near, name).await,
        }
    }

    async fn near_list_read(&self, operation: Op, near: &NearCache, name: &str) -> Result<Arc<[String]>, CacheError> {
        self.call(
            operation,
            name,
            async |route| near.read_list_through(route, name).await,
            |store| Ok(store.list_range(name, 0, -1)?.into()),
        )
        .await
    }

    /// LRANGE with Redis's index rules (negative indices count from the tail, inclusive ends).
    pub async fn list_range(&self, name: &str, start: i64, stop: i64) -> Result<Vec<String>, CacheError> {
        let name = self.key(name);
        self.call(
            Op::ListRange,
            &name,
            async |route| redis::list_range(route, &name, start, stop).await,
            |store| store.list_range(&name, start, stop),
        )
        .await
    }

    /// LPOP: the head, `None` when the list is empty or missing.
    pub async fn left_pop_list(&self, name: &str) -> Result<Option<String>, CacheError> {
        self.pop_list(name, ListEnd::Left).await
    }

    pub async fn pop_list(&self, name: &str, end: ListEnd) -> Result<Option<String>, CacheError> {
        let name = self.key(name);
        let found = self
            .call(
                Op::PopList,
                &name,
                async |route| redis::list_pop(route, &name, end).await,
                |store| store.list_pop(&name, end),
            )
            .await;
        self.read(found)
    }

    /// LPOS: the index of the first `value`, `None` when absent. Membership without fetching
    /// the list.
    pub async fn list_position(&self, name: &str, value: &str) -> Result<Option<u64>, CacheError> {
        let name = self.key(name);
        let found = self
            .call(
                Op::ListPosition,
                &name,
                async |route| redis::list_position(route, &name, value).await,
                |store| store.list_position(&name, value),
            )
            .await;
        self.read(found)
    }

    /// LREM: `count > 0` removes the first `count` matches from the head, `count < 0` from the
    /// tail, `0` every match. Returns how many were removed.
    pub async fn list_remove(&self, name: &str, count: i64, value: &str) -> Result<u64, CacheError> {
        let name = self.key(name);
        self.call(
            Op::ListRemove,
            &name,
            async |route| redis::list_remove(route, &name, count, value).await,
            |store| store.list_remove(&name, count, value),
        )
        .await
    }

    /// LTRIM: keep only `start..=stop` (Redis's index rules).
    pub async fn list_trim(&self, name: &str, start: i64, stop: i64) -> Result<(), CacheError> {
        let name = self.key(name);
        self.call(
            Op::ListTrim,
            &name,
            async |route| redis::list_trim(route, &name, start, stop).await,
            |store| store.list_trim(&name, start, stop),
        )
        .await
    }

    /// LLEN: 0 when missing.
    pub async fn list_len(&self, name: &str) -> Result<u64, CacheError> {
        let name = self.key(name);
        self.list_len_stored(&name).await
    }

    async fn list_len_stored(&self, name: &str) -> Result<u64, CacheError> {
        self.call(Op::ListLen, name, async |route| redis::list_len(route, name).await, |store| store.list_len(name))
            .await
    }
}
