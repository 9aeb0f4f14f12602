//! [`ReplicaWait`]: writes that should survive a failover wait, bounded, for the master's
//! replicas to acknowledge them (Redis `WAIT`).
//!
//! `WAIT n timeout` answers once `n` replicas have acknowledged every write made *on the
//! connection that sends it* (Redis remembers each connection's last replicated offset), or at
//! the timeout with how many did. The writes go through the pool, over any of its connections,
//! so after they have all answered, one connection sends a `PUBLISH` to a channel nobody
//! listens to ([`BARRIER_CHANNEL`]; Redis replicates every PUBLISH) and then the WAIT: the
//! replication stream is one ordered stream, so replicas that have the PUBLISH have every write
//! that answered before it. A master without replicas would make every WAIT last its whole
//! timeout, so the number of connected replicas is read first (`INFO replication`, remembered
//! for [`REPLICA_COUNT_FRESHNESS`]) and nothing is sent when there are none. While a WAIT
//! blocks, Redis answers nothing else on that connection: commands other tasks queued on it
//! wait as well (at most the timeout).
//!
//! Not awaited: the embedded store (nothing to replicate), a zero timeout (off), and a Redis
//! Cluster, where writes land on several primaries, each with replicas of its own, and a PUBLISH
//! is not replicated (docs/FRED.md).
//!
//! Each awaited wait is counted as [`CacheEvent::ReplicasAcknowledged`] or
//! [`CacheEvent::ReplicasUnconfirmed`]; after an unconfirmed one the replica count is read again.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use fred::{
    interfaces::{ClientLike, PubsubInterface, ServerInterface},
    types::{InfoKind, config::Options},
};

use crate::{CacheClient, CacheError, CacheEvent, Op};
use store::redis::millis;

/// The channel of the PUBLISH that orders a connection after writes made on others.
const BARRIER_CHANNEL: &str = "tessera:replication-barrier";

/// How long a replica count read from the master is trusted.
const REPLICA_COUNT_FRESHNESS: Duration = Duration::from_secs(1);

/// What became of the wait for replicas after some writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    /// Nothing to wait for: the embedded store, waiting off, a cluster, or a master without replicas.
    NotAwaited,
    /// Every connected replica acknowledged the writes.
    Acknowledged { replicas: u64 },
    /// Fewer than `expected` replicas acknowledged within the wait, or the WAIT itself failed
    /// (`acknowledged` 0): the writes hold on the master but a failover now may lose them.
    Unconfirmed { acknowledged: u64, expected: u64 },
}

/// Runs writes on one connection and waits, at most `timeout`, for the replicas to acknowledge
/// them. One per purpose (it remembers the replica count); share it behind an `Arc`.
#[derive(Debug)]
pub struct ReplicaWait {
    timeout: Duration,
    /// The master's replica count and when it was read.
    known_replicas: Mutex<Option<(u64, Instant)>>,
}

impl ReplicaWait {
    /// `timeout` zero: never wait.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout, known_replicas: Mutex::new(None) }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Awaits `writes` (the caller's operations on `cache`), then waits for the replicas as the
    /// module says. An error of `writes` is returned as it is (no WAIT); a failed WAIT is not an
    /// error (the writes are done) but [`Replication::Unconfirmed`].
    pub async fn run<T>(
        &self,
        cache: &CacheClient,
        writes: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<(T, Replication), CacheError> {
        let value = writes.await?;
        // On Redis, scripts run everywhere but on a cluster.
        if self.timeout.is_zero() || cache.store_kind() != crate::StoreKind::Redis || !cache.runs_scripts() {
            return Ok((value, Replication::NotAwaited));
        }
        // Boxed: fred's futures are large, and this one is rare (revocations).
        let replication = Box::pin(self.wait_for_replicas(cache)).await;
        match replication {
            Replication::NotAwaited => {}
            Replication::Acknowledged { .. } => cache.metrics().count(CacheEvent::ReplicasAcknowledged),
            Replication::Unconfirmed { .. } => {
                cache.metrics().count(CacheEvent::ReplicasUnconfirmed);
                // The replica count may have changed (a replica gone): read it again next time.
                *self.lock_known() = None;
            }
        }
        Ok((value, replication))
    }

    async fn wait_for_replicas(&self, cache: &CacheClient) -> Replication {
        let expected = match self.replica_count(cache).await {
            Ok(0) => return Replication::NotAwaited,
            Ok(count) => count,
            Err(error) => {
                tracing::warn!(%error, "cannot read the replica count: writes not confirmed on replicas");
                return Replication::Unconfirmed { acknowledged: 0, expected: 1 };
            }
        };
        let (timeout, wanted) = (millis(self.timeout), i64::try_from(expected).unwrap_or(i64::MAX));
        // fred's command timeout would cut a WAIT that lasts its whole bound: allow that plus a second.
        let options = Options { timeout: Some(self.timeout + Duration::from_secs(1)), ..Options::default() };
        let acknowledged = cache
            .call(
                Op::ReplicationBarrier,
                BARRIER_CHANNEL,
                async |route| {
                    let pool = route.any_pool()?;
                    let connection = pool.next();
                    let _receivers: i64 = connection.publish(BARRIER_CHANNEL, "").await?;
                    connection.with_options(&options).wait::<i64>(wanted, timeout).await
                },
                |_| Ok(0),
            )
            .await;
        match acknowledged {
            Ok(count) => {
                let acknowledged = u64::try_from(count).unwrap_or(0);
                if acknowledged >= expected {
                    Replication::Acknowledged { replicas: acknowledged }
                } else {
                    Replication::Unconfirmed { acknowledged, expected }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "WAIT failed: writes not confirmed on replicas");
                Replication::Unconfirmed { acknowledged: 0, expected }
            }
        }
    }

    /// The master's connected replicas (`connected_slaves` of `INFO replication`), cached.
    async fn replica_count(&self, cache: &CacheClient) -> Result<u64, CacheError> {
        if let Some((count, read_at)) = *self.lock_known()
            && read_at.elapsed() < REPLICA_COUNT_FRESHNESS
        {
            return Ok(count);
        }
        let info = cache
            .call(
                Op::ReplicaCount,
                "",
                async |route| route.any_pool()?.next().info::<String>(Some(InfoKind::Replication)).await,
                |_| Ok(String::new()),
            )
            .await?;
        let count = info
            .lines()
            .find_map(|line| line.strip_prefix("connected_slaves:"))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0);
        *self.lock_known() = Some((count, Instant::now()));
        Ok(count)
    }

    fn lock_known(&self) -> std::sync::MutexGuard<'_, Option<(u64, Instant)>> {
        self.known_replicas.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
