//! The embedded store: an in-process keyspace with Redis's semantics for what the toolkit uses
//! (strings with EX/PX/NX, bitmaps, lists, hashes, TTLs, compare-and-delete), so `tessera` runs on a
//! machine with no Redis; opened on a data directory, it keeps its data there across restarts
//! and crashes (`journal.rs`, docs/DURABILITY.md). Nothing is shared between processes. It also
//! holds the value vocabulary both stores share ([`Ttl`], [`ListEnd`], [`MAX_TTL`]), which the
//! `store` crate re-exports; it depends on no other Tessera crate.
//!
//! One `std::sync::Mutex` guards the keyspace; it is never held across an `.await`, and no
//! operation holds it for work that grows with the keyspace: pattern deletes go by SCAN steps,
//! sweeps by batches. Expired keys are invisible at once and their memory is reclaimed by a
//! background sweeper that stops when the last handle is dropped.

pub mod decoded;
mod glob;
mod journal;
mod keyspace;
mod record;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use tokio::time::Instant;

pub use glob::glob_escape;
use journal::Journal;
pub use journal::{
    DataDirError, Durability, Fsync, JOURNAL_FILE, LOCK_FILE, REWRITE_MIN_BYTES, Recovered, Replayed, recover,
};
use keyspace::Keyspace;
pub use keyspace::{EmbeddedStats, ScanPage};
pub use keyspace::{EmbeddedVerdict, IncrementFailure, TextReadFailure, WrongType};

/// How often expired keys are swept, and how many one sweep may remove before yielding the lock.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
const SWEEP_BATCH: usize = 1_000;
/// Keys one SCAN step examines (Redis's COUNT, as the Redis side sends it).
const SCAN_PAGE: usize = 500;

/// A handle on one in-process keyspace; clones share it. Opened on a data directory
/// ([`EmbeddedStore::open`]), every write is journaled there and the keyspace survives restarts.
#[derive(Clone, Debug)]
pub struct EmbeddedStore {
    keyspace: Arc<Mutex<Keyspace>>,
    journal: Option<Arc<Journal>>,
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
        Self::with(Keyspace::default(), None)
    }

    /// The keyspace kept in `durability.dir`: its journal replayed, its directory locked, every
    /// write journaled from now on (`journal.rs`). Fails when another process holds the
    /// directory, or when the journal is corrupt before its end (a torn last record, which a
    /// crash leaves, is cut off with a warning and reported in [`Replayed`]).
    pub fn open(durability: &Durability) -> Result<(Self, Replayed), DataDirError> {
        let (journal, keyspace, loaded) = Journal::open(durability)?;
        let store = Self::with(keyspace, Some(Arc::new(journal)));
        if let Some(journal) = &store.journal {
            journal.follow(&store.keyspace);
        }
        Ok((store, loaded))
    }

    fn with(keyspace: Keyspace, journal: Option<Arc<Journal>>) -> Self {
        let keyspace = Arc::new(Mutex::new(keyspace));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep_until_dropped(Arc::downgrade(&keyspace)));
        }
        Self { keyspace, journal }
    }

    /// Whether writes are journaled (opened on a data directory).
    pub fn is_durable(&self) -> bool {
        self.journal.is_some()
    }

    /// Why writes cannot be kept any more, when the journal failed (a full disk).
    pub fn write_failure(&self) -> Option<Arc<str>> {
        self.journal.as_ref()?.failure()
    }

    /// Waits until the writes made so far are as durable as the policy promises before an
    /// acknowledgement (on disk with [`Fsync::Always`]); `force`: on disk whatever the policy.
    pub async fn settle(&self, force: bool) -> Result<(), Arc<str>> {
        match &self.journal {
            Some(journal) => journal.settle(force).await,
            None => Ok(()),
        }
    }

    /// Rewrites the journal now as a snapshot (compaction; it also happens by itself as the
    /// journal grows; `tessera data compact` runs it on a directory no server uses).
    pub fn rewrite_journal(&self) -> std::io::Result<()> {
        self.journal.as_ref().map_or(Ok(()), |journal| journal.rewrite_now())
    }

    /// The journal's length in bytes as written so far (0 without one).
    pub fn journal_bytes(&self) -> u64 {
        self.journal.as_ref().map_or(0, |journal| journal.written_bytes())
    }

    /// Runs a write under the lock and, with a journal, `record`s what it left while the lock
    /// is still held, so the journal has writes in the order they were applied.
    fn write<T>(
        &self,
        write: impl FnOnce(&mut Keyspace, Instant) -> T,
        record: impl FnOnce(&T, &Keyspace, &Journal, Instant),
    ) -> T {
        let now = Instant::now();
        let mut keyspace = self.lock();
        let outcome = write(&mut keyspace, now);
        if let Some(journal) = &self.journal {
            record(&outcome, &keyspace, journal, now);
        }
        outcome
    }

    /// [`Self::write`] of one key whose whole state is recorded when `changed` says so.
    fn write_key<T>(
        &self,
        key: &str,
        write: impl FnOnce(&mut Keyspace, Instant) -> T,
        changed: impl FnOnce(&T) -> bool,
    ) -> T {
        self.write(write, |outcome, keyspace, journal, now| {
            if changed(outcome) {
                journal.record_state(keyspace, key, now);
            }
        })
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
        self.write_key(key, |keyspace, now| keyspace.set_string(key, value, ttl, only_if_absent, now), |set| *set)
    }

    pub fn delete(&self, keys: &[&str]) -> u64 {
        let removed = self.write(
            |keyspace, now| keys.iter().filter(|key| keyspace.remove_live(key, now)).copied().collect::<Vec<&str>>(),
            |removed, _, journal, _| removed.iter().for_each(|key| journal.record_deletion(key)),
        );
        removed.len() as u64
    }

    pub fn expire(&self, key: &str, ttl: Duration) -> bool {
        self.write(
            |keyspace, now| keyspace.expire(key, ttl, now),
            |expired, keyspace, journal, now| {
                if *expired {
                    record_deadline(keyspace, journal, key, now);
                }
            },
        )
    }

    pub fn exists(&self, key: &str) -> bool {
        self.lock().exists(key, Instant::now())
    }

    pub fn ttl(&self, key: &str) -> Ttl {
        self.lock().ttl(key, Instant::now())
    }

    pub fn hash_set(&self, name: &str, field: &str, value: &str) -> Result<bool, WrongType> {
        self.write_key(name, |keyspace, now| keyspace.hash_set(name, field, value, now), Result::is_ok)
    }

    pub fn hash_get(&self, name: &str, field: &str) -> Result<Option<String>, WrongType> {
        self.lock().hash_get(name, field, Instant::now())
    }

    pub fn hash_get_all(&self, name: &str) -> Result<HashMap<String, String>, WrongType> {
        self.lock().hash_get_all(name, Instant::now())
    }

    pub fn hash_delete(&self, name: &str, field: &str) -> Result<bool, WrongType> {
        self.write_key(name, |keyspace, now| keyspace.hash_delete(name, field, now), |deleted| deleted == &Ok(true))
    }

    pub fn list_push(&self, name: &str, values: &[&str], end: ListEnd) -> Result<u64, WrongType> {
        self.write_key(name, |keyspace, now| keyspace.list_push(name, values, end, now), Result::is_ok)
    }

    pub fn list_range(&self, name: &str, start: i64, stop: i64) -> Result<Vec<String>, WrongType> {
        self.lock().list_range(name, start, stop, Instant::now())
    }

    pub fn list_pop(&self, name: &str, end: ListEnd) -> Result<Option<String>, WrongType> {
        self.write_key(name, |keyspace, now| keyspace.list_pop(name, end, now), |popped| matches!(popped, Ok(Some(_))))
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
        self.write_key(
            name,
            |keyspace, now| keyspace.list_remove(name, count, value, now),
            |removed| matches!(removed, Ok(count) if *count > 0),
        )
    }

    pub fn list_trim(&self, name: &str, start: i64, stop: i64) -> Result<(), WrongType> {
        self.write_key(name, |keyspace, now| keyspace.list_trim(name, start, stop, now), Result::is_ok)
    }

    /// LPUSH then trim to `max_len`, in one critical section (the Redis side is one script).
    pub fn list_push_capped(&self, name: &str, values: &[&str], max_len: u64) -> Result<(u64, Vec<String>), WrongType> {
        self.write_key(name, |keyspace, now| keyspace.list_push_capped(name, values, max_len, now), Result::is_ok)
    }

    pub fn list_len(&self, name: &str) -> Result<u64, WrongType> {
        self.lock().list_len(name, Instant::now())
    }

    /// Deletes `key` only while it holds `expected` (a lock's compare-and-delete).
    pub fn delete_if_equals(&self, key: &str, expected: &str) -> Result<bool, WrongType> {
        self.write(
            |keyspace, now| keyspace.delete_if_equals(key, expected, now),
            |deleted, _, journal, _| {
                if deleted == &Ok(true) {
                    journal.record_deletion(key);
                }
            },
        )
    }

    /// Sets a new TTL on `key` only while it holds `expected` (a lock's compare-and-pexpire).
    pub fn expire_if_equals(&self, key: &str, expected: &str, ttl: Duration) -> Result<bool, WrongType> {
        self.write(
            |keyspace, now| keyspace.expire_if_equals(key, expected, ttl, now),
            |expired, keyspace, journal, now| {
                if expired == &Ok(true) {
                    record_deadline(keyspace, journal, key, now);
                }
            },
        )
    }

    /// SETBIT to 1 at each offset (Redis's bit layout; see `Keyspace::set_bits` in `keyspace.rs`).
    pub fn set_bits(&self, key: &str, offsets: &[u64]) -> Result<(), WrongType> {
        let now = Instant::now();
        let mut keyspace = self.lock();
        let fresh = !keyspace.is_live(key, now);
        let outcome = keyspace.set_bits(key, offsets, now);
        if let Some(journal) = &self.journal
            && outcome.is_ok()
            && !offsets.is_empty()
        {
            let deadline = keyspace.state_of(key, now).and_then(|(_, at)| at);
            journal.record_bits(key, offsets, fresh, deadline, now);
        }
        outcome
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
        self.write(
            |keyspace, now| keyspace.acquire_fenced(key, counter, identifier, lease, now),
            |acquired, keyspace, journal, now| {
                if matches!(acquired, Ok(Some(_))) {
                    journal.record_state(keyspace, counter, now);
                    journal.record_state(keyspace, key, now);
                }
            },
        )
    }

    /// One SCAN step (see `Keyspace::scan`): at most `count` keys examined under the lock.
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
                for key in &page.keys {
                    if keyspace.remove_live(key, now) {
                        deleted += 1;
                        if let Some(journal) = &self.journal {
                            journal.record_deletion(key);
                        }
                    }
                }
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

/// Records `key`'s deadline as the keyspace now holds it (its deletion when an expiry of 0
/// removed it).
fn record_deadline(keyspace: &Keyspace, journal: &Journal, key: &str, now: Instant) {
    match keyspace.state_of(key, now) {
        Some((_, at)) => journal.record_deadline(key, at, now),
        None => journal.record_deletion(key),
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

/// Which end of a list an operation works on (the seed's `direction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListEnd {
    /// The head: LPUSH, LPOP. Index 0.
    Left,
    /// The tail: RPUSH, RPOP. Index -1.
    Right,
}

/// How long a key has left to live: Redis's -2 / -1 / n, as a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// The key does not exist.
    Missing,
    /// The key exists and never expires.
    NoExpiry,
    /// The key expires after this long (millisecond precision on Redis).
    ExpiresIn(Duration),
}

/// The longest TTL any operation accepts: 2^62 ms, about 146 million years.
///
/// Redis refuses an expiry whose deadline, in Unix milliseconds, does not fit a signed 64-bit
/// integer ("invalid expire time"), a bound that moves with the clock. This one stays below
/// it for the next 146 million years, so every store refuses the same TTLs, and refuses them
/// before any I/O as `CacheErrorKind::InvalidInput` (the `store` crate's).
pub const MAX_TTL: Duration = Duration::from_millis(1 << 62);

/// `from + after`, saturating: when the sum cannot be represented (a "wait forever" such as
/// `Duration::MAX`), about 30 years from `from`, as tokio's own timers do — no process waits
/// that long, and no addition panics. Every deadline built from a caller's duration in the
/// cache stack uses it: lock waits and leases, `get_or_load`'s wait, embedded TTLs.
pub fn saturating_deadline(from: tokio::time::Instant, after: Duration) -> tokio::time::Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);
    from.checked_add(after).unwrap_or_else(|| from + FAR_FUTURE)
}
