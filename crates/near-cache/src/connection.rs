//! The connections the near cache trusts: each pooled connection's tracking, its invalidation
//! listener, and its heartbeat with canary keys. An entry is only as good as the connection
//! that vouched for it (see the crate docs for the invariants).

use std::sync::{
    Arc, Mutex, Weak,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use fred::{
    clients::{Client, Pool},
    error::Error as FredError,
    interfaces::{ClientLike, ClusterInterface, EventInterface, KeysInterface, TrackingInterface},
    types::config::Server,
};
use store::FlushCause;
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};

use crate::{NearCache, NearCacheError, millis, millis_i64};

/// Canary keys expire by themselves when their instance is gone.
const CANARY_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// What one pooled connection (one fred `Client`, one socket per node) vouches for.
#[derive(Debug)]
pub(crate) struct ConnectionState {
    /// For logs and canary names: unique within the cache.
    pub(crate) id: usize,
    pub(crate) client: Client,
    /// The slot ranges of the primary it reaches, where Tessera routes a cluster itself: its
    /// canary key must live in one of them.
    /// Replaced when the primary's slots change (a reshard).
    pub(crate) slots: Mutex<Option<Vec<(u16, u16)>>>,
    /// Its invalidation listener and heartbeat.
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Bumped by every flush of this connection; entries of an older epoch are misses.
    pub(crate) epoch: AtomicU64,
    /// Tracking confirmed on the current socket(s) and not lost since.
    pub(crate) trusted: AtomicBool,
    /// Milliseconds since the cache's origin at which the last good heartbeat was *sent*.
    pub(crate) last_alive_ms: AtomicU64,
    /// This connection's canary keys: one per node it talks to.
    pub(crate) canaries: Mutex<Vec<String>>,
}

impl ConnectionState {
    pub(crate) fn stop_tasks(&self) {
        for task in self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            task.abort();
        }
    }
}

pub(crate) struct Receivers {
    pub(crate) invalidations: tokio::sync::broadcast::Receiver<fred::types::client::Invalidation>,
    pub(crate) errors: tokio::sync::broadcast::Receiver<(FredError, Option<Server>)>,
    pub(crate) reconnects: tokio::sync::broadcast::Receiver<Server>,
}

impl Receivers {
    fn subscribe(client: &Client) -> Self {
        Self { invalidations: client.invalidation_rx(), errors: client.error_rx(), reconnects: client.reconnect_rx() }
    }
}

/// Applies one connection's invalidations and reacts to its errors and reconnections. Uses the
/// receivers directly: fred's `on_*` helpers stop silently at the first `Lagged`.
pub(crate) async fn listen(near: Weak<NearCache>, state: Arc<ConnectionState>, mut receivers: Receivers) {
    let connection = state.id;
    loop {
        if let Some(held) = near.upgrade().and_then(|near| near.listeners_held()) {
            tokio::time::sleep(held).await;
        }
        tokio::select! {
            message = receivers.invalidations.recv() => {
                let Some(near) = near.upgrade() else { return };
                match message {
                    Ok(invalidation) if invalidation.keys.is_empty() => near.invalidate_everything(Some(FlushCause::Flushed)),
                    Ok(invalidation) => {
                        for key in &invalidation.keys {
                            // A key that is not UTF-8 is not one this cache could hold.
                            if let Some(key) = key.as_str() {
                                near.invalidate(key);
                            }
                        }
                    }
                    Err(RecvError::Lagged(lost)) => {
                        tracing::warn!(connection, lost, "near cache invalidations were lost; flushing the connection's entries");
                        near.flush_connection(&state, FlushCause::Lagged, false);
                    }
                    Err(RecvError::Closed) => {
                        near.flush_connection(&state, FlushCause::Disconnect, true);
                        return;
                    }
                }
            }
            message = receivers.errors.recv() => {
                let Some(near) = near.upgrade() else { return };
                near.flush_connection(&state, FlushCause::Disconnect, true);
                if matches!(message, Err(RecvError::Closed)) {
                    return;
                }
            }
            message = receivers.reconnects.recv() => {
                let Some(near) = near.upgrade() else { return };
                near.flush_connection(&state, FlushCause::Reconnect, true);
                if matches!(message, Err(RecvError::Closed)) {
                    return;
                }
                if let Err(error) = near.enable_tracking(&state).await {
                    // The heartbeat retries: this connection stays untrusted until then.
                    tracing::warn!(%error, "near cache: tracking not restored after a reconnect");
                }
            }
        }
    }
}

/// Proves every `heartbeat_interval` that the connection answers and that its canaries still
/// exist; re-enables tracking when an earlier attempt failed.
pub(crate) async fn heartbeat(near: Weak<NearCache>, state: Arc<ConnectionState>) {
    let connection = state.id;
    let Some(interval) = near.upgrade().map(|near| near.settings.heartbeat_interval) else { return };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(near) = near.upgrade() else { return };
        if !state.trusted.load(Ordering::Acquire) {
            if let Err(error) = near.enable_tracking(&state).await {
                tracing::debug!(%error, "near cache: tracking still off");
            }
            continue;
        }
        let sent_at = near.now_ms();
        let canaries = state.canaries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let answer = tokio::time::timeout(near.settings.max_silence, renew_canaries(&state.client, &canaries)).await;
        match answer {
            Ok(Ok(true)) => state.last_alive_ms.store(sent_at, Ordering::Release),
            Ok(Ok(false)) => {
                tracing::info!(connection, "near cache: the keyspace was flushed; dropping every entry");
                near.invalidate_everything(Some(FlushCause::Flushed));
                if near.enable_tracking(&state).await.is_ok() {
                    state.last_alive_ms.store(sent_at, Ordering::Release);
                }
            }
            Ok(Err(_)) | Err(_) => {
                if state.last_alive_ms.load(Ordering::Acquire) + millis(near.settings.max_silence) >= sent_at {
                    near.flush_connection(&state, FlushCause::Unresponsive, false);
                }
            }
        }
    }
}

/// PEXPIRE on each canary: `false` when one is gone (the keyspace was flushed).
pub(crate) async fn renew_canaries(client: &Client, canaries: &[String]) -> Result<bool, FredError> {
    let pipeline = client.pipeline();
    for canary in canaries {
        let () = pipeline.pexpire(canary.as_str(), millis_i64(CANARY_TTL), None).await?;
    }
    let renewed: Vec<bool> = pipeline.all().await?;
    Ok(renewed.iter().all(|renewed| *renewed))
}

/// One canary key per node this connection reaches: in a cluster fred routes, a hash tag is
/// searched for each primary so the key lives on it; where Tessera routes the cluster, one
/// whose slot is in `slots` (its primary's ranges).
pub(crate) fn canary_keys(
    client: &Client,
    instance: &str,
    connection: usize,
    slots: Option<&[(u16, u16)]>,
) -> Vec<String> {
    let base = format!("tessera:near:canary:{instance}:{connection}");
    if let Some(slots) = slots {
        let served = |slot: u16| slots.iter().any(|&(first, last)| (first..=last).contains(&slot));
        return (0..100_000_u32)
            .map(|tag| format!("{base}:{{{tag}}}"))
            .find(|key| served(fred::util::redis_keyslot(key.as_bytes())))
            .into_iter()
            .collect();
    }
    let Some(routing) = client.is_clustered().then(|| client.cached_cluster_state()).flatten() else {
        return vec![base];
    };
    let mut primaries = routing.unique_primary_nodes();
    let mut keys = Vec::with_capacity(primaries.len());
    for tag in 0..100_000_u32 {
        if primaries.is_empty() {
            break;
        }
        let key = format!("{base}:{{{tag}}}");
        let slot = fred::util::redis_keyslot(key.as_bytes());
        if let Some(owner) = routing.get_server(slot)
            && let Some(position) = primaries.iter().position(|primary| primary == owner)
        {
            primaries.swap_remove(position);
            keys.push(key);
        }
    }
    keys
}

impl NearCache {
    /// Tracks every connection of `pool` not tracked yet: subscribes to its events, turns
    /// tracking on and starts its listener and heartbeat. `slots`: the ranges of the primary
    /// it reaches, where Tessera routes a cluster itself. A connection whose tracking could
    /// not be turned on is kept untrusted (its heartbeat retries) and the first such error
    /// returned.
    pub(crate) async fn attach(
        self: &Arc<Self>,
        pool: &Pool,
        slots: Option<&[(u16, u16)]>,
    ) -> Result<(), NearCacheError> {
        let mut first_error = None;
        for client in pool.clients() {
            if self.lock_connections().contains_key(client.id()) {
                continue;
            }
            let state = Arc::new(ConnectionState {
                id: self.next_connection_id.fetch_add(1, Ordering::Relaxed),
                client: client.clone(),
                slots: Mutex::new(slots.map(<[(u16, u16)]>::to_vec)),
                tasks: Mutex::new(Vec::new()),
                epoch: AtomicU64::new(0),
                trusted: AtomicBool::new(false),
                last_alive_ms: AtomicU64::new(0),
                canaries: Mutex::new(Vec::new()),
            });
            // Subscribe before turning tracking on, so no push or event can slip past.
            let receivers = Receivers::subscribe(client);
            self.connections
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(Arc::from(client.id()), Arc::clone(&state));
            if let Err(error) = self.enable_tracking(&state).await {
                first_error.get_or_insert(error);
            }
            let tasks = vec![
                tokio::spawn(listen(Arc::downgrade(self), Arc::clone(&state), receivers)),
                tokio::spawn(heartbeat(Arc::downgrade(self), Arc::clone(&state))),
            ];
            *state.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = tasks;
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Forgets every connection of `pool` (a server that is no longer a primary): stops its
    /// tasks and drops what it vouched for.
    pub(crate) fn detach(&self, pool: &Pool) {
        for client in pool.clients() {
            let removed =
                self.connections.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(client.id());
            if let Some(state) = removed {
                state.stop_tasks();
                self.flush_connection(&state, FlushCause::Disconnect, true);
            }
        }
    }

    /// The primary of `pool` serves `slots` now, fewer or others than before: what its
    /// connections vouched for is dropped (a key of a slot that moved away may be written on
    /// its new owner, which never tells these connections), and each connection is trusted
    /// again only once its heartbeat has placed canaries in the slots it serves now.
    pub(crate) fn slots_changed(&self, pool: &Pool, slots: &[(u16, u16)]) {
        for client in pool.clients() {
            let state = self.lock_connections().get(client.id()).cloned();
            if let Some(state) = state {
                *state.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(slots.to_vec());
                self.flush_connection(&state, FlushCause::SlotsMoved, true);
            }
        }
    }

    async fn enable_tracking(&self, state: &ConnectionState) -> Result<(), NearCacheError> {
        let connection = state.id;
        let failed = |error: FredError| NearCacheError::Tracking { connection, reason: error.details().to_owned() };
        let client = &state.client;
        state.trusted.store(false, Ordering::Release);
        let sent_at = self.now_ms();
        client.start_tracking(Vec::<String>::new(), false, false, false, false).await.map_err(failed)?;
        let slots = state.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let canaries = canary_keys(client, &self.instance, connection, slots.as_deref());
        for canary in &canaries {
            let () = client
                .set(canary.as_str(), "1", Some(fred::types::Expiration::PX(millis_i64(CANARY_TTL))), None, false)
                .await
                .map_err(failed)?;
        }
        *state.canaries.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = canaries;
        state.epoch.fetch_add(1, Ordering::AcqRel);
        state.last_alive_ms.store(sent_at, Ordering::Release);
        state.trusted.store(true, Ordering::Release);
        Ok(())
    }
}
