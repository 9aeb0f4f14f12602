//! [`NearStore`]: the near cache's memory. A sharded hash map bounded by bytes, where every
//! entry has a lifetime and eviction is CLOCK (second chance: an entry read since it was last
//! looked at survives one more turn).
//!
//! Not a general-purpose cache (moka), because this is the hottest path Tessera has: a read
//! here is one hash, one uncontended lock and one reference-count increment, where moka also
//! records every read in a buffer and replays it into an access-order list (about 12 % of the
//! server's CPU per verified request, docs/PERFORMANCE.md#near-store). The near cache needs no
//! better hit ratio than CLOCK's: its entries live at most `max_ttl` anyway.
//!
//! The store retires every value it lets go of ([`Retire`]): that is what lets a remembered
//! verdict (`verdict.rs`) answer without a lookup. A value here is the crate's `NearEntry`,
//! which keeps its decoded form beside it, so a hit neither copies nor parses.

use std::{
    collections::{HashMap, VecDeque},
    hash::BuildHasher,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use store::{CacheEvent, CacheMetrics};

/// At most this many shards; fewer when the budget is small, so no shard gets under
/// [`MIN_SHARD_BYTES`] (a value bigger than its shard's budget could never stay).
const MAX_SHARDS: usize = 64;
const MIN_SHARD_BYTES: u64 = 64 * 1024;

/// Heap bytes one entry's record costs the store, for the entry's weight: its map bucket and its
/// CLOCK ring record.
pub(crate) const SLOT_BYTES: usize = size_of::<(Arc<str>, Slot<Arc<()>>)>() + 1;
pub(crate) const RING_RECORD_BYTES: usize = size_of::<(Arc<str>, u64)>();

/// A stored value told when the store lets go of it (removed, replaced, evicted, expired,
/// flushed), so a reader that kept a clone can tell it is no longer the key's value.
pub(crate) trait Retire {
    fn retire(&self);
}

pub(crate) struct NearStore<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    hasher: foldhash::fast::FixedState,
    shard_budget: u64,
    metrics: Arc<CacheMetrics>,
}

struct Shard<V> {
    entries: HashMap<Arc<str>, Slot<V>, foldhash::fast::FixedState>,
    /// The CLOCK's ring, oldest first: a key and the sequence number of the slot it was queued
    /// for. A record whose key was removed or stored again since is stale and skipped.
    ring: VecDeque<(Arc<str>, u64)>,
    bytes: u64,
    next_sequence: u64,
}

struct Slot<V> {
    value: V,
    weight: u32,
    expires_at_ms: u64,
    sequence: u64,
    referenced: bool,
}

/// Why an entry left, for the metrics: only evictions and expiries count as evictions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Removal {
    Evicted,
    Expired,
    Dropped,
}

impl<V: Clone + Retire> NearStore<V> {
    pub(crate) fn new(max_bytes: u64, metrics: Arc<CacheMetrics>) -> Self {
        let shards = usize::try_from(max_bytes / MIN_SHARD_BYTES).unwrap_or(MAX_SHARDS).clamp(1, MAX_SHARDS);
        let shards = if shards.is_power_of_two() { shards } else { shards.next_power_of_two() / 2 };
        Self {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: HashMap::with_hasher(foldhash::fast::FixedState::default()),
                        ring: VecDeque::new(),
                        bytes: 0,
                        next_sequence: 0,
                    })
                })
                .collect(),
            hasher: foldhash::fast::FixedState::with_seed(rand::random()),
            shard_budget: max_bytes / shards as u64,
            metrics,
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard<V>> {
        let index = self.hasher.hash_one(key) as usize & (self.shards.len() - 1);
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key`, unless it is absent or its lifetime ended before `now_ms`.
    pub(crate) fn get(&self, key: &str, now_ms: u64) -> Option<V> {
        let mut shard = self.shard(key);
        let slot = shard.entries.get_mut(key)?;
        if slot.expires_at_ms > now_ms {
            // Written only when it changes: a hit on a hot entry leaves its line clean.
            if !slot.referenced {
                slot.referenced = true;
            }
            return Some(slot.value.clone());
        }
        shard.remove(key, Removal::Expired, &self.metrics);
        None
    }

    /// Stores `value` under `key` for `lifetime_ms` from `now_ms`, counting `weight` bytes
    /// against the budget, then evicts from the key's shard until it is within its share.
    /// A value heavier than a shard's budget is not stored (it would empty its shard on every
    /// read): what the key held is dropped, and the refusal counted.
    pub(crate) fn insert(&self, key: &str, value: V, weight: u32, lifetime_ms: u64, now_ms: u64) {
        let mut shard = self.shard(key);
        shard.remove(key, Removal::Dropped, &self.metrics);
        if u64::from(weight) > self.shard_budget {
            value.retire();
            self.metrics.count(CacheEvent::NearTooLarge);
            return;
        }
        let key: Arc<str> = Arc::from(key);
        let sequence = shard.next_sequence;
        shard.next_sequence += 1;
        let expires_at_ms = now_ms.saturating_add(lifetime_ms);
        shard.entries.insert(Arc::clone(&key), Slot { value, weight, expires_at_ms, sequence, referenced: false });
        shard.ring.push_back((key, sequence));
        shard.bytes += u64::from(weight);
        self.metrics.add_near_bytes(u64::from(weight));
        shard.evict_down_to(self.shard_budget, now_ms, &self.metrics);
        shard.compact();
    }

    /// Adds `extra` bytes to the weight of `key`'s entry, if `is_it` says the entry is the one
    /// they belong to (a decoded form made after the insert), and evicts down to the budget.
    pub(crate) fn add_weight(&self, key: &str, is_it: impl Fn(&V) -> bool, extra: u32, now_ms: u64) {
        let mut shard = self.shard(key);
        let Some(slot) = shard.entries.get_mut(key) else { return };
        if !is_it(&slot.value) {
            return;
        }
        slot.weight = slot.weight.saturating_add(extra);
        shard.bytes += u64::from(extra);
        self.metrics.add_near_bytes(u64::from(extra));
        shard.evict_down_to(self.shard_budget, now_ms, &self.metrics);
    }

    pub(crate) fn remove(&self, key: &str) {
        let mut shard = self.shard(key);
        shard.remove(key, Removal::Dropped, &self.metrics);
        shard.compact();
    }

    /// Removes every entry for which `condition` holds.
    pub(crate) fn remove_if(&self, condition: impl Fn(&V) -> bool) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let mut removed = 0;
            shard.entries.retain(|_, slot| {
                let keep = !condition(&slot.value);
                if !keep {
                    removed += u64::from(slot.weight);
                    slot.value.retire();
                }
                keep
            });
            shard.bytes -= removed;
            self.metrics.remove_near_bytes(removed);
            shard.compact();
        }
    }

    pub(crate) fn clear(&self) {
        self.remove_if(|_| true);
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).entries.len()).sum()
    }

    /// Bytes held, by the same count the budget uses.
    #[cfg(test)]
    fn bytes(&self) -> u64 {
        self.shards.iter().map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).bytes).sum()
    }

    #[cfg(test)]
    fn ring_len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).ring.len()).sum()
    }
}

impl<V: Retire> Shard<V> {
    fn remove(&mut self, key: &str, why: Removal, metrics: &CacheMetrics) {
        if let Some(slot) = self.entries.remove(key) {
            slot.value.retire();
            self.bytes -= u64::from(slot.weight);
            metrics.remove_near_bytes(u64::from(slot.weight));
            if why != Removal::Dropped {
                metrics.count(CacheEvent::NearEviction);
            }
        }
    }

    /// Turns the CLOCK's hand: the oldest record goes unless it was read since it was queued,
    /// in which case it is queued again with its mark cleared. Each live entry is passed at most
    /// twice, so this ends.
    fn evict_down_to(&mut self, budget: u64, now_ms: u64, metrics: &CacheMetrics) {
        while self.bytes > budget {
            let Some((key, sequence)) = self.ring.pop_front() else { return };
            let Some(slot) = self.entries.get_mut(&key) else { continue };
            if slot.sequence != sequence {
                continue;
            }
            if slot.referenced && slot.expires_at_ms > now_ms {
                slot.referenced = false;
                self.ring.push_back((key, sequence));
                continue;
            }
            let why = if slot.expires_at_ms > now_ms { Removal::Evicted } else { Removal::Expired };
            self.remove(&key, why, metrics);
        }
    }

    /// Drops stale ring records once they outnumber the live entries, so a key that is stored
    /// and invalidated over and over does not grow the ring.
    fn compact(&mut self) {
        if self.ring.len() > 2 * self.entries.len() + 32 {
            let entries = &self.entries;
            self.ring.retain(|(key, sequence)| entries.get(key).is_some_and(|slot| slot.sequence == *sequence));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    impl Retire for u32 {
        fn retire(&self) {}
    }

    /// A value that remembers being retired.
    #[derive(Clone, Default)]
    struct Watched(Arc<AtomicBool>);

    impl Retire for Watched {
        fn retire(&self) {
            self.0.store(true, Ordering::Release);
        }
    }

    impl Watched {
        fn retired(&self) -> bool {
            self.0.load(Ordering::Acquire)
        }
    }

    /// Every way out of the store retires the value: a reader holding a clone can tell.
    #[test]
    fn every_removal_retires_the_value() {
        let metrics = Arc::new(CacheMetrics::new(std::time::Duration::from_secs(1)));
        let store = NearStore::new(MIN_SHARD_BYTES, metrics);
        let (removed, replaced, expired, flushed, kept) =
            (Watched::default(), Watched::default(), Watched::default(), Watched::default(), Watched::default());
        store.insert("removed", removed.clone(), 10, 1_000, 0);
        store.insert("replaced", replaced.clone(), 10, 1_000, 0);
        store.insert("expired", expired.clone(), 10, 5, 0);
        store.insert("kept", kept.clone(), 10, 1_000, 0);
        store.remove("removed");
        store.insert("replaced", Watched::default(), 10, 1_000, 0);
        assert!(store.get("expired", 10).is_none());
        assert!(removed.retired() && replaced.retired() && expired.retired());
        assert!(!kept.retired(), "a value still stored is not retired");
        store.insert("flushed", flushed.clone(), 10, 1_000, 0);
        store.remove_if(|value| Arc::ptr_eq(&value.0, &flushed.0));
        assert!(flushed.retired() && !kept.retired());
        // Evicted: the budget is one shard's; fill it with unread entries until `kept` goes.
        let mut index = 0;
        while !kept.retired() {
            store.insert(&format!("filler-{index}"), Watched::default(), 4_096, 1_000, 0);
            index += 1;
            assert!(index < 1_000, "the store never evicted");
        }
    }

    fn store(max_bytes: u64) -> (NearStore<u32>, Arc<CacheMetrics>) {
        let metrics = Arc::new(CacheMetrics::new(std::time::Duration::from_secs(1)));
        (NearStore::new(max_bytes, Arc::clone(&metrics)), metrics)
    }

    #[test]
    fn values_live_until_their_lifetime_ends() {
        let (store, metrics) = store(1 << 20);
        store.insert("a", 1, 100, 50, 1_000);
        assert_eq!(store.get("a", 1_049), Some(1));
        assert_eq!(store.get("a", 1_050), None, "expired at 1,000 + 50 ms");
        assert_eq!(store.len(), 0, "an expired entry is removed when found");
        assert_eq!(metrics.snapshot().near_bytes, 0);
    }

    #[test]
    fn bytes_stay_within_the_budget_and_match_the_metric() {
        let (store, metrics) = store(MIN_SHARD_BYTES * 4);
        for index in 0..10_000_u32 {
            store.insert(&format!("key-{index}"), index, 500, 60_000, 0);
        }
        assert!(store.bytes() <= MIN_SHARD_BYTES * 4, "{} bytes held", store.bytes());
        assert!(store.len() > 300, "the budget is used, not emptied: {} entries", store.len());
        assert_eq!(metrics.snapshot().near_bytes, store.bytes());
        assert_eq!(metrics.snapshot().event(CacheEvent::NearEviction), 10_000 - store.len() as u64);
    }

    #[test]
    fn an_entry_read_since_it_was_stored_outlives_one_that_was_not() {
        // One shard of 64 KiB: 100 entries of 600 bytes fill it; the 110 that follow push
        // out the unread ones first.
        let (store, _) = store(MIN_SHARD_BYTES);
        for index in 0..100_u32 {
            store.insert(&format!("key-{index}"), index, 600, 60_000, 0);
        }
        for index in 0..10_u32 {
            assert_eq!(store.get(&format!("key-{index}"), 1), Some(index));
        }
        for index in 100..110_u32 {
            store.insert(&format!("key-{index}"), index, 600, 60_000, 2);
        }
        for index in 0..10_u32 {
            assert_eq!(store.get(&format!("key-{index}"), 3), Some(index), "read entry {index} was evicted");
        }
        assert_eq!(store.get("key-10", 3), None, "the oldest unread entry goes first");
    }

    #[test]
    fn a_key_stored_over_and_over_does_not_grow_the_ring() {
        let (store, _) = store(1 << 20);
        for round in 0..10_000_u32 {
            store.insert("hot", round, 100, 60_000, 0);
            if round % 2 == 0 {
                store.remove("hot");
            }
        }
        assert!(store.ring_len() <= 2 * store.len() + 33, "ring of {} records", store.ring_len());
        assert_eq!(store.bytes(), 100);
    }

    /// A value heavier than a shard's budget would push out every other entry of its shard on
    /// every read: it is refused, counted, and the key's older value is not left behind.
    #[test]
    fn a_value_heavier_than_a_shard_is_not_stored() {
        let (store, metrics) = store(MIN_SHARD_BYTES);
        for index in 0..50_u32 {
            store.insert(&format!("key-{index}"), index, 1_000, 60_000, 0);
        }
        store.insert("big", 1, 10, 60_000, 0);
        let too_heavy = u32::try_from(MIN_SHARD_BYTES).unwrap() + 1;
        store.insert("big", 2, too_heavy, 60_000, 0);
        assert_eq!(store.get("big", 0), None, "neither the heavy value nor the one it replaced");
        assert_eq!(store.len(), 50, "the shard's other entries stay");
        assert_eq!(metrics.snapshot().event(CacheEvent::NearTooLarge), 1);
        assert_eq!(metrics.snapshot().near_bytes, 50_000);
    }

    /// Weight added after the insert (a decoded form) counts, goes with the entry, and evicts
    /// others when the shard goes over; it is not added to a newer value of the key.
    #[test]
    fn weight_added_later_counts_against_the_budget() {
        let (store, metrics) = store(MIN_SHARD_BYTES);
        for index in 0..60_u32 {
            store.insert(&format!("key-{index}"), index, 1_000, 60_000, 0);
        }
        store.add_weight("key-0", |value| *value == 0, 10_000, 0);
        assert!(store.bytes() <= MIN_SHARD_BYTES, "{} bytes held", store.bytes());
        assert_eq!(metrics.snapshot().near_bytes, store.bytes());
        store.insert("key-1", 100, 1_000, 60_000, 0);
        let before = store.bytes();
        store.add_weight("key-1", |value| *value == 1, 10_000, 0);
        assert_eq!(store.bytes(), before, "the decoded form of a replaced value");
    }

    #[test]
    fn remove_if_keeps_the_others_and_the_byte_count() {
        let (store, metrics) = store(1 << 20);
        for index in 0..100_u32 {
            store.insert(&format!("key-{index}"), index, 10, 60_000, 0);
        }
        store.remove_if(|value| value % 2 == 0);
        assert_eq!(store.len(), 50);
        assert_eq!(store.get("key-3", 0), Some(3));
        assert_eq!(store.get("key-4", 0), None);
        assert_eq!(metrics.snapshot().near_bytes, 500);
        store.clear();
        assert_eq!((store.len(), metrics.snapshot().near_bytes), (0, 0));
    }
}
