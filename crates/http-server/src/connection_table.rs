//! [`ConnectionTable`]: every open connection, its peer, and whether it is idle — so that idle
//! keep-alive connections cannot lock new clients out.
//!
//! - At `TESSERA_MAX_CONNECTIONS` the connection idle longest (between requests, nothing in
//!   flight, no byte of a next head received) is told to close, and the new client takes its
//!   slot; only while every connection is busy do new ones wait in the accept backlog.
//! - At `TESSERA_MAX_CONNECTIONS_PER_IP` the peer's own longest-idle connection is closed for
//!   the new one; when none of the peer's connections is idle, the new one is refused.
//!
//! A connection told to close ends at its next idle read (the stream reads end-of-file there,
//! `connection::WatchedStream`), so hyper closes it as a client would: a request already in
//! flight is answered first, and none is cut halfway. The table's lock is taken on accept, on
//! close and to pick a connection to close — never per request: the per-request state is two
//! atomics in each [`Tracked`].

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Instant,
};

use futures::task::AtomicWaker;

/// The open connections.
#[derive(Debug)]
pub(crate) struct ConnectionTable {
    open: Mutex<Open>,
    max_per_peer: usize,
    /// What idle stamps count from.
    epoch: Instant,
}

#[derive(Debug, Default)]
struct Open {
    by_id: HashMap<u64, Arc<Tracked>>,
    per_peer: HashMap<IpAddr, usize>,
    next_id: u64,
}

/// One open connection's state, shared between the table and the connection's stream.
#[derive(Debug)]
pub(crate) struct Tracked {
    peer: IpAddr,
    /// 0 while busy (a request in flight, or bytes of a head arrived); otherwise when it last
    /// became idle, in nanoseconds after the table's epoch, plus one.
    idle_since: AtomicU64,
    /// Set when the table wants it closed at its next idle read.
    close: AtomicBool,
    /// The connection's reader, woken when `close` is set.
    waker: AtomicWaker,
    epoch: Instant,
}

impl Tracked {
    /// The connection now waits for its next request (a response is out, or it was just
    /// accepted).
    pub(crate) fn mark_idle(&self) {
        let since = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        self.idle_since.store(since, Ordering::Relaxed);
    }

    /// A request (or the first byte of its head) arrived.
    pub(crate) fn mark_busy(&self) {
        self.idle_since.store(0, Ordering::Relaxed);
    }

    /// Whether the table asked this connection to close; registers `waker` to be woken when it
    /// does (so a reader waiting for a next request learns of it).
    pub(crate) fn close_requested(&self, waker: &std::task::Waker) -> bool {
        self.waker.register(waker);
        self.close.load(Ordering::Acquire)
    }

    fn request_close(&self) {
        self.close.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Told to close while idle: it ends at its next read.
    fn is_ending(&self) -> bool {
        self.close.load(Ordering::Relaxed) && self.idle_since.load(Ordering::Relaxed) != 0
    }

    fn idle_since(&self) -> Option<u64> {
        let since = self.idle_since.load(Ordering::Relaxed);
        (since != 0 && !self.close.load(Ordering::Relaxed)).then_some(since)
    }
}

/// Why a new connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its peer holds `TESSERA_MAX_CONNECTIONS_PER_IP` connections, none of them idle.
    PeerFull,
}

/// A connection's place in the table, released when dropped.
#[derive(Debug)]
pub(crate) struct TableEntry {
    table: Arc<ConnectionTable>,
    id: u64,
    tracked: Arc<Tracked>,
}

impl TableEntry {
    pub(crate) fn tracked(&self) -> &Arc<Tracked> {
        &self.tracked
    }
}

impl Drop for TableEntry {
    fn drop(&mut self) {
        let mut open = self.table.lock();
        open.by_id.remove(&self.id);
        if let Some(count) = open.per_peer.get_mut(&self.tracked.peer) {
            *count -= 1;
            if *count == 0 {
                open.per_peer.remove(&self.tracked.peer);
            }
        }
    }
}

impl ConnectionTable {
    /// A table for at most `max_total` connections, `max_per_peer` of one peer. A peer's cap
    /// at the total is no cap of its own: at the total, new connections wait for a slot rather
    /// than being refused.
    pub(crate) fn new(max_per_peer: usize, max_total: usize) -> Arc<Self> {
        let max_per_peer = if max_per_peer >= max_total { usize::MAX } else { max_per_peer };
        Arc::new(Self { open: Mutex::default(), max_per_peer, epoch: Instant::now() })
    }

    /// Admits a connection from `peer`, busy until it starts being served (so one waiting for
    /// a slot is never picked to make room): at the peer's cap its longest-idle connection is
    /// told to close first (`true` in the answer), or, none being idle, the new one is refused.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<(TableEntry, bool), Refused> {
        let mut open = self.lock();
        let mut closed_one = false;
        if open.per_peer.get(&peer).copied().unwrap_or(0) >= self.max_per_peer {
            match longest_idle(&open, Some(peer)) {
                Some(tracked) => {
                    tracked.request_close();
                    closed_one = true;
                }
                None => return Err(Refused::PeerFull),
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let tracked = Arc::new(Tracked {
            peer,
            idle_since: AtomicU64::new(0),
            close: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            epoch: self.epoch,
        });
        open.by_id.insert(id, Arc::clone(&tracked));
        *open.per_peer.entry(peer).or_default() += 1;
        Ok((TableEntry { table: Arc::clone(self), id, tracked }, closed_one))
    }

    /// Tells the connection idle longest to close, unless one told before is idle and about to
    /// end (its slot is about to come free; one told while it turned busy ends only after its
    /// answer, so it does not count). `true` when a connection was told now.
    pub(crate) fn close_longest_idle(&self) -> bool {
        let open = self.lock();
        if open.by_id.values().any(|tracked| tracked.is_ending()) {
            return false;
        }
        match longest_idle(&open, None) {
            Some(tracked) => {
                tracked.request_close();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // The table holds counts and handles only; a panic while it was locked left them whole.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The idle connection with the oldest idle stamp, of `peer` when given.
fn longest_idle(open: &Open, peer: Option<IpAddr>) -> Option<&Arc<Tracked>> {
    open.by_id
        .values()
        .filter(|tracked| peer.is_none_or(|peer| tracked.peer == peer))
        .filter_map(|tracked| tracked.idle_since().map(|since| (since, tracked)))
        .min_by_key(|(since, _)| *since)
        .map(|(_, tracked)| tracked)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    fn closing(entry: &TableEntry) -> bool {
        entry.tracked.close.load(Ordering::Relaxed)
    }

    #[test]
    fn the_longest_idle_connection_is_closed_first_and_busy_ones_never() {
        let table = ConnectionTable::new(100, 1_000);
        let (first, _) = table.admit(A).unwrap();
        let (second, _) = table.admit(B).unwrap();
        let (third, _) = table.admit(A).unwrap();
        first.tracked().mark_busy();
        second.tracked().mark_idle();
        third.tracked().mark_idle();
        assert!(table.close_longest_idle());
        assert!(!closing(&first), "busy");
        assert!(closing(&second), "idle longest");
        assert!(!closing(&third));
        assert!(!table.close_longest_idle(), "one is closing already: its slot is about to come free");
        second.tracked().mark_busy();
        assert!(table.close_longest_idle(), "the one told to close turned busy: it ends only after its answer");
        assert!(closing(&third));
        drop(second);
        drop(third);
        let (third, _) = table.admit(A).unwrap();
        third.tracked().mark_idle();
        assert!(table.close_longest_idle());
        assert!(closing(&third));
        drop(third);
        let (waiting, _) = table.admit(B).unwrap();
        assert!(!table.close_longest_idle(), "nothing idle: a connection waiting for its slot is not idle");
        assert!(!closing(&first) && !closing(&waiting));
    }

    #[test]
    fn a_peer_at_its_cap_gives_up_its_own_idle_connection_or_is_refused() {
        let table = ConnectionTable::new(2, 1_000);
        let (one, _) = table.admit(A).unwrap();
        let (two, _) = table.admit(A).unwrap();
        let (other, _) = table.admit(B).unwrap();
        other.tracked().mark_idle();
        assert_eq!(table.admit(A).map(drop), Err(Refused::PeerFull), "both busy");
        two.tracked().mark_idle();
        let (three, closed_one) = table.admit(A).unwrap();
        assert!(closed_one && closing(&two), "the peer's idle one makes room");
        assert!(!closing(&other), "another peer's connection is never closed for it");
        drop(two);
        drop(three);
        drop(one);
        assert!(!table.lock().per_peer.contains_key(&A), "counts go back to nothing");
    }
}
