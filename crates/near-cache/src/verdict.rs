//! Remembered list-membership verdicts ([`ListVerdict`]): "is this token in its user's list",
//! answered again without a lookup while the list it was read from is unchanged and servable.
//!
//! A verdict read from the near cache holds until its list entry is retired (invalidated,
//! replaced, evicted or flushed: `entries.rs` retires every value it lets go of), expires, or
//! its connection stops vouching for it (a new epoch, or no heartbeat within `max_silence`). On
//! the embedded store it holds an [`EmbeddedVerdict`] instead, which holds until the list
//! changes, goes or expires.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use store::{CacheEvent, embedded::EmbeddedVerdict};
use tokio::time::Instant;

use crate::{NearCache, NearValue, connection::ConnectionState};

/// A list-membership verdict remembered against the list it was read from: the near cache's
/// entry for the list, or the embedded store's list itself. While that list is unchanged and
/// may still be served, asking again answers from here without a lookup. Whoever asks the
/// same question over and over (the DAO, for a token and its user's list) keeps one and
/// passes it to `cache-toolkit`'s `CacheClient::list_contains_remembered`.
#[derive(Debug, Default)]
pub struct ListVerdict {
    remembered: Mutex<Option<Remembered>>,
}

#[derive(Debug)]
pub(crate) enum Remembered {
    /// Read from a near-cache entry of the list.
    Near(NearVerdict),
    /// Read from the embedded store's list.
    Embedded(EmbeddedVerdict),
}

/// A verdict read from a near-cache list entry, with what tells whether that entry may still be
/// served, and nothing else of it: holding the entry itself would keep its items alive after
/// the store let it go, outside the budget (a user with many sessions, each remembering a
/// version of the list).
#[derive(Debug)]
pub(crate) struct NearVerdict {
    retired: Arc<AtomicBool>,
    connection: Arc<ConnectionState>,
    epoch: u64,
    expires_at_ms: u64,
    listed: bool,
}

impl ListVerdict {
    /// The embedded store's verdict, if one is remembered and still holds at `now`.
    pub fn embedded(&self, now: Instant) -> Option<bool> {
        match &*self.remembered.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Some(Remembered::Embedded(verdict)) => verdict.still(now),
            _ => None,
        }
    }

    pub fn remember_embedded(&self, verdict: EmbeddedVerdict) {
        *self.remembered.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Remembered::Embedded(verdict));
    }
}

impl NearCache {
    pub fn remembered_verdict(&self, memo: &ListVerdict) -> Option<bool> {
        let remembered = memo.remembered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(Remembered::Near(verdict)) = remembered.as_ref() else { return None };
        let now_ms = self.now_ms();
        let state = &verdict.connection;
        let servable = !verdict.retired.load(Ordering::Acquire)
            && verdict.expires_at_ms > now_ms
            && verdict.epoch == state.epoch.load(Ordering::Acquire)
            && self.serves(state, now_ms);
        let listed = verdict.listed;
        drop(remembered);
        servable.then(|| {
            self.metrics.count(CacheEvent::NearHit);
            listed
        })
    }

    pub fn remember_verdict(&self, key: &str, element: &str, memo: &ListVerdict) {
        let Some(entry) = self.servable(key) else { return };
        let NearValue::List(items) = &entry.value else { return };
        let listed = items.iter().any(|item| item == element);
        let verdict = NearVerdict {
            retired: Arc::clone(&entry.retired),
            connection: Arc::clone(&entry.connection),
            epoch: entry.epoch,
            expires_at_ms: entry.expires_at_ms,
            listed,
        };
        *memo.remembered.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Remembered::Near(verdict));
    }
}
