//! [`PrimaryGate`]: while the Redis primary is changing, commands are refused at once instead of
//! reaching a node that is about to stop being the primary (docs/SENTINEL.md).
//!
//! Whoever follows the primary (infra's sentinel watcher) closes the gate when a failover
//! starts and opens it once every pooled connection is on the new primary. A `READONLY` reply
//! (a write that reached a replica) closes it as well and asks the follower to check where the
//! connections are: the write was refused by Redis, so nothing was acknowledged, and further
//! writes are not sent to the replica meanwhile.
//!
//! `CacheStore::run` (`pool.rs`) asks the gate before every command of a pool given one
//! ([`crate::RedisPool::with_primary_gate`]) and reports each `READONLY` reply to it.

use std::{
    fmt,
    sync::atomic::{AtomicU8, Ordering},
};

use tokio::sync::Notify;

/// Why the gate is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateClosed {
    /// The sentinels announced a failover of this primary.
    Failover,
    /// A command was refused with `READONLY`: a connection reached a replica.
    ReadOnlyReply,
}

impl GateClosed {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failover => "a failover of the Redis primary is in progress",
            Self::ReadOnlyReply => "a Redis connection reached a replica (READONLY); reconnecting to the primary",
        }
    }
}

const OPEN: u8 = 0;
const FAILOVER: u8 = 1;
const READ_ONLY: u8 = 2;

/// Shared by the cache client (which asks it before every Redis command) and the follower
/// (which opens and closes it). Open when made.
#[derive(Default)]
pub struct PrimaryGate {
    state: AtomicU8,
    /// Woken when a `READONLY` reply was seen.
    read_only_seen: Notify,
}

impl fmt::Debug for PrimaryGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrimaryGate").field("closed", &self.closed()).finish()
    }
}

impl PrimaryGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// `None` when commands may go through; otherwise why not.
    pub fn closed(&self) -> Option<GateClosed> {
        match self.state.load(Ordering::Acquire) {
            OPEN => None,
            FAILOVER => Some(GateClosed::Failover),
            _ => Some(GateClosed::ReadOnlyReply),
        }
    }

    pub fn close(&self, why: GateClosed) {
        let state = match why {
            GateClosed::Failover => FAILOVER,
            GateClosed::ReadOnlyReply => READ_ONLY,
        };
        self.state.store(state, Ordering::Release);
    }

    pub fn open(&self) {
        self.state.store(OPEN, Ordering::Release);
    }

    /// A command was refused with `READONLY`: closes the gate and wakes the follower.
    pub fn report_read_only(&self) {
        if self.state.compare_exchange(OPEN, READ_ONLY, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            tracing::warn!(
                "a Redis command reached a replica (READONLY): refusing commands until the primary is found"
            );
        }
        self.read_only_seen.notify_one();
    }

    /// Resolves when a `READONLY` reply has been reported (also one reported before the call).
    pub async fn read_only_reported(&self) {
        self.read_only_seen.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn closes_and_opens() {
        let gate = PrimaryGate::new();
        assert_eq!(gate.closed(), None);
        gate.close(GateClosed::Failover);
        assert_eq!(gate.closed(), Some(GateClosed::Failover));
        // A READONLY reply during a failover keeps the failover as the reason.
        gate.report_read_only();
        assert_eq!(gate.closed(), Some(GateClosed::Failover));
        gate.open();
        assert_eq!(gate.closed(), None);
    }

    #[tokio::test]
    async fn a_read_only_reply_wakes_the_follower_even_if_reported_first() {
        let gate = PrimaryGate::new();
        gate.report_read_only();
        assert_eq!(gate.closed(), Some(GateClosed::ReadOnlyReply));
        tokio::time::timeout(Duration::from_secs(1), gate.read_only_reported())
            .await
            .expect("the report made before waiting is kept");
    }
}
