//! The embedded store: an in-process keyspace with Redis's semantics for what the toolkit uses
//! (strings with EX/PX/NX, bitmaps, lists, hashes, TTLs, compare-and-delete), so `tessera` runs on a
//! machine with no Redis. Data is neither shared between processes nor kept across restarts.
//!
//! One `std::sync::Mutex` guards the keyspace; it is never held across an `.await`, and no
//! operation holds it for work that grows with the keyspace: pattern deletes go by SCAN steps,
//! sweeps by batches. Expired keys are invisible at once and their memory is reclaimed by a
//! background sweeper that stops when the last handle is dropped.

mod glob;
mod keyspace;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use tokio::time::Instant;

pub use glob::glob_escape;
use keyspace::Keyspace;
pub use keyspace::{EmbeddedStats, ScanPage};
pub use keyspace::{EmbeddedVerdict, IncrementFailure, TextReadFailure, WrongType};

use crate::{ListEnd, Ttl};

/// How often expired keys are swept, and how many one sweep may remove before yielding the lock.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
const SWEEP_BATCH: usize = 1_000;
/// Keys one SCAN step examines (Redis's COUNT, as the Redis side sends it).
const SCAN_PAGE: usize = 500;

/// A handle on one in-process keyspace; clones share it.
#[derive(Clone, Debug)]
pub struct EmbeddedStore {
    keyspace: Arc<Mutex<Keyspace>>,
}

impl Default for EmbeddedStore {
    fn default() -> Self {
        Self::new()
    }
}

impl EmbeddedStore {
    /// An empty keyspace. Inside a tokio runtime this also starts the sweeper that reclaims
    /// expired keys; outside one, expired keys are still never returned, and go when touched.
    pub fn new() -> Self {
        let keyspace = Arc::new(Mutex::new(Keyspace::default()));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep_until_dropped(Arc::downgrade(&keyspace)));
        }
        Self { keyspace }
    }

    /// Number of live keys (expired ones are not counted).
    pub fn len(&self) -> usize {
        self.lock().live_len(Instant::now())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys held and the expiry index's length, read in O(1).
    pub fn stats(&self) -> EmbeddedStats {
        self.lock().stats()
    }

    fn lock(&self) -> MutexGuard<'_, Keyspace> {
        // A panic while holding the lock cannot leave the map half-updated in a way later
        // calls would misread (each operation finishes its mutation before anything can panic).
        self.keyspace.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// GET: a string value that is not UTF-8 (a bitmap) fails as it does through fred.
    pub fn get(&self, key: &str) -> Result<Option<String>, TextReadFailure> {
        self.lock().get_string(key, Instant::now())
    }

    pub fn get_decoded<T: std::any::Any + Send + Sync>(
        &self,
        key: &str,
        decode: impl Fn(&str) -> T,
    ) -> Result<Option<Arc<T>>, TextReadFailure> {
        self.lock().get_decoded(key, Instant::now(), decode)
    }

    pub fn set(&self, key: &str, value: &str, ttl: Option<Duration>, only_if_absent: bool) -> bool {
        self.lock().set_string(key, value, ttl, only_if_absent, Instant::now())
    }

    pub fn delete(&self, keys: &[&str]) -> u64 {
        let now = Instant::now();
        let mut keyspace = self.lock();
        keys.iter().filter(|key| keyspace.remove_live(key, now)).count() as u64
    }

    pub fn expire(&self, key: &str, ttl: Duration) -> bool {
        self.lock().expire(key, ttl, Instant::now())
    }

    pub fn exists(&self, key: &str) -> bool {
        self.lock().exists(key, Instant::now())
    }

    pub fn ttl(&self, key: &str) -> Ttl {
        self.lock().ttl(key, Instant::now())
    }

    pub fn hash_set(&self, name: &str, field: &str, value: &str) -> Result<bool, WrongType> {
        self.lock().hash_set(name, field, value, Instant::now())
    }

    pub fn hash_get(&self, name: &str, field: &str) -> Result<Option<String>, WrongType> {
        self.lock().hash_get(name, field, Instant::now())
    }

    pub fn hash_get_all(&self, name: &str) -> Result<HashMap<String, String>, WrongType> {
        self.lock().hash_get_all(name, Instant::now())
    }

    pub fn hash_delete(&self, name: &str, field: &str) -> Result<bool, WrongType> {
        self.lock().hash_delete(name, field, Instant::now())
    }

    pub fn list_push(&self, name: &str, values: &[&str], end: ListEnd) -> Result<u64, WrongType> {
        self.lock().list_push(name, values, end, Instant::now())
    }

    pub fn list_range(&self, name: &str, start: i64, stop: i64) -> Result<Vec<String>, WrongType> {
        self.lock().list_range(name, start, stop, Instant::now())
    }

    pub fn list_pop(&self, name: &str, end: ListEnd) -> Result<Option<String>, WrongType> {
        self.lock().list_pop(name, end, Instant::now())
    }

    pub fn list_position(&self, name: &str, value: &str) -> Result<Option<u64>, WrongType> {
        self.lock().list_position(name, value, Instant::now())
    }

    /// Whether the list `name` holds `value`, and the verdict to remember it by
    /// (`near_cache::ListVerdict`).
    pub fn list_verdict(&self, name: &str, value: &str) -> Result<(bool, Option<EmbeddedVerdict>), WrongType> {
        self.lock().list_verdict(name, value, Instant::now())
    }

    pub fn list_remove(&self, name: &str, count: i64, value: &str) -> Result<u64, WrongType> {
        self.lock().list_remove(name, count, value, Instant::now())
    }

    pub fn list_trim(&self, name: &str, start: i64, stop: i64) -> Result<(), WrongType> {
        self.lock().list_trim(name, start, stop, Instant::now())
    }

    /// LPUSH then trim to `max_len`, in one critical section (the Redis side is one script).
    pub fn list_push_capped(&self, name: &str, values: &[&str], max_len: u64) -> Result<(u64, Vec<String>), WrongType> {
        self.lock().list_push_capped(name, values, max_len, Instant::now())
    }

    pub fn list_len(&self, name: &str) -> Result<u64, WrongType> {
        self.lock().list_len(name, Instant::now())
    }

    /// Deletes `key` only while it holds `expected` (a lock's compare-and-delete).
    pub fn delete_if_equals(&self, key: &str, expected: &str) -> Result<bool, WrongType> {
        self.lock().delete_if_equals(key, expected, Instant::now())
    }

    /// Sets a new TTL on `key` only while it holds `expected` (a lock's compare-and-pexpire).
    pub fn expire_if_equals(&self, key: &str, expected: &str, ttl: Duration) -> Result<bool, WrongType> {
        self.lock().expire_if_equals(key, expected, ttl, Instant::now())
    }

    /// SETBIT to 1 at each offset (Redis's bit layout; see `Keyspace::set_bits` in `keyspace.rs`).
    pub fn set_bits(&self, key: &str, offsets: &[u64]) -> Result<(), WrongType> {
        self.lock().set_bits(key, offsets, Instant::now())
    }

    /// GETBIT at each offset, in order; 0 past the end or when the key is missing.
    pub fn get_bits(&self, key: &str, offsets: &[u64]) -> Result<Vec<bool>, WrongType> {
        self.lock().get_bits(key, offsets, Instant::now())
    }

    /// Takes a lock (SET NX PX) and increments its fencing counter in one critical section,
    /// like the Redis script; `None` when the lock is held.
    pub fn acquire_fenced(
        &self,
        key: &str,
        counter: &str,
        identifier: &str,
        lease: Duration,
    ) -> Result<Option<u64>, IncrementFailure> {
        self.lock().acquire_fenced(key, counter, identifier, lease, Instant::now())
    }

    /// One SCAN step (see [`Keyspace::scan`]): at most `count` keys examined under the lock.
    #[cfg(test)]
    pub fn scan(&self, after: Option<&str>, pattern: &str, count: usize) -> keyspace::ScanPage {
        self.lock().scan(after, pattern, count, Instant::now())
    }

    /// Deletes the live keys matching a Redis glob pattern the way `delete_matching` does on
    /// Redis: SCAN steps of `SCAN_PAGE` keys, each page deleted as it comes, and the lock
    /// released (and the task yielding) between steps, so a keyspace of millions of keys never
    /// stalls other callers for more than one step.
    pub async fn delete_matching(&self, pattern: &str) -> u64 {
        let mut after: Option<std::sync::Arc<str>> = None;
        let mut deleted = 0;
        loop {
            let next = {
                let now = Instant::now();
                let mut keyspace = self.lock();
                let page = keyspace.scan(after.as_deref(), pattern, SCAN_PAGE, now);
                deleted += page.keys.iter().filter(|key| keyspace.remove_live(key, now)).count() as u64;
                page.next
            };
            let Some(next) = next else { return deleted };
            after = Some(next);
            tokio::task::yield_now().await;
        }
    }

    #[cfg(test)]
    pub fn stored_len(&self) -> usize {
        self.lock().stored_len()
    }

    #[cfg(test)]
    pub fn sweep_now(&self) -> usize {
        self.lock().sweep(Instant::now(), usize::MAX)
    }
}

async fn sweep_until_dropped(keyspace: Weak<Mutex<Keyspace>>) {
    let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(keyspace) = keyspace.upgrade() else { return };
        loop {
            let removed =
                keyspace.lock().unwrap_or_else(std::sync::PoisonError::into_inner).sweep(Instant::now(), SWEEP_BATCH);
            if removed < SWEEP_BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}
