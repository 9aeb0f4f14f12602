//! [`Route`]: which fred pool a command goes to. Either one fred pool that routes every command
//! itself (standalone, Sentinel, or a cluster pool used as given), or `cluster.rs`'s
//! `ClusterNodes`: one pool per primary, each key sent to the primary serving its hash slot.

use std::sync::Arc;

use fred::{
    clients::{Client, Pool},
    error::Error as FredError,
    interfaces::ClientLike,
};

use crate::cluster::ClusterNodes;

/// Where a Redis command goes.
#[derive(Clone, Debug)]
pub enum Route {
    /// One fred pool routes everything itself: standalone, sentinel, or a cluster pool used as
    /// it was given.
    Pool(Pool),
    /// A cluster Tessera routes itself: the pool of the primary serving the key's slot
    /// (`cluster.rs`).
    Cluster(Arc<ClusterNodes>),
}

/// A pool and, where Tessera routes a cluster, the slot ranges of the primary it reaches.
#[derive(Debug)]
pub struct RoutePool {
    pub pool: Pool,
    pub slots: Option<Vec<(u16, u16)>>,
}

impl Route {
    /// The pool that serves `key`.
    pub fn pool_for(&self, key: &str) -> Result<Pool, FredError> {
        match self {
            Self::Pool(pool) => Ok(pool.clone()),
            Self::Cluster(nodes) => nodes.pool_for(key),
        }
    }

    /// Runs `command` on a connection that serves `key`: where Tessera routes a cluster, the
    /// primary of its slot, with the cluster's redirects followed ([`ClusterNodes::on_slot`]).
    pub async fn on_key<T, Sent: Future<Output = Result<T, FredError>>>(
        &self,
        key: &str,
        command: impl Fn(Client) -> Sent,
    ) -> Result<T, FredError> {
        match self {
            Self::Pool(pool) => command(pool.next().clone()).await,
            Self::Cluster(nodes) => nodes.on_slot(fred::util::redis_keyslot(key.as_bytes()), command).await,
        }
    }

    /// A pool for a command about the server rather than a key (INFO): any primary's.
    pub fn any_pool(&self) -> Result<Pool, FredError> {
        self.pool_for("")
    }

    /// Every pool: the one pool, or each primary's.
    pub fn pools(&self) -> Vec<RoutePool> {
        match self {
            Self::Pool(pool) => vec![RoutePool { pool: pool.clone(), slots: None }],
            Self::Cluster(nodes) => {
                nodes.nodes().into_iter().map(|node| RoutePool { pool: node.pool, slots: Some(node.slots) }).collect()
            }
        }
    }

    /// Whether the store is a cluster (however it is routed).
    pub fn is_cluster(&self) -> bool {
        match self {
            Self::Pool(pool) => pool.next().is_clustered(),
            Self::Cluster(_) => true,
        }
    }

    /// A command failed with `error`; a cluster routed here reads its slot map again if the
    /// error may mean it changed.
    pub fn report(&self, error: &FredError) {
        if let Self::Cluster(nodes) = self {
            nodes.report(error);
        }
    }
}

/// Whether two pools are the same (the same clients).
pub fn same_pool(one: &Pool, other: &Pool) -> bool {
    one.clients().first().map(ClientLike::id) == other.clients().first().map(ClientLike::id)
}
