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

mod map;
mod redirect;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError, RwLock, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use fred::{
    clients::{Client, Pool},
    error::{Error as FredError, ErrorKind as FredErrorKind},
    interfaces::{ClientLike, ClusterInterface},
    types::{
        Builder, ClusterHash, ConnectHandle, CustomCommand, Value,
        cluster::ClusterRouting,
        config::{Config, ConnectionConfig, PerformanceConfig, ReconnectPolicy, Server, ServerConfig},
    },
};
use tokio::{sync::Notify, task::JoinHandle, time::Instant};

use self::map::{PoolAction, PoolSet, SlotMap, connections_per_primary, migrating_out, ranges_without};
pub use self::redirect::Redirect;

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
    /// A primary that lost slots: what its connections vouched for may be stale (a key of a
    /// moved slot can be written on its new owner, which never tells these connections), and
    /// its canary keys must live in `slots`, the ranges it serves now.
    fn slots_changed(&self, pool: &Pool, slots: Vec<(u16, u16)>);
}

/// Redis Cluster's hash slots.
const SLOTS: usize = 16_384;

/// A cluster's primaries by the state of the pool Tessera keeps for each ([`ClusterNodes::primary_pools`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrimaryPools {
    /// Pools whose connections are all up.
    pub connected: usize,
    /// Pools with a connection down: reconnecting with backoff, or being rebuilt.
    pub connecting: usize,
}
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
/// Redirects followed for one command before its last refusal is returned: a slot moves once
/// per migration, so more than a few in a row means the cluster disagrees with itself.
const MOST_REDIRECTS: usize = 5;
/// The first pause before a command refused with `TRYAGAIN` or `CLUSTERDOWN` is sent again;
/// it doubles per refusal, within the command's timeout.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// The primaries of one cluster, each with its own pool, and the slot map that routes to them.
pub struct ClusterNodes {
    topology: RwLock<Arc<Topology>>,
    template: NodeTemplate,
    /// The addresses the cluster was configured with, asked for the map when no primary known
    /// answers (every one of them replaced since, say).
    seeds: Vec<Server>,
    /// The replicas the last map named: asked for the map before the seeds.
    replicas: Mutex<Vec<Server>>,
    /// Each primary pool's health, and the connection task of each of its clients (a finished
    /// task is a client fred gave up on).
    pools: Mutex<PoolSet>,
    connection_tasks: Mutex<HashMap<Server, Vec<ConnectHandle>>>,
    /// One connection per primary for commands redirected with `ASK`: `ASKING` and the command
    /// must follow each other on one connection, so each use holds it alone.
    asking: Mutex<HashMap<Server, Arc<tokio::sync::Mutex<Client>>>>,
    /// The slots each primary was migrating away when last asked (`CLUSTER NODES`).
    migrating: Mutex<HashMap<Server, Vec<u16>>>,
    /// Woken when a command failed in a way that may mean the slot map changed.
    suspicion: Arc<Notify>,
    /// The near cache, which tracks every node's connections: told about nodes that come and go.
    near: Mutex<Option<Weak<dyn PrimaryWatcher>>>,
    /// One refresh at a time (the background task, a reset, a test).
    refreshing: tokio::sync::Mutex<()>,
    refresher: Mutex<Option<JoinHandle<()>>>,
    /// The last map was read from a replica or a `REDIS_URL` address, no known primary having
    /// answered: said once in the log until a known primary answers again.
    map_from_others: AtomicBool,
    /// [`Self::close`] ran: the pools are closed, and dropping closes nothing again (fred warns
    /// about each client told to quit twice).
    closed: AtomicBool,
}

impl std::fmt::Debug for ClusterNodes {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topology = self.current();
        let primaries: Vec<String> = topology.nodes.iter().map(|node| node.server.to_string()).collect();
        formatter.debug_struct("ClusterNodes").field("primaries", &primaries).finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The last handle gone without [`ClusterNodes::close`]: the pools per primary are closed in the
/// background (fred's connection tasks would otherwise keep reconnecting for good).
impl Drop for ClusterNodes {
    fn drop(&mut self) {
        if let Some(task) = self.refresher.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
            task.abort();
        }
        if *self.closed.get_mut() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let topology = self.topology.get_mut().unwrap_or_else(PoisonError::into_inner);
        let asking = self.asking.get_mut().unwrap_or_else(PoisonError::into_inner);
        for pool in topology.nodes.iter().map(|node| node.pool.clone()) {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, pool.quit()).await;
            });
        }
        for client in asking.drain().map(|(_, client)| client) {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.lock().await.quit()).await;
            });
        }
    }
}

/// Which primary serves each slot, and the pool of each.
struct Topology {
    map: SlotMap,
    /// In the order of `map.primaries()`.
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
    /// The configured pool size, shared out among the primaries ([`connections_per_primary`]).
    connections: usize,
}

impl NodeTemplate {
    fn config_for(&self, server: &Server) -> Config {
        let mut config = self.config.clone();
        config.server = ServerConfig::Centralized { server: server.clone() };
        // With `fail_fast`, fred ends a client's connection task for good when its first
        // connection fails (docs/CLUSTER.md#pools-that-heal): a new primary that refuses its
        // first connection would stay unreachable. Without it, the reconnect policy retries.
        config.fail_fast = false;
        config
    }

    fn builder(&self, server: &Server) -> Builder {
        let mut builder = Builder::from_config(self.config_for(server));
        builder.set_connection_config(self.connection.clone()).set_performance_config(self.performance.clone());
        if let Some(policy) = &self.policy {
            builder.set_policy(policy.clone());
        }
        builder
    }

    /// A pool on `server`, one of `primaries`, connecting in the background (commands wait for
    /// it, up to their timeout), and its clients' connection tasks.
    fn connect(&self, server: &Server, primaries: usize) -> Result<(Pool, Vec<ConnectHandle>), FredError> {
        let pool = self.builder(server).build_pool(connections_per_primary(self.connections, primaries))?;
        let tasks = pool.clients().iter().map(ClientLike::connect).collect();
        Ok((pool, tasks))
    }

    /// One client on `server`, connected within `timeout`.
    async fn client(&self, server: &Server, timeout: Duration) -> Result<Client, FredError> {
        let client = self.builder(server).build()?;
        drop(client.connect());
        match tokio::time::timeout(timeout, client.wait_for_connect()).await {
            Ok(Ok(())) => Ok(client),
            outcome => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.quit()).await;
                Err(match outcome {
                    Ok(Err(error)) => error,
                    _ => FredError::new(FredErrorKind::Timeout, format!("no connection to {server} in time")),
                })
            }
        }
    }

    fn command_timeout(&self) -> Duration {
        match self.performance.default_command_timeout {
            Duration::ZERO => self.connection.connection_timeout.max(Duration::from_secs(1)),
            timeout => timeout,
        }
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
        let config = client.client_config();
        let template = NodeTemplate {
            config: config.clone(),
            connection: client.connection_config().clone(),
            performance: client.perf_config(),
            policy: client.client_reconnect_policy(),
            connections: cluster.size(),
        };
        let suspicion = Arc::new(Notify::new());
        let nodes = Arc::new(Self {
            topology: RwLock::new(Arc::new(Topology { map: SlotMap::from_ranges(&[]), nodes: Vec::new() })),
            template,
            seeds: config.server.hosts(),
            replicas: Mutex::new(Vec::new()),
            pools: Mutex::new(PoolSet::default()),
            connection_tasks: Mutex::new(HashMap::new()),
            asking: Mutex::new(HashMap::new()),
            migrating: Mutex::new(HashMap::new()),
            suspicion: Arc::clone(&suspicion),
            near: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            refresher: Mutex::new(None),
            map_from_others: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        nodes.follow_map(SlotMap::from_ranges(routing.slots()))?;
        let task = tokio::spawn(keep_refreshing(Arc::downgrade(&nodes), suspicion));
        *lock(&nodes.refresher) = Some(task);
        Ok(Some(nodes))
    }

    fn current(&self) -> Arc<Topology> {
        Arc::clone(&self.topology.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The pool of the primary serving `key`'s slot.
    pub fn pool_for(&self, key: &str) -> Result<Pool, FredError> {
        self.pool_for_slot(fred::util::redis_keyslot(key.as_bytes()))
    }

    pub fn pool_for_slot(&self, slot: u16) -> Result<Pool, FredError> {
        let topology = self.topology.read().unwrap_or_else(PoisonError::into_inner);
        match topology.map.owner(slot) {
            Some((index, _)) => Ok(topology.nodes[index].pool.clone()),
            None => {
                drop(topology);
                self.suspicion.notify_one();
                Err(FredError::new(FredErrorKind::Cluster, format!("no primary serves hash slot {slot}")))
            }
        }
    }

    /// Runs `command` on a connection of the primary serving `slot`, and follows the cluster's
    /// redirects ([`Redirect`]): `MOVED` is sent again at once to the named node (and the map
    /// read again), `ASK` as `ASKING` plus the command on the named node, `TRYAGAIN` and
    /// `CLUSTERDOWN` after a pause, all within the command timeout and at most
    /// `MOST_REDIRECTS` (5) times. Each of those refusals means the command was not executed, so
    /// a write is sent again too; any other error is returned as it is.
    pub async fn on_slot<T, Sent: Future<Output = Result<T, FredError>>>(
        &self,
        slot: u16,
        command: impl Fn(Client) -> Sent,
    ) -> Result<T, FredError> {
        let pool = self.pool_for_slot(slot)?;
        match command(pool.next().clone()).await {
            Ok(answer) => Ok(answer),
            // Boxed: the redirect path (a map read, an ASK connection) is rare, and inline it
            // would grow every command's future by kilobytes.
            Err(error) => Box::pin(self.follow_redirects(slot, error, command)).await,
        }
    }

    async fn follow_redirects<T, Sent: Future<Output = Result<T, FredError>>>(
        &self,
        slot: u16,
        mut error: FredError,
        command: impl Fn(Client) -> Sent,
    ) -> Result<T, FredError> {
        let deadline = Instant::now() + self.template.command_timeout();
        let mut pause = FIRST_RETRY_PAUSE;
        for _ in 0..MOST_REDIRECTS {
            let Some(redirect) = Redirect::of(&error) else { return Err(error) };
            let attempt = match redirect {
                Redirect::Moved { server, .. } => {
                    self.suspicion.notify_one();
                    let pool = self.pool_of(&server, deadline).await?;
                    command(pool.next().clone()).await
                }
                Redirect::Ask { server, .. } => {
                    let connection = self.asking_connection(&server, deadline).await?;
                    let client = connection.lock().await;
                    let asking = CustomCommand::new_static("ASKING", ClusterHash::Random, false);
                    match client.custom::<Value, Value>(asking, Vec::new()).await {
                        Ok(_) => command(client.clone()).await,
                        Err(refused) => Err(refused),
                    }
                }
                Redirect::TryAgain | Redirect::ClusterDown => {
                    if Instant::now() + pause >= deadline {
                        return Err(error);
                    }
                    if redirect == Redirect::ClusterDown {
                        self.suspicion.notify_one();
                    }
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                    command(self.pool_for_slot(slot)?.next().clone()).await
                }
            };
            match attempt {
                Ok(answer) => return Ok(answer),
                Err(next) => error = next,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(error)
    }

    /// The pool of the primary `server`; when the map does not name it yet (a `MOVED` to a
    /// node that just got slots), the map is read again first, before `deadline`.
    async fn pool_of(&self, server: &Server, deadline: Instant) -> Result<Pool, FredError> {
        let known = |topology: &Topology| {
            topology.nodes.iter().find(|node| node.server == *server).map(|node| node.pool.clone())
        };
        if let Some(pool) = known(&self.current()) {
            return Ok(pool);
        }
        let _ = tokio::time::timeout_at(deadline, self.refresh()).await;
        known(&self.current()).ok_or_else(|| {
            FredError::new(FredErrorKind::Cluster, format!("redirected to {server}, which the slot map does not name"))
        })
    }

    /// The connection for `ASK` redirects to `server`, opened on first use.
    async fn asking_connection(
        &self,
        server: &Server,
        deadline: Instant,
    ) -> Result<Arc<tokio::sync::Mutex<Client>>, FredError> {
        if let Some(connection) = lock(&self.asking).get(server) {
            return Ok(Arc::clone(connection));
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        let client = self.template.client(server, timeout).await?;
        let mut asking = lock(&self.asking);
        if let Some(raced) = asking.get(server) {
            let raced = Arc::clone(raced);
            drop(asking);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.quit()).await;
            });
            return Ok(raced);
        }
        let connection = Arc::new(tokio::sync::Mutex::new(client));
        asking.insert(server.clone(), Arc::clone(&connection));
        Ok(connection)
    }

    /// Every primary now, with its pool.
    pub fn nodes(&self) -> Vec<Node> {
        self.current().nodes.clone()
    }

    /// The primaries the map names, by the state of their pools now: every connection up, or
    /// some connecting (fred reconnecting with backoff, or the pool being rebuilt).
    pub fn primary_pools(&self) -> PrimaryPools {
        let nodes = self.nodes();
        let connected = nodes
            .iter()
            .filter(|node| {
                node.pool.clients().iter().all(|client| client.state() == fred::types::ClientState::Connected)
            })
            .count();
        PrimaryPools { connected, connecting: nodes.len() - connected }
    }

    /// The near cache to tell about primaries that come and go (their connections need
    /// tracking, and a gone primary's entries must go).
    pub fn follow_with(&self, near: Weak<dyn PrimaryWatcher>) {
        *lock(&self.near) = Some(near);
    }

    fn watcher(&self) -> Option<Arc<dyn PrimaryWatcher>> {
        lock(&self.near).as_ref().and_then(Weak::upgrade)
    }

    /// A command failed with `error`: if it may mean a primary died or slots moved, the slot
    /// map is read again soon.
    pub fn report(&self, error: &FredError) {
        if may_mean_the_map_changed(error) {
            self.suspicion.notify_one();
        }
    }

    /// Reads the slot map (from the first primary to answer; from the replicas and then the
    /// configured addresses when none does), opens a pool for any primary it names that has
    /// none, routes by it, and closes the pools of servers no longer primaries.
    pub async fn refresh(&self) -> Result<(), FredError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let current = self.current();
        let (routing, replicas) = self.ask_for_slots(&current.nodes).await?;
        *lock(&self.replicas) = replicas;
        let next = SlotMap::from_ranges(routing.slots());
        if current.map.routes_like(&next) {
            return Ok(());
        }
        let change = current.map.change_to(&next);
        // No await between opening pools and storing them: a refresh cancelled at any await
        // leaves no pool behind that nothing closes.
        let closed = self.follow_map(next)?;
        let topology = self.current();
        let primaries: Vec<String> = topology.nodes.iter().map(|node| node.server.to_string()).collect();
        tracing::info!(primaries = ?primaries, "redis cluster: slot map changed");
        let near = self.watcher();
        for node in &topology.nodes {
            if let Some(near) = &near {
                if change.joined.contains(&node.server) {
                    if let Err(error) = Arc::clone(near).joined(node.pool.clone(), node.slots.clone()).await {
                        tracing::warn!(primary = %node.server, %error, "near cache: tracking not on yet for a new primary");
                    }
                } else if change.shrunk.contains(&node.server) {
                    near.slots_changed(&node.pool, node.slots.clone());
                }
            }
        }
        for node in closed {
            if let Some(near) = &near {
                near.left(&node.pool);
            }
            tracing::info!(server = %node.server, "redis cluster: no longer a primary; its connections are closed");
            self.close_node(node);
        }
        Ok(())
    }

    /// Routes by `map`: opens the pools it needs (synchronously), stores the new topology, and
    /// returns the nodes no longer primaries, for the caller to close.
    fn follow_map(&self, map: SlotMap) -> Result<Vec<Node>, FredError> {
        let current = self.current();
        let actions = lock(&self.pools).follow(&map);
        let mut opened: HashMap<Server, Pool> = HashMap::new();
        for action in &actions {
            if let PoolAction::Open(server) = action {
                let (pool, tasks) = self.template.connect(server, map.primaries().len())?;
                lock(&self.connection_tasks).insert(server.clone(), tasks);
                opened.insert(server.clone(), pool);
            }
        }
        let nodes = map
            .primaries()
            .iter()
            .filter_map(|primary| {
                let pool = opened.remove(&primary.server).or_else(|| {
                    current.nodes.iter().find(|node| node.server == primary.server).map(|node| node.pool.clone())
                })?;
                Some(Node { server: primary.server.clone(), pool, slots: primary.slots.clone() })
            })
            .collect();
        *self.topology.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Topology { map, nodes });
        let closed = current
            .nodes
            .iter()
            .filter(|node| actions.contains(&PoolAction::Close(node.server.clone())))
            .cloned()
            .collect();
        Ok(closed)
    }

    /// Closes a node's pool and its `ASK` connection, in the background.
    fn close_node(&self, node: Node) {
        lock(&self.connection_tasks).remove(&node.server);
        let asking = lock(&self.asking).remove(&node.server);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, node.pool.quit()).await;
            if let Some(client) = asking {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.lock().await.quit()).await;
            }
        });
    }

    /// Asks every primary which slots it is migrating away (`CLUSTER NODES`), for the near
    /// cache: while a slot migrates, a key of it that the migrating primary does not hold is
    /// created on the importing node (through `ASK`), which never tells this primary's tracking
    /// connections, so a cached absence of that key would be served until the migration ends
    /// and the map shows the move. A primary that starts migrating a slot is reported as if it
    /// had lost it: what its connections vouched for is dropped, its canaries leave the slot.
    /// Nothing is asked without a near cache.
    async fn follow_migrations(&self) {
        let Some(near) = self.watcher() else { return };
        let topology = self.current();
        let answers = futures::future::join_all(topology.nodes.iter().map(|node| async move {
            let answer = tokio::time::timeout(QUESTION_TIMEOUT, node.pool.next().cluster_nodes::<String>()).await;
            (node, answer)
        }))
        .await;
        let mut migrating = lock(&self.migrating);
        migrating.retain(|server, _| topology.nodes.iter().any(|node| node.server == *server));
        for (node, answer) in answers {
            let Ok(Ok(answer)) = answer else { continue };
            let now = migrating_out(&answer);
            let before = migrating.insert(node.server.clone(), now.clone()).unwrap_or_default();
            if now.iter().any(|slot| !before.contains(slot)) {
                tracing::info!(
                    primary = %node.server,
                    slots = ?now,
                    "redis cluster: a primary migrates slots away; the near cache drops what it vouched for"
                );
                near.slots_changed(&node.pool, ranges_without(&node.slots, &now));
            }
        }
    }

    /// Notes which pools are connected and which lost their connection task for good, and
    /// rebuilds those due (`PoolSet`): every primary the map names keeps a pool that connects
    /// or is being rebuilt.
    async fn heal_pools(&self) {
        let now = std::time::Instant::now();
        let topology = self.current();
        {
            let tasks = lock(&self.connection_tasks);
            let mut pools = lock(&self.pools);
            for node in &topology.nodes {
                if node.pool.clients().iter().any(|client| client.state() == fred::types::ClientState::Connected) {
                    pools.connected(&node.server);
                } else if tasks.get(&node.server).is_some_and(|tasks| tasks.iter().any(JoinHandle::is_finished)) {
                    pools.failed(&node.server, now);
                }
            }
        }
        let due = lock(&self.pools).tick(now);
        for action in due {
            let PoolAction::Rebuild(server) = action else { continue };
            let Some(old) = topology.nodes.iter().find(|node| node.server == server).cloned() else { continue };
            let (pool, tasks) = match self.template.connect(&server, topology.map.primaries().len()) {
                Ok(built) => built,
                Err(error) => {
                    tracing::warn!(primary = %server, %error, "redis cluster: cannot rebuild a primary's pool");
                    continue;
                }
            };
            tracing::warn!(primary = %server, "redis cluster: a primary's pool lost its connection for good; rebuilt");
            lock(&self.connection_tasks).insert(server.clone(), tasks);
            lock(&self.pools).rebuilt(&server, now);
            let nodes = topology
                .nodes
                .iter()
                .map(
                    |node| {
                        if node.server == server { Node { pool: pool.clone(), ..node.clone() } } else { node.clone() }
                    },
                )
                .collect();
            *self.topology.write().unwrap_or_else(PoisonError::into_inner) =
                Arc::new(Topology { map: topology.map.clone(), nodes });
            if let Some(near) = self.watcher() {
                near.left(&old.pool);
                if let Err(error) = near.joined(pool, old.slots.clone()).await {
                    tracing::warn!(primary = %server, %error, "near cache: tracking not on yet for a rebuilt pool");
                }
            }
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, old.pool.quit()).await;
        }
    }

    /// Stops following the cluster and closes every primary's pool.
    pub async fn close(&self) {
        if let Some(task) = lock(&self.refresher).take() {
            task.abort();
        }
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let nodes = self.nodes();
        let asking: Vec<_> = lock(&self.asking).drain().map(|(_, client)| client).collect();
        futures::future::join_all(
            nodes.iter().map(|node| async { tokio::time::timeout(CLOSE_TIMEOUT, node.pool.quit()).await }),
        )
        .await;
        for client in asking {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.lock().await.quit()).await;
        }
    }

    /// `CLUSTER SLOTS` asked of every primary at once, the first answer parsed, with the
    /// replicas it names. When no primary answers (all replaced, or the map is empty), the
    /// replicas of the last map and then the configured addresses are asked, one connection
    /// each, opened for the question.
    async fn ask_for_slots(&self, nodes: &[Node]) -> Result<(ClusterRouting, Vec<Server>), FredError> {
        let primaries = nodes.iter().map(|node| {
            Box::pin(async move {
                let reply = tokio::time::timeout(QUESTION_TIMEOUT, node.pool.next().cluster_slots::<Value>())
                    .await
                    .map_err(|_| FredError::new(FredErrorKind::Timeout, "CLUSTER SLOTS timed out"))??;
                parse_slots(reply, &node.server)
            })
        });
        let error = match futures::future::select_ok(primaries).await {
            Ok((answer, _)) => {
                self.map_from_others.store(false, Ordering::Relaxed);
                return Ok(answer);
            }
            Err(error) => error,
        };
        let mut others = lock(&self.replicas).clone();
        for seed in &self.seeds {
            if !others.contains(seed) {
                others.push(seed.clone());
            }
        }
        let others = others.into_iter().filter(|server| !nodes.iter().any(|node| node.server == *server));
        let questions = others.map(|server| {
            Box::pin(async move {
                let client = self.template.client(&server, QUESTION_TIMEOUT).await?;
                let reply = tokio::time::timeout(QUESTION_TIMEOUT, client.cluster_slots::<Value>()).await;
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.quit()).await;
                let reply = reply.map_err(|_| FredError::new(FredErrorKind::Timeout, "CLUSTER SLOTS timed out"))??;
                parse_slots(reply, &server)
            })
        });
        let questions: Vec<_> = questions.collect();
        if questions.is_empty() {
            return Err(error);
        }
        let (answer, _) = futures::future::select_ok(questions).await?;
        // Once until a known primary answers again: the map is read again as soon as the last
        // read ends while a pool is not connected, and a cluster announcing addresses this host
        // cannot reach would otherwise repeat this every second or so for as long as that lasts.
        if !self.map_from_others.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "redis cluster: no primary answers at the address the cluster gives for it; the slot map was read \
                 from a replica or a REDIS_URL address (if this lasts, check the addresses the nodes announce: \
                 cluster-announce-ip, cluster-announce-port)"
            );
        }
        Ok(answer)
    }
}

/// A `CLUSTER SLOTS` answer of `server`: the ranges (fred's reading) and the replicas named.
fn parse_slots(reply: Value, server: &Server) -> Result<(ClusterRouting, Vec<Server>), FredError> {
    let replicas = replicas_named(&reply, &server.host);
    let routing = ClusterRouting::from_cluster_slots(reply, server.host.clone())?;
    Ok((routing, replicas))
}

/// The replicas a `CLUSTER SLOTS` answer names: each range is `[start, end, primary,
/// replica…]`, each node `[host, port, id, …]` (an empty host means the host asked).
fn replicas_named(reply: &Value, asked_host: &str) -> Vec<Server> {
    let mut replicas: Vec<Server> = Vec::new();
    let Value::Array(ranges) = reply else { return replicas };
    for range in ranges {
        let Value::Array(parts) = range else { continue };
        for node in parts.iter().skip(3) {
            let Value::Array(fields) = node else { continue };
            let (Some(host), Some(port)) =
                (fields.first().and_then(Value::as_str), fields.get(1).and_then(Value::as_i64))
            else {
                continue;
            };
            let host = if host.is_empty() { asked_host.to_owned() } else { host.into_owned() };
            let (Ok(port), false) = (u16::try_from(port), host == "?") else { continue };
            let replica = Server::new(host, port);
            if !replicas.contains(&replica) {
                replicas.push(replica);
            }
        }
    }
    replicas
}

/// Errors after which the slot map may be stale: a redirection, a cluster refusing, or a node
/// that did not answer.
fn may_mean_the_map_changed(error: &FredError) -> bool {
    matches!(
        error.kind(),
        FredErrorKind::IO | FredErrorKind::Timeout | FredErrorKind::Canceled | FredErrorKind::Cluster
    ) || Redirect::of(error).is_some()
}

/// Reads the slot map every [`REFRESH_INTERVAL`] ([`DEGRADED_REFRESH_INTERVAL`] while a primary
/// is not connected), and soon after a suspicion; heals the pools; ends with the nodes.
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
        nodes.heal_pools().await;
        nodes.follow_migrations().await;
        interval = if nodes.primary_pools().connecting == 0 { REFRESH_INTERVAL } else { DEGRADED_REFRESH_INTERVAL };
        drop(nodes);
        tokio::time::sleep(REFRESH_SPACING).await;
    }
}

#[cfg(test)]
mod tests {
    use fred::{
        error::{Error as FredError, ErrorKind as FredErrorKind},
        types::{Value, config::Server},
    };

    use super::{may_mean_the_map_changed, replicas_named};

    #[test]
    fn redirections_refusals_and_silence_ask_for_the_map_again() {
        for (kind, details) in [
            (FredErrorKind::Unknown, "MOVED 3999 127.0.0.1:7001"),
            (FredErrorKind::Unknown, "ASK 3999 127.0.0.1:7001"),
            (FredErrorKind::Unknown, "CLUSTERDOWN The cluster is down"),
            (FredErrorKind::Unknown, "TRYAGAIN Multiple keys request during rehashing of slot"),
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

    #[test]
    fn the_replicas_of_a_slot_answer_are_remembered_to_ask_for_the_map() {
        let node =
            |host: &str, port: i64| Value::Array(vec![Value::from(host), Value::Integer(port), Value::from("id")]);
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Integer(0), Value::Integer(8_191), node("127.0.0.1", 7000), node("", 7003)]),
            Value::Array(vec![
                Value::Integer(8_192),
                Value::Integer(16_383),
                node("127.0.0.1", 7001),
                node("127.0.0.1", 7004),
                node("?", 7005),
                node("127.0.0.1", 7003),
            ]),
        ]);
        assert_eq!(
            replicas_named(&reply, "127.0.0.1"),
            vec![Server::new("127.0.0.1", 7003), Server::new("127.0.0.1", 7004)]
        );
        assert!(replicas_named(&Value::Null, "127.0.0.1").is_empty());
    }
}
