//! A Redis Cluster reached through one standalone fred pool per primary, each command routed
//! here by its key's hash slot, so a dead primary fails the commands of its own slots only.
//!
//! fred's cluster client cannot do that: its one router task re-syncs the whole cluster when a
//! node's connection closes and takes no command for any shard until the dead primary's replica
//! is promoted (docs/FRED.md, "Failures in a cluster"). Here each primary has its own pool and
//! its own reconnection loop; the slot map is read again every [`REFRESH_INTERVAL`], and at once
//! (at most every [`REFRESH_SPACING`]) after a command failed in a way that may mean a primary
//! died or slots moved. docs/CLUSTER.md says what that guarantees and what it needs of Redis.
//!
//! Each primary's pool is built from the connected cluster pool's own settings (its size,
//! timeouts, reconnect policy and TLS, all `infra`'s). `CLUSTER SLOTS` is asked of every known
//! primary at once and the first answer wins; while a primary is not connected the map is read
//! every [`DEGRADED_REFRESH_INTERVAL`], so its promoted replica is used soon. A primary that
//! appears is handed to the near cache ([`PrimaryWatcher::joined`]) to track its connections; one
//! that leaves is reported to it ([`PrimaryWatcher::left`]: its entries are flushed) and closed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock, Weak},
    time::Duration,
};

use fred::{
    clients::Pool,
    error::{Error as FredError, ErrorKind as FredErrorKind},
    interfaces::{ClientLike, ClusterInterface},
    types::{
        Builder, Value,
        cluster::{ClusterRouting, SlotRange},
        config::{Config, ConnectionConfig, PerformanceConfig, ReconnectPolicy, Server, ServerConfig},
    },
};
use tokio::{sync::Notify, task::JoinHandle};

/// What [`PrimaryWatcher::joined`] answers: done, or why the new primary is not followed yet.
pub type WatcherReply =
    std::pin::Pin<Box<dyn Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send>>;

/// Told when primaries join or leave the slot map: the near cache, one layer up, whose client
/// tracking runs on every primary's connections and whose entries from a gone primary must go.
pub trait PrimaryWatcher: Send + Sync {
    /// A new primary's pool (connected or still connecting) and the slot ranges it serves.
    fn joined(self: Arc<Self>, pool: Pool, slots: Vec<(u16, u16)>) -> WatcherReply;
    /// A server that is no longer a primary: forget its connections.
    fn left(&self, pool: &Pool);
}

/// Redis Cluster's hash slots.
const SLOTS: usize = 16_384;
/// Marks a slot no primary serves in [`Topology::owners`].
const NO_OWNER: u16 = u16::MAX;
/// How often the slot map is read while every primary is connected.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// How often it is read while a primary is not connected (dead, or its replica about to take
/// over): the new owner of its slots is used this soon after its promotion.
const DEGRADED_REFRESH_INTERVAL: Duration = Duration::from_millis(100);
/// The least time between two reads of the slot map, however many commands fail meanwhile.
const REFRESH_SPACING: Duration = Duration::from_millis(100);
/// How long `CLUSTER SLOTS` may take; every primary is asked at once and the first answer wins.
const QUESTION_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a pool being closed may take to send its QUITs.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The primaries of one cluster, each with its own pool, and the slot map that routes to them.
pub struct ClusterNodes {
    topology: RwLock<Arc<Topology>>,
    template: NodeTemplate,
    /// Woken when a command failed in a way that may mean the slot map changed.
    suspicion: Arc<Notify>,
    /// The near cache, which tracks every node's connections: told about nodes that come and go.
    near: Mutex<Option<Weak<dyn PrimaryWatcher>>>,
    /// One refresh at a time (the background task, a reset, a test).
    refreshing: tokio::sync::Mutex<()>,
    refresher: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ClusterNodes {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topology = self.current();
        let primaries: Vec<String> = topology.nodes.iter().map(|node| node.server.to_string()).collect();
        formatter.debug_struct("ClusterNodes").field("primaries", &primaries).finish_non_exhaustive()
    }
}

/// The last handle gone without [`ClusterNodes::close`]: the pools per primary are closed in the
/// background (fred's connection tasks would otherwise keep reconnecting for good).
impl Drop for ClusterNodes {
    fn drop(&mut self) {
        if let Some(task) = self.refresher.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            task.abort();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let topology = self.topology.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        for node in &topology.nodes {
            let pool = node.pool.clone();
            runtime.spawn(async move {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, pool.quit()).await;
            });
        }
    }
}

/// Which primary serves each slot.
struct Topology {
    /// Index into `nodes` per slot, [`NO_OWNER`] where none serves it.
    owners: Box<[u16]>,
    nodes: Vec<Node>,
}

/// One primary: its address, its pool, and the slot ranges it serves.
#[derive(Clone, Debug)]
pub struct Node {
    pub server: Server,
    pub pool: Pool,
    /// First and last slot of each range (inclusive).
    pub slots: Vec<(u16, u16)>,
}

/// How a node's pool is built: the cluster pool's own settings, pointed at one server.
struct NodeTemplate {
    config: Config,
    connection: ConnectionConfig,
    performance: PerformanceConfig,
    policy: Option<ReconnectPolicy>,
    size: usize,
}

impl NodeTemplate {
    /// A pool on `server`, connecting in the background (commands wait for it, up to their
    /// timeout).
    fn connect(&self, server: &Server) -> Result<Pool, FredError> {
        let mut config = self.config.clone();
        config.server = ServerConfig::Centralized { server: server.clone() };
        let mut builder = Builder::from_config(config);
        builder.set_connection_config(self.connection.clone()).set_performance_config(self.performance.clone());
        if let Some(policy) = &self.policy {
            builder.set_policy(policy.clone());
        }
        let pool = builder.build_pool(self.size)?;
        drop(pool.connect());
        Ok(pool)
    }
}

impl ClusterNodes {
    /// One pool per primary of the connected cluster pool `cluster`, with its settings and
    /// size, and the slot map it holds; `None` when it holds none (not connected). `cluster`
    /// itself is not used afterwards: its owner may close it. Starts the refresher task, so it
    /// must be called inside a Tokio runtime.
    pub fn from_cluster_pool(cluster: &Pool) -> Result<Option<Arc<Self>>, FredError> {
        let client = cluster.next();
        let Some(routing) = client.cached_cluster_state() else { return Ok(None) };
        let template = NodeTemplate {
            config: client.client_config(),
            connection: client.connection_config().clone(),
            performance: client.perf_config(),
            policy: client.client_reconnect_policy(),
            size: cluster.size(),
        };
        let topology = Topology::build(routing.slots(), &[], &template)?;
        let suspicion = Arc::new(Notify::new());
        let nodes = Arc::new(Self {
            topology: RwLock::new(Arc::new(topology)),
            template,
            suspicion: Arc::clone(&suspicion),
            near: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            refresher: Mutex::new(None),
        });
        let task = tokio::spawn(keep_refreshing(Arc::downgrade(&nodes), suspicion));
        *nodes.refresher.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
        Ok(Some(nodes))
    }

    fn current(&self) -> Arc<Topology> {
        Arc::clone(&self.topology.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The pool of the primary serving `key`'s slot.
    pub fn pool_for(&self, key: &str) -> Result<Pool, FredError> {
        self.pool_for_slot(fred::util::redis_keyslot(key.as_bytes()))
    }

    pub fn pool_for_slot(&self, slot: u16) -> Result<Pool, FredError> {
        let topology = self.topology.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match topology.owners.get(usize::from(slot)) {
            Some(&owner) if owner != NO_OWNER => Ok(topology.nodes[usize::from(owner)].pool.clone()),
            _ => {
                drop(topology);
                self.suspicion.notify_one();
                Err(FredError::new(FredErrorKind::Cluster, format!("no primary serves hash slot {slot}")))
            }
        }
    }

    /// Every primary now, with its pool.
    pub fn nodes(&self) -> Vec<Node> {
        self.current().nodes.clone()
    }

    /// Whether every primary's pool has a connection up.
    fn every_primary_connected(&self) -> bool {
        self.current()
            .nodes
            .iter()
            .all(|node| node.pool.clients().iter().any(|client| client.state() == fred::types::ClientState::Connected))
    }

    /// The near cache to tell about primaries that come and go (their connections need
    /// tracking, and a gone primary's entries must go).
    pub fn follow_with(&self, near: Weak<dyn PrimaryWatcher>) {
        *self.near.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(near);
    }

    /// A command failed with `error`: if it may mean a primary died or slots moved, the slot
    /// map is read again soon.
    pub fn report(&self, error: &FredError) {
        if may_mean_the_map_changed(error) {
            self.suspicion.notify_one();
        }
    }

    /// Reads the slot map from the first primary to answer, connects to any primary it names
    /// that has no pool yet, routes by it, and closes the pools of servers no longer primaries.
    pub async fn refresh(&self) -> Result<(), FredError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let current = self.current();
        let routing = ask_for_slots(&current.nodes).await?;
        if current.matches(routing.slots()) {
            return Ok(());
        }
        let topology = Topology::build(routing.slots(), &current.nodes, &self.template)?;
        let near = self.near.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().and_then(Weak::upgrade);
        for node in &topology.nodes {
            if current.nodes.iter().any(|known| known.server == node.server) {
                continue;
            }
            let connected =
                tokio::time::timeout(self.template.connection.connection_timeout, node.pool.wait_for_connect()).await;
            if !matches!(connected, Ok(Ok(()))) {
                tracing::warn!(primary = %node.server, "redis cluster: a new primary is not connected yet");
            }
            if let Some(near) = &near
                && let Err(error) = Arc::clone(near).joined(node.pool.clone(), node.slots.clone()).await
            {
                tracing::warn!(primary = %node.server, %error, "near cache: tracking not on yet for a new primary");
            }
        }
        let gone: Vec<Node> = current
            .nodes
            .iter()
            .filter(|node| !topology.nodes.iter().any(|kept| kept.server == node.server))
            .cloned()
            .collect();
        let primaries: Vec<String> = topology.nodes.iter().map(|node| node.server.to_string()).collect();
        tracing::info!(primaries = ?primaries, "redis cluster: slot map changed");
        *self.topology.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(topology);
        for node in gone {
            if let Some(near) = &near {
                near.left(&node.pool);
            }
            tracing::info!(server = %node.server, "redis cluster: no longer a primary; its connections are closed");
            tokio::spawn(async move {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, node.pool.quit()).await;
            });
        }
        Ok(())
    }

    /// Stops following the cluster and closes every primary's pool.
    pub async fn close(&self) {
        if let Some(task) = self.refresher.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            task.abort();
        }
        let nodes = self.nodes();
        futures::future::join_all(
            nodes.iter().map(|node| async { tokio::time::timeout(CLOSE_TIMEOUT, node.pool.quit()).await }),
        )
        .await;
    }
}

impl Topology {
    /// The routing of `ranges`, reusing the pools of `known` primaries and connecting new ones.
    fn build(ranges: &[SlotRange], known: &[Node], template: &NodeTemplate) -> Result<Self, FredError> {
        let mut owners = vec![NO_OWNER; SLOTS].into_boxed_slice();
        let mut nodes: Vec<Node> = Vec::new();
        let mut index_of: HashMap<Server, u16> = HashMap::new();
        for range in ranges {
            let index = match index_of.get(&range.primary) {
                Some(&index) => index,
                None => {
                    let pool = match known.iter().find(|node| node.server == range.primary) {
                        Some(node) => node.pool.clone(),
                        None => template.connect(&range.primary)?,
                    };
                    let index = u16::try_from(nodes.len()).unwrap_or(NO_OWNER - 1);
                    nodes.push(Node { server: range.primary.clone(), pool, slots: Vec::new() });
                    index_of.insert(range.primary.clone(), index);
                    index
                }
            };
            nodes[usize::from(index)].slots.push((range.start, range.end));
            let (start, end) = (usize::from(range.start), usize::from(range.end).min(SLOTS - 1));
            if start <= end {
                owners[start..=end].fill(index);
            }
        }
        Ok(Self { owners, nodes })
    }

    /// Whether `ranges` route every slot as this topology does.
    fn matches(&self, ranges: &[SlotRange]) -> bool {
        let mut seen = 0_usize;
        for range in ranges {
            let Some(owner) = self.owners.get(usize::from(range.start)) else { return false };
            let Some(node) = self.nodes.get(usize::from(*owner)) else { return false };
            if node.server != range.primary || !node.slots.contains(&(range.start, range.end)) {
                return false;
            }
            seen += 1;
        }
        seen == self.nodes.iter().map(|node| node.slots.len()).sum::<usize>()
    }
}

/// `CLUSTER SLOTS` asked of every primary at once; the first answer, parsed. A dead primary
/// does not delay it (each question is bounded by [`QUESTION_TIMEOUT`]).
async fn ask_for_slots(nodes: &[Node]) -> Result<ClusterRouting, FredError> {
    let questions = nodes.iter().map(|node| {
        Box::pin(async move {
            let reply = tokio::time::timeout(QUESTION_TIMEOUT, node.pool.next().cluster_slots::<Value>())
                .await
                .map_err(|_| FredError::new(FredErrorKind::Timeout, "CLUSTER SLOTS timed out"))??;
            ClusterRouting::from_cluster_slots(reply, node.server.host.clone())
        })
    });
    if nodes.is_empty() {
        return Err(FredError::new(FredErrorKind::Cluster, "no primary is known to ask for the slot map"));
    }
    let (routing, _) = futures::future::select_ok(questions).await?;
    Ok(routing)
}

/// Errors after which the slot map may be stale: a redirection, a cluster refusing, or a node
/// that did not answer.
fn may_mean_the_map_changed(error: &FredError) -> bool {
    let details = error.details();
    matches!(
        error.kind(),
        FredErrorKind::IO | FredErrorKind::Timeout | FredErrorKind::Canceled | FredErrorKind::Cluster
    ) || ["MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN"].iter().any(|reply| details.starts_with(reply))
}

/// Reads the slot map every [`REFRESH_INTERVAL`] ([`DEGRADED_REFRESH_INTERVAL`] while a primary
/// is not connected), and soon after a suspicion; ends with the nodes.
async fn keep_refreshing(nodes: Weak<ClusterNodes>, suspicion: Arc<Notify>) {
    let mut interval = REFRESH_INTERVAL;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = suspicion.notified() => {}
        }
        let Some(nodes) = nodes.upgrade() else { return };
        if let Err(error) = nodes.refresh().await {
            tracing::debug!(%error, "redis cluster: the slot map could not be read");
        }
        interval = if nodes.every_primary_connected() { REFRESH_INTERVAL } else { DEGRADED_REFRESH_INTERVAL };
        drop(nodes);
        tokio::time::sleep(REFRESH_SPACING).await;
    }
}

#[cfg(test)]
mod tests {
    use fred::{
        error::{Error as FredError, ErrorKind as FredErrorKind},
        types::config::Server,
    };

    use super::{SlotRange, may_mean_the_map_changed};

    fn range(start: u16, end: u16, port: u16) -> SlotRange {
        SlotRange { start, end, primary: Server::new("127.0.0.1", port), id: "id".into() }
    }

    #[test]
    fn redirections_refusals_and_silence_ask_for_the_map_again() {
        for (kind, details) in [
            (FredErrorKind::Unknown, "MOVED 3999 127.0.0.1:7001"),
            (FredErrorKind::Unknown, "ASK 3999 127.0.0.1:7001"),
            (FredErrorKind::Unknown, "CLUSTERDOWN The cluster is down"),
            (FredErrorKind::Timeout, "Request timed out."),
            (FredErrorKind::IO, "Connection closed."),
        ] {
            assert!(may_mean_the_map_changed(&FredError::new(kind, details)), "{details}");
        }
        for (kind, details) in [
            (FredErrorKind::Unknown, "WRONGTYPE Operation against a key holding the wrong kind of value"),
            (FredErrorKind::Parse, "Could not convert to string."),
        ] {
            assert!(!may_mean_the_map_changed(&FredError::new(kind, details)), "{details}");
        }
    }

    #[tokio::test]
    async fn a_topology_matches_only_the_ranges_it_was_built_from() {
        let template = super::NodeTemplate {
            config: fred::types::config::Config::default(),
            connection: Default::default(),
            performance: Default::default(),
            policy: None,
            size: 1,
        };
        let ranges = [range(0, 5_460, 7000), range(5_461, 10_922, 7001), range(10_923, 16_383, 7002)];
        let built = super::Topology::build(&ranges, &[], &template).unwrap();
        assert!(built.matches(&ranges));
        assert_eq!(built.owners[0], 0);
        assert_eq!(built.owners[5_461], 1);
        assert_eq!(built.owners[16_383], 2);
        let promoted = [range(0, 5_460, 7000), range(5_461, 10_922, 7004), range(10_923, 16_383, 7002)];
        assert!(!built.matches(&promoted));
        let rebuilt = super::Topology::build(&promoted, &built.nodes, &template).unwrap();
        assert_eq!(rebuilt.nodes[1].server, Server::new("127.0.0.1", 7004));
        let unserved = [range(0, 5_460, 7000), range(10_923, 16_383, 7002)];
        assert!(!built.matches(&unserved));
        let partial = super::Topology::build(&unserved, &built.nodes, &template).unwrap();
        assert_eq!(partial.owners[6_000], super::NO_OWNER);
    }
}
