//! A private six-node Redis Cluster a test owns (three primaries, each with one replica), on
//! free loopback ports, so the test may kill a primary and watch its replica take over. Every
//! node is a [`PrivateRedis`]: all of them are killed when the cluster is dropped, a panic
//! included.

use std::time::{Duration, Instant};

use crate::{PrivateRedis, RefusingRelay, RespReply, ServerTls};

/// Primaries, and replicas (one per primary).
const SHARDS: usize = 3;
const SLOTS: u16 = 16_384;
const FORMATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Nodes `0..3` start as the primaries of shards 0, 1 and 2 (slot ranges in that order);
/// node `3 + s` starts as the replica of shard `s`.
#[derive(Debug)]
pub struct PrivateCluster {
    nodes: Vec<PrivateRedis>,
}

impl PrivateCluster {
    /// Starts six nodes with `options` on each command line (e.g. `--cluster-node-timeout 2000`),
    /// assigns the slots, joins them and makes three of them replicas; returns once every node
    /// says `cluster_state:ok`, knows the three replicas, and each replica's link is up.
    pub fn start(options: &[&str]) -> Self {
        Self::form((0..2 * SHARDS).map(|_| PrivateRedis::start_cluster_node(options)).collect())
    }

    /// [`Self::start`] with every node speaking TLS as well, its cluster bus and replication in
    /// TLS: a client reaching it at [`Self::tls_url`] is told the nodes' TLS ports.
    pub fn start_tls(tls: &ServerTls, options: &[&str]) -> Self {
        Self::form((0..2 * SHARDS).map(|_| PrivateRedis::start_cluster_node_tls_with(tls, options)).collect())
    }

    fn form(nodes: Vec<PrivateRedis>) -> Self {
        let cluster = Self { nodes };
        for shard in 0..SHARDS {
            let (first, last) = shard_slots(shard);
            let reply =
                cluster.nodes[shard].query(&["CLUSTER", "ADDSLOTSRANGE", &first.to_string(), &last.to_string()]);
            assert_eq!(reply, RespReply::Simple("OK".into()), "ADDSLOTSRANGE on shard {shard}");
        }
        let seed = &cluster.nodes[0];
        let seed_bus = bus_port(seed);
        for node in &cluster.nodes[1..] {
            let reply = node.query(&["CLUSTER", "MEET", "127.0.0.1", &seed.port().to_string(), &seed_bus.to_string()]);
            assert_eq!(reply, RespReply::Simple("OK".into()), "CLUSTER MEET from {}", node.port());
        }
        let ids: Vec<String> = cluster.nodes.iter().map(|node| node.query(&["CLUSTER", "MYID"]).text()).collect();
        for (shard, (primary_id, replica)) in ids.iter().zip(&cluster.nodes[SHARDS..]).enumerate() {
            // The replica learns the primary's id through gossip: retry until it does.
            wait_for(&format!("node {} to replicate shard {shard}", replica.port()), || {
                replica.query(&["CLUSTER", "REPLICATE", primary_id]) == RespReply::Simple("OK".into())
            });
        }
        for node in &cluster.nodes {
            wait_for(&format!("node {} to see the whole cluster ok", node.port()), || {
                let info = node.query(&["CLUSTER", "INFO"]).text();
                let view = node.query(&["CLUSTER", "NODES"]).text();
                let replicas = view
                    .lines()
                    .filter_map(|line| line.split_whitespace().nth(2))
                    .filter(|flags| flags.split(',').any(|flag| flag == "slave"))
                    .count();
                info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:6") && replicas == SHARDS
            });
        }
        for replica in &cluster.nodes[SHARDS..] {
            wait_for(&format!("replica {} to finish its first synchronisation", replica.port()), || {
                let info = replica.query(&["INFO", "replication"]).text();
                info.contains("master_link_status:up") && info.contains("master_sync_in_progress:0")
            });
        }
        cluster
    }

    /// `redis-cluster://…` naming every node, as a client of this cluster is configured.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes[1..].iter().map(|node| format!("node=127.0.0.1:{}", node.port())).collect();
        format!("redis-cluster://127.0.0.1:{}?{}", self.nodes[0].port(), seeds.join("&"))
    }

    /// `rediss-cluster://…` naming every node's TLS port, reached as `localhost` (which the test
    /// certificate names, as it does 127.0.0.1, the address the nodes announce).
    pub fn tls_url(&self) -> String {
        let seeds: Vec<String> =
            self.nodes[1..].iter().map(|node| format!("node=localhost:{}", node.tls_port())).collect();
        format!("rediss-cluster://localhost:{}?{}", self.nodes[0].tls_port(), seeds.join("&"))
    }

    /// A hash tag (the text between `{` and `}` in a key) whose slot belongs to `shard`.
    pub fn hash_tag_on_shard(&self, shard: usize) -> String {
        let (first, last) = shard_slots(shard);
        (0..)
            .map(|candidate| format!("shard{shard}-{candidate}"))
            .find(|tag| {
                let RespReply::Integer(slot) = self.nodes[SHARDS + shard].query(&["CLUSTER", "KEYSLOT", tag]) else {
                    panic!("CLUSTER KEYSLOT answered no integer");
                };
                (i64::from(first)..=i64::from(last)).contains(&slot)
            })
            .unwrap()
    }

    /// The node that started as `shard`'s primary.
    pub fn primary(&mut self, shard: usize) -> &mut PrivateRedis {
        &mut self.nodes[shard]
    }

    /// The node that started as `shard`'s replica.
    pub fn replica(&self, shard: usize) -> &PrivateRedis {
        &self.nodes[SHARDS + shard]
    }

    /// Every node, primaries first (in shard order), then the replicas.
    pub fn nodes(&self) -> &[PrivateRedis] {
        &self.nodes
    }

    /// Makes `shard`'s replica announce `port` as its client port (`cluster-announce-port`, a
    /// relay in front of it, say) and returns once every node names it there.
    pub fn announce_replica_at(&self, shard: usize, port: u16) {
        self.announce_node_at(SHARDS + shard, port);
    }

    /// Makes node `index` (of [`Self::nodes`]) announce `port` as its client port, or its own
    /// port again when `port` is 0, and returns once every node names it there.
    pub fn announce_node_at(&self, index: usize, port: u16) {
        let node = &self.nodes[index];
        let reply = node.query(&["CONFIG", "SET", "cluster-announce-port", &port.to_string()]);
        assert_eq!(reply, RespReply::Simple("OK".into()), "CONFIG SET cluster-announce-port on node {index}");
        let id = node.query(&["CLUSTER", "MYID"]).text();
        let announced = format!("127.0.0.1:{}@", if port == 0 { node.port() } else { port });
        for other in &self.nodes {
            wait_for(&format!("node {} to name node {index} at {announced}", other.port()), || {
                let view = other.query(&["CLUSTER", "NODES"]).text();
                view.lines().any(|line| line.starts_with(&id) && line.contains(&announced))
            });
        }
    }

    /// Puts an accepting [`RefusingRelay`] in front of every node and makes each node announce
    /// its relay's port, so clients know the nodes only by the relays; the relays, in the order
    /// of [`Self::nodes`]. Dropping them (and [`Self::cut_client_connections`]) leaves every
    /// address a client learnt from the cluster with nothing listening.
    pub async fn behind_relays(self) -> (Self, Vec<RefusingRelay>) {
        let mut relays = Vec::new();
        for node in self.nodes() {
            let relay = RefusingRelay::start(node.port()).await;
            relay.accept();
            relays.push(relay);
        }
        let ports: Vec<u16> = relays.iter().map(RefusingRelay::port).collect();
        let cluster = tokio::task::spawn_blocking(move || {
            for (index, port) in ports.into_iter().enumerate() {
                self.announce_node_at(index, port);
            }
            self
        })
        .await
        .unwrap();
        (cluster, relays)
    }

    /// Closes every client connection on every node (`CLIENT KILL TYPE normal`), the question's
    /// own excepted; replication and the cluster bus are untouched.
    pub fn cut_client_connections(&self) {
        for node in &self.nodes {
            node.query(&["CLIENT", "KILL", "TYPE", "normal"]);
        }
    }

    /// Whether `shard`'s replica has taken over (its `ROLE` is `master`).
    pub fn replica_promoted(&self, shard: usize) -> bool {
        match self.replica(shard).query(&["ROLE"]) {
            RespReply::Array(Some(items)) => items.first().map(RespReply::text).as_deref() == Some("master"),
            _ => false,
        }
    }
}

/// The slots of `shard`: three nearly equal ranges, as `redis-cli --cluster create` makes them.
fn shard_slots(shard: usize) -> (u16, u16) {
    let per_shard = SLOTS / SHARDS as u16;
    let first = per_shard * shard as u16;
    let last = if shard + 1 == SHARDS { SLOTS - 1 } else { first + per_shard - 1 };
    (first, last)
}

/// The cluster-bus port `node` announces (`ip:port@bus` on its own `CLUSTER NODES` line).
fn bus_port(node: &PrivateRedis) -> u16 {
    let view = node.query(&["CLUSTER", "NODES"]).text();
    let myself = view.lines().find(|line| line.contains("myself")).unwrap();
    let address = myself.split_whitespace().nth(1).unwrap();
    let bus = address.split('@').nth(1).unwrap();
    bus.split(',').next().unwrap().parse().unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + FORMATION_TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {FORMATION_TIMEOUT:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
