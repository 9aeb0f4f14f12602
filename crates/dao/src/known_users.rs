//! [`KnownUsers`]: stored entry → its user, for entries seen verified, so a later verification
//! can read the token and its user's list in one round trip (`verify.rs`).
//!
//! A token's user never changes, so nothing here needs invalidating: a remembered user only
//! names the list to read, and every answer is still checked against the `user_id` the token
//! key holds. What it must be is bounded and cheap, since a verification on Redis without the
//! near cache reads it every time: a sharded map, one hash and one uncontended lock per read,
//! and when a shard is full an arbitrary entry makes room (its order of iteration, which for
//! random tokens under a seeded hash is as good as a random pick). Not a general-purpose cache
//! such as moka, whose reads also feed an access-order list: that would cost 3–4 % of the
//! server's CPU on this path (docs/PERFORMANCE.md#known-users).

use std::{
    collections::HashMap,
    hash::BuildHasher,
    sync::{Mutex, PoisonError},
};

use crate::UserId;

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<Box<str>, UserId, foldhash::fast::RandomState>>;

pub(crate) struct KnownUsers {
    shards: Box<[Shard]>,
    /// Keys come from clients (tokens), so the hash is seeded per process.
    hasher: foldhash::fast::RandomState,
    per_shard: usize,
}

impl std::fmt::Debug for KnownUsers {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("KnownUsers").field("capacity", &(self.per_shard * SHARDS)).finish_non_exhaustive()
    }
}

impl KnownUsers {
    /// A map of at most `capacity` entries (rounded up to a multiple of the shard count).
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::default())).collect();
        Self { shards, hasher: foldhash::fast::RandomState::default(), per_shard }
    }

    pub(crate) fn get(&self, entry: &str) -> Option<UserId> {
        self.shard(entry).lock().unwrap_or_else(PoisonError::into_inner).get(entry).cloned()
    }

    pub(crate) fn insert(&self, entry: &str, user: &UserId) {
        let mut shard = self.shard(entry).lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = shard.get_mut(entry) {
            if known != user {
                user.clone_into(known);
            }
            return;
        }
        if shard.len() >= self.per_shard {
            let arbitrary = shard.keys().next().cloned();
            if let Some(arbitrary) = arbitrary {
                shard.remove(&arbitrary);
            }
        }
        shard.insert(entry.into(), user.clone());
    }

    fn shard(&self, entry: &str) -> &Shard {
        // The high bits pick the shard; the map inside uses the low ones.
        let index = (self.hasher.hash_one(entry) >> 32) as usize % SHARDS;
        &self.shards[index]
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_corrects_a_user() {
        let known = KnownUsers::new(100);
        assert_eq!(known.get("a"), None);
        known.insert("a", &UserId::Integer(7));
        assert_eq!(known.get("a"), Some(UserId::Integer(7)));
        known.insert("a", &UserId::Text("seven".to_owned()));
        assert_eq!(known.get("a"), Some(UserId::Text("seven".to_owned())));
        assert_eq!(known.len(), 1);
    }

    #[test]
    fn stays_within_its_bound() {
        let known = KnownUsers::new(64);
        for n in 0..10_000 {
            known.insert(&format!("entry-{n}"), &UserId::Integer(n));
        }
        assert!(known.len() <= 64, "{} entries", known.len());
        // The newest entry is always kept.
        assert_eq!(known.get("entry-9999"), Some(UserId::Integer(9999)));
    }
}
