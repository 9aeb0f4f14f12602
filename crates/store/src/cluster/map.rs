//! The slot map and the set of primary pools, as pure state: no I/O, no clock. `cluster.rs`
//! feeds them what Redis answered and what the connections did, and carries out what they
//! return. Kept pure so that the rules below are checked over random event sequences
//! (`tests`), not only over the few a live cluster happens to produce:
//!
//! - a slot is routed only to a primary the latest map names ([`SlotMap::owner`]);
//! - a primary that lost a slot is reported ([`MapChange::shrunk`]), so what its connections
//!   vouched for in the near cache is dropped: a key of a moved slot may be written on its new
//!   owner, which never tells the old one's tracking connections;
//! - every primary the map names has a pool that is connected, connecting, or due to be rebuilt
//!   after a failed connection ([`PoolSet`]): a pool never stays dead;
//! - a primary that starts migrating a slot away is reported like one that lost it
//!   ([`migrating_out`], [`ranges_without`]): while the slot migrates, its new keys are created
//!   on the importing node.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use fred::types::{cluster::SlotRange, config::Server};

use super::SLOTS;

/// Marks a slot no primary serves in [`SlotMap::owners`].
const NO_OWNER: u16 = u16::MAX;
/// The first wait before a pool whose connection failed is rebuilt; it doubles per failure.
const REBUILD_FIRST_WAIT: Duration = Duration::from_millis(100);
/// The longest wait between two rebuilds of a pool that keeps failing.
const REBUILD_LONGEST_WAIT: Duration = Duration::from_secs(5);

/// Which primary serves each slot.
#[derive(Clone, Debug)]
pub(super) struct SlotMap {
    /// Index into `primaries` per slot, [`NO_OWNER`] where none serves it.
    owners: Box<[u16]>,
    primaries: Vec<Primary>,
}

/// One primary and the slot ranges it serves (first and last slot, inclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Primary {
    pub(super) server: Server,
    pub(super) slots: Vec<(u16, u16)>,
}

/// How the primaries changed from one map to the next.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct MapChange {
    /// Primaries the new map names and the old did not.
    pub(super) joined: Vec<Server>,
    /// Primaries the old map named and the new does not.
    pub(super) left: Vec<Server>,
    /// Primaries in both maps that serve a slot less (or another set of slots) now.
    pub(super) shrunk: Vec<Server>,
}

impl MapChange {
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.joined.is_empty() && self.left.is_empty() && self.shrunk.is_empty()
    }
}

impl SlotMap {
    /// The map `ranges` describe (a `CLUSTER SLOTS` answer). A slot named twice goes to the
    /// later range, as Redis's own clients read it.
    pub(super) fn from_ranges(ranges: &[SlotRange]) -> Self {
        let mut owners = vec![NO_OWNER; SLOTS].into_boxed_slice();
        let mut primaries: Vec<Primary> = Vec::new();
        for range in ranges {
            let index = match primaries.iter().position(|primary| primary.server == range.primary) {
                Some(index) => index,
                None => {
                    primaries.push(Primary { server: range.primary.clone(), slots: Vec::new() });
                    primaries.len() - 1
                }
            };
            let (start, end) = (usize::from(range.start), usize::from(range.end).min(SLOTS - 1));
            if start > end {
                continue;
            }
            primaries[index].slots.push((range.start, range.end.min((SLOTS - 1) as u16)));
            owners[start..=end].fill(u16::try_from(index).unwrap_or(NO_OWNER));
        }
        Self { owners, primaries }
    }

    /// The primary serving `slot`, and its index in [`Self::primaries`].
    pub(super) fn owner(&self, slot: u16) -> Option<(usize, &Server)> {
        let owner = *self.owners.get(usize::from(slot))?;
        let primary = self.primaries.get(usize::from(owner))?;
        Some((usize::from(owner), &primary.server))
    }

    pub(super) fn primaries(&self) -> &[Primary] {
        &self.primaries
    }

    /// Whether `other` routes every slot to the same server.
    pub(super) fn routes_like(&self, other: &Self) -> bool {
        self.owners.iter().zip(other.owners.iter()).all(|(&mine, &theirs)| {
            match (self.primaries.get(usize::from(mine)), other.primaries.get(usize::from(theirs))) {
                (Some(mine), Some(theirs)) => mine.server == theirs.server,
                (None, None) => true,
                _ => false,
            }
        })
    }

    /// What changed from this map to `next`.
    pub(super) fn change_to(&self, next: &Self) -> MapChange {
        let named = |map: &Self, server: &Server| map.primaries.iter().any(|primary| primary.server == *server);
        let joined = next.primaries.iter().filter(|p| !named(self, &p.server)).map(|p| p.server.clone()).collect();
        let left = self.primaries.iter().filter(|p| !named(next, &p.server)).map(|p| p.server.clone()).collect();
        let mut shrunk: Vec<Server> = Vec::new();
        for (slot, &owner) in self.owners.iter().enumerate() {
            let Some(before) = self.primaries.get(usize::from(owner)) else { continue };
            let after = next.primaries.get(usize::from(next.owners[slot]));
            if after.is_none_or(|after| after.server != before.server)
                && named(next, &before.server)
                && !shrunk.contains(&before.server)
            {
                shrunk.push(before.server.clone());
            }
        }
        MapChange { joined, left, shrunk }
    }
}

/// The health of each primary's pool, as the cluster router sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PoolHealth {
    /// Built; its first connection is not up yet.
    Connecting,
    Connected,
    /// Its connection task ended without a connection (fred gives a pool up after a failed
    /// first connection in some configurations): rebuilt at `rebuild_at`.
    Failed {
        failures: u32,
        rebuild_at: Instant,
    },
}

/// What the router must do to the pools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PoolAction {
    /// Build a pool for a primary that has none.
    Open(Server),
    /// Close the pool of a server that is no longer a primary.
    Close(Server),
    /// Replace a failed pool with a fresh one.
    Rebuild(Server),
}

/// One pool per primary the map names, and how each is doing.
#[derive(Debug, Default)]
pub(super) struct PoolSet {
    health: HashMap<Server, PoolHealth>,
}

impl PoolSet {
    /// Pools for the primaries `map` names: opens the missing ones, closes the others.
    pub(super) fn follow(&mut self, map: &SlotMap) -> Vec<PoolAction> {
        let mut actions = Vec::new();
        let named: Vec<&Server> = map.primaries.iter().map(|primary| &primary.server).collect();
        self.health.retain(|server, _| {
            let keep = named.contains(&server);
            if !keep {
                actions.push(PoolAction::Close(server.clone()));
            }
            keep
        });
        for server in named {
            if !self.health.contains_key(server) {
                self.health.insert(server.clone(), PoolHealth::Connecting);
                actions.push(PoolAction::Open(server.clone()));
            }
        }
        actions
    }

    /// The pool of `server` has a connection up.
    pub(super) fn connected(&mut self, server: &Server) {
        if let Some(health) = self.health.get_mut(server) {
            *health = PoolHealth::Connected;
        }
    }

    /// The pool of `server` lost its connection task without a connection: it is rebuilt
    /// after a wait that doubles with each failure in a row.
    pub(super) fn failed(&mut self, server: &Server, now: Instant) {
        if let Some(health) = self.health.get_mut(server) {
            let failures = match *health {
                PoolHealth::Failed { failures, .. } => failures.saturating_add(1),
                PoolHealth::Connecting | PoolHealth::Connected => 1,
            };
            let wait = REBUILD_FIRST_WAIT.saturating_mul(2_u32.saturating_pow(failures - 1)).min(REBUILD_LONGEST_WAIT);
            *health = PoolHealth::Failed { failures, rebuild_at: now + wait };
        }
    }

    /// The pools due to be rebuilt at `now`; each is connecting again from then.
    pub(super) fn tick(&mut self, now: Instant) -> Vec<PoolAction> {
        let mut actions = Vec::new();
        for (server, health) in &mut self.health {
            if let PoolHealth::Failed { failures, rebuild_at } = *health
                && rebuild_at <= now
            {
                // Still counted as failing: a rebuilt pool that fails again waits longer.
                *health = PoolHealth::Failed { failures, rebuild_at: now + REBUILD_LONGEST_WAIT };
                actions.push(PoolAction::Rebuild(server.clone()));
            }
        }
        actions
    }

    /// A rebuilt pool is connecting (its failure count is kept until it connects).
    pub(super) fn rebuilt(&mut self, server: &Server, now: Instant) {
        if let Some(PoolHealth::Failed { failures, .. }) = self.health.get(server).copied() {
            let wait = REBUILD_FIRST_WAIT.saturating_mul(2_u32.saturating_pow(failures)).min(REBUILD_LONGEST_WAIT);
            self.health.insert(server.clone(), PoolHealth::Failed { failures, rebuild_at: now + wait });
        }
    }

    #[cfg(test)]
    pub(super) fn health(&self, server: &Server) -> Option<PoolHealth> {
        self.health.get(server).copied()
    }
}

/// The slots the node that answered `cluster_nodes` (its `CLUSTER NODES`) is migrating to
/// another node: the `[slot->-node id]` markers on its own line (flagged `myself`), which only
/// the node migrating a slot shows.
pub(super) fn migrating_out(cluster_nodes: &str) -> Vec<u16> {
    let Some(myself) = cluster_nodes
        .lines()
        .find(|line| line.split_whitespace().nth(2).is_some_and(|flags| flags.split(',').any(|flag| flag == "myself")))
    else {
        return Vec::new();
    };
    let mut slots: Vec<u16> = myself
        .split_whitespace()
        .skip(8)
        .filter_map(|field| field.strip_prefix('[')?.split_once("->-")?.0.parse().ok())
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots
}

/// `ranges` (first and last slot, inclusive) without `slots` (sorted).
pub(super) fn ranges_without(ranges: &[(u16, u16)], slots: &[u16]) -> Vec<(u16, u16)> {
    let mut left = Vec::with_capacity(ranges.len() + slots.len());
    for &(first, last) in ranges {
        // The first slot not yet placed, one past `u16::MAX` once all are.
        let mut start = u32::from(first);
        for &slot in slots.iter().filter(|slot| (first..=last).contains(*slot)) {
            if u32::from(slot) > start {
                left.push((u16::try_from(start).unwrap_or(slot), slot - 1));
            }
            start = u32::from(slot) + 1;
        }
        if start <= u32::from(last) {
            left.push((u16::try_from(start).unwrap_or(last), last));
        }
    }
    left
}

/// How many connections each of `primaries` gets from a pool of `connections`: shared out,
/// rounded up, at least one each. Each fred client runs one task that sends and flushes;
/// a pool of that size on every primary would multiply those tasks by the number of primaries,
/// each handed fewer commands per wake-up to write in one go, which costs CPU on both sides
/// (docs/CLUSTER.md#connections).
pub(super) fn connections_per_primary(connections: usize, primaries: usize) -> usize {
    connections.div_ceil(primaries.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_pool_is_shared_out_among_the_primaries_with_at_least_one_connection_each() {
        assert_eq!(connections_per_primary(2, 3), 1);
        assert_eq!(connections_per_primary(4, 3), 2);
        assert_eq!(connections_per_primary(6, 3), 2);
        assert_eq!(connections_per_primary(8, 1), 8);
        assert_eq!(connections_per_primary(1, 12), 1);
        assert_eq!(connections_per_primary(3, 0), 3);
    }

    /// `CLUSTER NODES` as a primary migrating slots 93 and 5000 answers it (an importing
    /// node's `[slot-<-id]` markers and other nodes' lines do not count).
    #[test]
    fn the_slots_a_node_migrates_away_are_read_from_its_own_line() {
        let answer = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,,shard-id=69bc slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002,,shard-id=114f master - 0 1426238316232 2 connected 5461-10922 [7000-<-292f8b365bb7edb5e285caf0b7e6ddc7265a2f4a]
292f8b365bb7edb5e285caf0b7e6ddc7265a2f4a 127.0.0.1:30001@31001,,shard-id=58fe myself,master - 0 0 1 connected 0-5460 [93->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1] [5000->-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca] [17-<-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
";
        assert_eq!(migrating_out(answer), vec![93, 5000]);
        let settled = answer.replace(
            " [93->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1] [5000->-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]",
            "",
        );
        assert_eq!(migrating_out(&settled), Vec::<u16>::new());
        assert_eq!(migrating_out(""), Vec::<u16>::new());
    }

    #[test]
    fn ranges_without_slots_keep_every_other_slot() {
        assert_eq!(ranges_without(&[(0, 5460)], &[93, 5000]), vec![(0, 92), (94, 4999), (5001, 5460)]);
        assert_eq!(ranges_without(&[(0, 10), (20, 30)], &[0, 10, 25, 40]), vec![(1, 9), (20, 24), (26, 30)]);
        assert_eq!(ranges_without(&[(5, 5)], &[5]), vec![]);
        assert_eq!(ranges_without(&[(16_380, 16_383)], &[16_383]), vec![(16_380, 16_382)]);
        assert_eq!(ranges_without(&[(0, 3)], &[]), vec![(0, 3)]);
    }

    proptest! {
        /// A slot is in the result exactly when it is in a range and not removed.
        #[test]
        fn ranges_without_is_set_difference(
            cuts in proptest::collection::btree_set(0_u16..200, 0..20),
            removed in proptest::collection::btree_set(0_u16..200, 0..20),
        ) {
            let cuts: Vec<u16> = cuts.into_iter().collect();
            let ranges: Vec<(u16, u16)> = cuts.chunks(2).filter(|pair| pair.len() == 2).map(|pair| (pair[0], pair[1])).collect();
            let removed: Vec<u16> = removed.into_iter().collect();
            let left = ranges_without(&ranges, &removed);
            for slot in 0_u16..200 {
                let expected = ranges.iter().any(|&(first, last)| (first..=last).contains(&slot)) && !removed.contains(&slot);
                let kept = left.iter().any(|&(first, last)| (first..=last).contains(&slot));
                prop_assert_eq!(kept, expected, "slot {}", slot);
            }
        }
    }

    fn range(start: u16, end: u16, port: u16) -> SlotRange {
        SlotRange { start, end, primary: Server::new("127.0.0.1", port), id: "id".into() }
    }

    /// A map over servers 7000..7000+`servers`: `cuts` split the slots into ranges, each owned
    /// by the server `owners` picks.
    fn map_from(cuts: &[u16], owners: &[u8], servers: u16) -> (SlotMap, Vec<SlotRange>) {
        let mut bounds: Vec<u16> = cuts.iter().map(|cut| cut % SLOTS as u16).collect();
        bounds.sort_unstable();
        bounds.dedup();
        let mut ranges = Vec::new();
        let mut start = 0_u16;
        for (index, &cut) in bounds.iter().chain(std::iter::once(&(SLOTS as u16))).enumerate() {
            if cut <= start {
                continue;
            }
            let owner = owners.get(index).copied().unwrap_or(0);
            // Owner 255 leaves the range unserved (a dead primary not replaced yet).
            if owner != 255 {
                ranges.push(range(start, cut - 1, 7000 + u16::from(owner) % servers));
            }
            start = cut;
        }
        (SlotMap::from_ranges(&ranges), ranges)
    }

    #[test]
    fn a_map_routes_each_slot_to_the_range_naming_it() {
        let ranges = [range(0, 5_460, 7000), range(5_461, 10_922, 7001), range(10_923, 16_383, 7002)];
        let map = SlotMap::from_ranges(&ranges);
        assert_eq!(map.owner(0).map(|(_, server)| server.port), Some(7000));
        assert_eq!(map.owner(5_461).map(|(_, server)| server.port), Some(7001));
        assert_eq!(map.owner(16_383).map(|(_, server)| server.port), Some(7002));
        let promoted =
            SlotMap::from_ranges(&[range(0, 5_460, 7000), range(5_461, 10_922, 7004), range(10_923, 16_383, 7002)]);
        assert!(!map.routes_like(&promoted));
        let change = map.change_to(&promoted);
        assert_eq!(change.joined, vec![Server::new("127.0.0.1", 7004)]);
        assert_eq!(change.left, vec![Server::new("127.0.0.1", 7001)]);
        assert!(change.shrunk.is_empty());
        let unserved = SlotMap::from_ranges(&[range(0, 5_460, 7000), range(10_923, 16_383, 7002)]);
        assert_eq!(unserved.owner(6_000), None);
    }

    #[test]
    fn a_resharded_slot_reports_the_primary_that_lost_it() {
        let before = SlotMap::from_ranges(&[range(0, 8_191, 7000), range(8_192, 16_383, 7001)]);
        let after =
            SlotMap::from_ranges(&[range(0, 8_190, 7000), range(8_191, 8_191, 7001), range(8_192, 16_383, 7001)]);
        let change = before.change_to(&after);
        assert_eq!(change.shrunk, vec![Server::new("127.0.0.1", 7000)]);
        assert!(change.joined.is_empty() && change.left.is_empty());
        assert!(before.change_to(&before.clone()).is_empty());
    }

    #[test]
    fn a_pool_whose_connection_failed_is_rebuilt_with_growing_waits() {
        let start = Instant::now();
        let server = Server::new("127.0.0.1", 7000);
        let mut pools = PoolSet::default();
        let map = SlotMap::from_ranges(&[range(0, 16_383, 7000)]);
        assert_eq!(pools.follow(&map), vec![PoolAction::Open(server.clone())]);
        pools.failed(&server, start);
        assert!(pools.tick(start).is_empty());
        assert_eq!(pools.tick(start + REBUILD_FIRST_WAIT), vec![PoolAction::Rebuild(server.clone())]);
        pools.rebuilt(&server, start + REBUILD_FIRST_WAIT);
        pools.failed(&server, start + REBUILD_FIRST_WAIT);
        assert!(pools.tick(start + REBUILD_FIRST_WAIT * 2).is_empty(), "the second wait is longer");
        assert_eq!(pools.tick(start + REBUILD_FIRST_WAIT * 3), vec![PoolAction::Rebuild(server.clone())]);
        pools.connected(&server);
        assert_eq!(pools.health(&server), Some(PoolHealth::Connected));
        assert_eq!(pools.follow(&SlotMap::from_ranges(&[])), vec![PoolAction::Close(server)]);
    }

    /// One step of the pool-set model: a new map, a connection outcome, or time passing.
    #[derive(Clone, Debug)]
    enum Event {
        Map { cuts: Vec<u16>, owners: Vec<u8> },
        Connected(u16),
        Failed(u16),
        Wait(u64),
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (proptest::collection::vec(any::<u16>(), 0..6), proptest::collection::vec(any::<u8>(), 0..7))
                .prop_map(|(cuts, owners)| Event::Map { cuts, owners }),
            (0_u16..5).prop_map(Event::Connected),
            (0_u16..5).prop_map(Event::Failed),
            (0_u64..8_000).prop_map(Event::Wait),
        ]
    }

    proptest! {
        /// Over any sequence of maps, connection outcomes and waits: every slot is routed to a
        /// server the latest map names for it; every primary losing a slot is reported; the
        /// router holds a pool for exactly the primaries the map names, and a failed one is
        /// always rebuilt within the longest wait.
        #[test]
        fn routing_and_pools_follow_the_latest_map(events in proptest::collection::vec(event(), 1..40)) {
            let start = Instant::now();
            let mut now = start;
            let mut map = SlotMap::from_ranges(&[]);
            let mut pools = PoolSet::default();
            let mut open: Vec<Server> = Vec::new();
            let mut failed_at: HashMap<Server, Instant> = HashMap::new();
            for event in events {
                match event {
                    Event::Map { cuts, owners } => {
                        let (next, ranges) = map_from(&cuts, &owners, 5);
                        let change = map.change_to(&next);
                        for slot in (0..SLOTS as u16).step_by(97).chain([0, 16_383]) {
                            let named = ranges.iter().rev().find(|r| (r.start..=r.end).contains(&slot));
                            prop_assert_eq!(next.owner(slot).map(|(_, s)| s.clone()), named.map(|r| r.primary.clone()));
                            if let Some((_, before)) = map.owner(slot)
                                && next.owner(slot).map(|(_, s)| s) != Some(before)
                            {
                                prop_assert!(change.shrunk.contains(before) || change.left.contains(before));
                            }
                        }
                        for action in pools.follow(&next) {
                            match action {
                                PoolAction::Open(server) => open.push(server),
                                PoolAction::Close(server) => open.retain(|known| *known != server),
                                PoolAction::Rebuild(_) => prop_assert!(false, "a new map rebuilds nothing"),
                            }
                        }
                        failed_at.retain(|server, _| next.primaries().iter().any(|p| p.server == *server));
                        map = next;
                    }
                    Event::Connected(port) => {
                        let server = Server::new("127.0.0.1", 7000 + port);
                        pools.connected(&server);
                        failed_at.remove(&server);
                    }
                    Event::Failed(port) => {
                        let server = Server::new("127.0.0.1", 7000 + port);
                        if open.contains(&server) {
                            pools.failed(&server, now);
                            failed_at.insert(server, now);
                        }
                    }
                    Event::Wait(millis) => {
                        now += Duration::from_millis(millis);
                        for action in pools.tick(now) {
                            let PoolAction::Rebuild(server) = action else {
                                prop_assert!(false, "time passing only rebuilds");
                                continue;
                            };
                            prop_assert!(open.contains(&server));
                            pools.rebuilt(&server, now);
                            failed_at.insert(server, now);
                        }
                    }
                }
                let mut named: Vec<&Server> = map.primaries().iter().map(|p| &p.server).collect();
                let mut held: Vec<&Server> = open.iter().collect();
                named.sort_by_key(|s| s.port);
                held.sort_by_key(|s| s.port);
                prop_assert_eq!(named, held, "a pool for exactly the primaries the map names");
                for (server, since) in &failed_at {
                    if let Some(PoolHealth::Failed { rebuild_at, .. }) = pools.health(server) {
                        prop_assert!(rebuild_at <= *since + REBUILD_LONGEST_WAIT, "a failed pool waits at most the longest wait");
                    }
                }
            }
        }
    }
}
