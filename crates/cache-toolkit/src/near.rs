//! The near cache (L1): string reads answered from process memory, kept coherent with Redis by
//! client tracking (RESP3, default mode) on every pooled connection. `docs/NEAR-CACHE.md` states
//! the facts about Redis 7.0 and fred 10.1 this design rests on; the invariants it keeps are:
//!
//! - **An invalidation wins against an in-flight read.** fred hands a reply to the caller's task
//!   and an invalidation push to the listener's task, so the listener can run first. Every read
//!   takes a ticket (the key's generation and its connection's epoch) before it is sent; the
//!   insert happens under the key's stripe lock and only while both are unchanged. An
//!   invalidation bumps the generation under the same lock, so it either cancels the insert or
//!   removes what was inserted.
//! - **An entry is only as good as the connection that vouched for it.** Each entry carries its
//!   connection's epoch; a disconnect, an error, a reconnect, a lagged receiver or a failed
//!   heartbeat bumps the epoch (the entries become misses) and removes them. After a reconnect
//!   nothing is inserted until `CLIENT TRACKING ON` is confirmed on the new connection.
//! - **Silence is not consent.** An entry is served only while its connection answered a
//!   heartbeat within `max_silence` (750 ms by default): a frozen or half-open Redis sends no
//!   invalidations, so its entries stop being served.
//! - **FLUSHALL / FLUSHDB are seen within a heartbeat.** Redis announces them with a null
//!   invalidation that fred 10.1 drops; each connection's heartbeat renews canary keys of its
//!   own, and a missing canary flushes the whole near cache.
//! - **An entry lives at most min(`max_ttl`, the key's PTTL when read).** The cap is drawn for
//!   each entry between 90 % and 100 % of `max_ttl`, so entries filled together (a cold start,
//!   a flush, a reconnection) do not all expire, and miss, in the same second every `max_ttl`.
//! - Only plain GETs are cached: never a script's result (keys a script reads by names built
//!   from ARGV are not tracked before Redis 7.2).

mod store;

use std::{
    any::Any,
    collections::HashMap,
    hash::BuildHasher,
    sync::{
        Arc, Mutex, RwLock, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use fred::{
    clients::{Client, Pool},
    error::Error as FredError,
    interfaces::{ClientLike, ClusterInterface, EventInterface, KeysInterface, ListInterface, TrackingInterface},
    types::{InfoKind, config::Server},
};
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle, time::Instant};

use self::store::NearStore;
use crate::{
    CacheEvent, FlushCause, decoded::DecodedSlot, embedded::EmbeddedVerdict, metrics::CacheMetrics, route::Route,
};

/// Lock stripes for per-key generations: a collision only cancels an unrelated insert.
const GENERATION_STRIPES: usize = 1_024;
/// Fixed per-entry overhead counted against `max_bytes` on top of key and value.
const ENTRY_OVERHEAD_BYTES: usize = 96;
/// Canary keys expire by themselves when their instance is gone.
const CANARY_TTL: Duration = Duration::from_secs(60);
/// The oldest Redis whose invalidations always follow the read's reply (redis #9422).
const MINIMUM_REDIS_MAJOR: u64 = 7;

/// How the near cache behaves. Built once; see the field docs for the defaults.
#[derive(Clone, Debug)]
pub struct NearCacheSettings {
    /// Memory bound for keys and values (64 MiB by default).
    pub max_bytes: u64,
    /// No entry lives longer than this, whatever its TTL in Redis (30 s by default); each
    /// entry's cap is drawn between 90 % and 100 % of it.
    pub max_ttl: Duration,
    /// How often each connection proves it is alive and the keyspace was not flushed (250 ms).
    pub heartbeat_interval: Duration,
    /// Entries of a connection that has not answered a heartbeat for this long are not served
    /// (750 ms by default): the bound on staleness when Redis freezes or a socket goes half-open.
    /// Reads then go to Redis and fail at its command timeout: with the default 1 s, a frozen
    /// Redis answers 503 within 1.75 s of the freeze and never from memory after 750 ms. Reads
    /// are not failed fast on a silent connection: under CPU overload heartbeats arrive late,
    /// and that would turn slowness into errors.
    pub max_silence: Duration,
}

impl Default for NearCacheSettings {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_ttl: Duration::from_secs(30),
            heartbeat_interval: Duration::from_millis(250),
            max_silence: Duration::from_millis(750),
        }
    }
}

/// Why the near cache could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NearCacheError {
    #[error("near cache: invalid setting {setting}: {problem}")]
    InvalidSetting { setting: &'static str, problem: &'static str },
    #[error("near cache: Redis {version} is older than 7.0, whose invalidations can arrive inside replies")]
    RedisTooOld { version: String },
    #[error("near cache: cannot read the Redis version: {0}")]
    Version(String),
    #[error("near cache: cannot turn on client tracking on connection {connection}: {reason}")]
    Tracking { connection: usize, reason: String },
}

/// What an entry holds: a string key's value (or its absence: a tracked miss), or a whole list
/// (LRANGE 0 -1; empty when the key is missing).
#[derive(Clone, Debug)]
pub(crate) enum NearValue {
    Text(Option<Arc<str>>),
    List(Arc<[String]>),
}

impl NearValue {
    fn bytes(&self) -> usize {
        match self {
            Self::Text(value) => value.as_deref().map_or(0, str::len),
            Self::List(items) => items.iter().map(|item| item.len() + 24).sum(),
        }
    }
}

/// One cached key: its value, the connection that vouched for it at which epoch, and the
/// value's decoded form once a reader asked for it (see [`NearCache::lookup_decoded_if_cached`]).
#[derive(Debug)]
struct NearEntry {
    value: NearValue,
    connection: Arc<ConnectionState>,
    epoch: u64,
    decoded: DecodedSlot,
    /// When the store lets go of it: set by the store on every removal ([`store::Retire`]).
    retired: AtomicBool,
    /// The store's expiry of the entry, in the cache's milliseconds.
    expires_at_ms: u64,
}

impl store::Retire for Arc<NearEntry> {
    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }
}

/// A list-membership verdict remembered against the list it was read from: the near cache's
/// entry for the list, or the embedded store's list itself. While that list is unchanged and
/// may still be served, asking again answers from here without a lookup. Whoever asks the
/// same question over and over (the DAO, for a token and its user's list) keeps one;
/// [`crate::CacheClient::list_contains_remembered`].
#[derive(Debug, Default)]
pub struct ListVerdict {
    remembered: Mutex<Option<Remembered>>,
}

#[derive(Debug)]
enum Remembered {
    /// Read from this near-cache entry of the list.
    Near(Arc<NearEntry>, bool),
    /// Read from the embedded store's list.
    Embedded(EmbeddedVerdict),
}

impl ListVerdict {
    /// The embedded store's verdict, if one is remembered and still holds at `now`.
    pub(crate) fn embedded(&self, now: Instant) -> Option<bool> {
        match &*self.remembered.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Some(Remembered::Embedded(verdict)) => verdict.still(now),
            _ => None,
        }
    }

    pub(crate) fn remember_embedded(&self, verdict: EmbeddedVerdict) {
        *self.remembered.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Remembered::Embedded(verdict));
    }
}

/// What one pooled connection (one fred `Client`, one socket per node) vouches for.
#[derive(Debug)]
struct ConnectionState {
    /// For logs and canary names: unique within the cache.
    id: usize,
    client: Client,
    /// The slot ranges of the primary it reaches, where Tessera routes a cluster itself: its
    /// canary key must live in one of them.
    slots: Option<Vec<(u16, u16)>>,
    /// Its invalidation listener and heartbeat.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Bumped by every flush of this connection; entries of an older epoch are misses.
    epoch: AtomicU64,
    /// Tracking confirmed on the current socket(s) and not lost since.
    trusted: AtomicBool,
    /// Milliseconds since the cache's origin at which the last good heartbeat was *sent*.
    last_alive_ms: AtomicU64,
    /// This connection's canary keys: one per node it talks to.
    canaries: Mutex<Vec<String>>,
}

/// Taken before a read is sent; the read's answer is inserted only if nothing moved since.
#[derive(Clone, Debug)]
pub(crate) struct InsertTicket {
    connection: Arc<ConnectionState>,
    epoch: u64,
    generation: u64,
}

pub(crate) struct NearCache {
    entries: NearStore<Arc<NearEntry>>,
    generations: Box<[Mutex<u64>]>,
    stripe_hasher: foldhash::fast::FixedState,
    /// Every tracked connection, by its fred client's id.
    connections: RwLock<HashMap<Arc<str>, Arc<ConnectionState>>>,
    next_connection_id: AtomicUsize,
    settings: NearCacheSettings,
    metrics: Arc<CacheMetrics>,
    origin: Instant,
    instance: String,
    /// Test hooks: hold the invalidation listeners, delay inserts (see `CacheClient`).
    listeners_held_until_ms: AtomicU64,
    insert_delay_micros: AtomicU64,
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NearCache")
            .field("entries", &self.entries.len())
            .field("connections", &self.lock_connections().len())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Drop for NearCache {
    fn drop(&mut self) {
        let connections = self.connections.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        for state in connections.values() {
            state.stop_tasks();
        }
    }
}

impl ConnectionState {
    fn stop_tasks(&self) {
        for task in self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            task.abort();
        }
    }
}

impl NearCache {
    /// Checks the Redis version, turns tracking on for every pooled connection and starts one
    /// listener and one heartbeat task per connection. The tasks stop when the cache is dropped.
    /// Where Tessera routes a cluster itself, primaries that appear later are tracked as they
    /// come, and those that go are forgotten ([`Self::attach`], [`Self::detach`]).
    pub(crate) async fn start(
        route: &Route,
        settings: NearCacheSettings,
        metrics: Arc<CacheMetrics>,
    ) -> Result<Arc<Self>, NearCacheError> {
        check_settings(&settings)?;
        let any = route.any_pool().map_err(|error| NearCacheError::Version(error.details().to_owned()))?;
        check_redis_version(any.next()).await?;
        let entries = NearStore::new(settings.max_bytes, Arc::clone(&metrics));
        let near = Arc::new(Self {
            entries,
            generations: (0..GENERATION_STRIPES).map(|_| Mutex::new(0)).collect(),
            stripe_hasher: foldhash::fast::FixedState::default(),
            connections: RwLock::new(HashMap::new()),
            next_connection_id: AtomicUsize::new(0),
            settings,
            metrics,
            origin: Instant::now(),
            instance: format!("{:016x}", rand::random::<u64>()),
            listeners_held_until_ms: AtomicU64::new(0),
            insert_delay_micros: AtomicU64::new(0),
        });
        if let Route::Cluster(nodes) = route {
            nodes.follow_with(Arc::downgrade(&near));
        }
        for node in route.pools() {
            near.attach(&node.pool, node.slots.as_deref()).await?;
        }
        Ok(near)
    }

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
                slots: slots.map(<[(u16, u16)]>::to_vec),
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

    fn lock_connections(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Arc<ConnectionState>>> {
        self.connections.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn stripe(&self, key: &str) -> std::sync::MutexGuard<'_, u64> {
        let index = (self.stripe_hasher.hash_one(key) % GENERATION_STRIPES as u64) as usize;
        self.generations[index].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The connection that reads `key` (stable per key, spread over the pool of its primary),
    /// and its state: `None` when it is not tracked (a primary just appeared).
    fn connection(&self, route: &Route, key: &str) -> Result<(Client, Option<Arc<ConnectionState>>), FredError> {
        let pool = route.pool_for(key)?;
        let index = self.stripe_hasher.hash_one(key).rotate_left(17) as usize % pool.size().max(1);
        let client = pool.clients()[index].clone();
        let state = self.lock_connections().get(client.id()).cloned();
        Ok((client, state))
    }

    fn serves(&self, state: &ConnectionState, now_ms: u64) -> bool {
        let silence = now_ms.saturating_sub(state.last_alive_ms.load(Ordering::Acquire));
        state.trusted.load(Ordering::Acquire) && silence <= millis(self.settings.max_silence)
    }

    /// What L1 may serve for the string key `key` now, without counting.
    pub(crate) fn peek(&self, key: &str) -> Option<Option<String>> {
        match &self.servable(key)?.value {
            NearValue::Text(value) => Some(value.as_deref().map(str::to_owned)),
            NearValue::List(_) => None,
        }
    }

    fn servable(&self, key: &str) -> Option<Arc<NearEntry>> {
        let now_ms = self.now_ms();
        let entry = self.entries.get(key, now_ms)?;
        let state = &entry.connection;
        (entry.epoch == state.epoch.load(Ordering::Acquire) && self.serves(state, now_ms)).then_some(entry)
    }

    fn counted<T>(&self, found: Option<T>) -> Option<T> {
        self.metrics.count(if found.is_some() { CacheEvent::NearHit } else { CacheEvent::NearMiss });
        found
    }

    /// The cached value of the string key `key` (which may be "missing"), or `None` when L1
    /// cannot answer.
    pub(crate) fn lookup(&self, key: &str) -> Option<Option<String>> {
        let found = self.servable(key).and_then(|entry| match &entry.value {
            NearValue::Text(value) => Some(value.as_deref().map(str::to_owned)),
            NearValue::List(_) => None,
        });
        self.counted(found)
    }

    /// [`Self::lookup`] for a caller that reads elsewhere when L1 cannot answer: a hit is
    /// counted, a miss is left to the read that follows.
    pub(crate) fn lookup_if_cached(&self, key: &str) -> Option<Option<String>> {
        match &self.servable(key)?.value {
            NearValue::Text(value) => {
                self.metrics.count(CacheEvent::NearHit);
                Some(value.as_deref().map(str::to_owned))
            }
            NearValue::List(_) => None,
        }
    }

    /// [`Self::lookup_if_cached`], decoded by `decode`: the decoded form is kept with the
    /// entry, so a value read again and again is decoded once, and goes when the entry goes.
    /// (A reader asking for another type than the one kept decodes afresh.)
    pub(crate) fn lookup_decoded_if_cached<T: Any + Send + Sync>(
        &self,
        key: &str,
        decode: impl Fn(&str) -> T,
    ) -> Option<Option<Arc<T>>> {
        let entry = self.servable(key)?;
        let NearValue::Text(value) = &entry.value else { return None };
        self.metrics.count(CacheEvent::NearHit);
        let Some(text) = value.as_deref() else { return Some(None) };
        Some(Some(entry.decoded.get_or_decode(text, decode)))
    }

    /// The verdict `memo` remembers, if the list entry it was read from may still be served
    /// (not retired by the store, its connection's epoch unchanged and vouching, not expired):
    /// what a lookup of the list would answer, without the lookup. Counted as a hit.
    pub(crate) fn remembered_verdict(&self, memo: &ListVerdict) -> Option<bool> {
        let remembered = memo.remembered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(Remembered::Near(entry, listed)) = remembered.as_ref() else { return None };
        let now_ms = self.now_ms();
        let state = &entry.connection;
        let servable = !entry.retired.load(Ordering::Acquire)
            && entry.expires_at_ms > now_ms
            && entry.epoch == state.epoch.load(Ordering::Acquire)
            && self.serves(state, now_ms);
        let listed = *listed;
        drop(remembered);
        servable.then(|| {
            self.metrics.count(CacheEvent::NearHit);
            listed
        })
    }

    /// Remembers in `memo` whether the list `key`, as the near cache holds it now, holds
    /// `element`; nothing when it holds no servable entry for `key`.
    pub(crate) fn remember_verdict(&self, key: &str, element: &str, memo: &ListVerdict) {
        let Some(entry) = self.servable(key) else { return };
        let NearValue::List(items) = &entry.value else { return };
        let listed = items.iter().any(|item| item == element);
        *memo.remembered.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Remembered::Near(entry, listed));
    }

    /// The cached items of the list `key`, or `None` when L1 cannot answer.
    pub(crate) fn lookup_list(&self, key: &str) -> Option<Arc<[String]>> {
        let found = self.servable(key).and_then(|entry| match &entry.value {
            NearValue::List(items) => Some(Arc::clone(items)),
            NearValue::Text(_) => None,
        });
        self.counted(found)
    }

    /// A ticket for a read of `key` on `connection`; `None` when that connection's answers
    /// cannot be cached now (not tracked, tracking not confirmed, or silent).
    fn ticket(&self, connection: Option<&Arc<ConnectionState>>, key: &str) -> Option<InsertTicket> {
        let state = connection?;
        let epoch = state.epoch.load(Ordering::Acquire);
        if !self.serves(state, self.now_ms()) {
            return None;
        }
        let generation = *self.stripe(key);
        Some(InsertTicket { connection: Arc::clone(state), epoch, generation })
    }

    /// GET + PTTL on the connection that tracks `key`, pipelined (one round trip), and the
    /// answer cached if no invalidation or flush happened meanwhile.
    pub(crate) async fn read_through(&self, route: &Route, key: &str) -> Result<Option<String>, FredError> {
        let (client, connection) = self.connection(route, key)?;
        let ticket = self.ticket(connection.as_ref(), key);
        let pipeline = client.pipeline();
        let () = pipeline.get(key).await?;
        let () = pipeline.pttl(key).await?;
        let (value, pttl): (Option<String>, i64) = pipeline.all().await?;
        self.delay_insert().await;
        self.insert(ticket, key, NearValue::Text(value.as_deref().map(Arc::from)), pttl);
        Ok(value)
    }

    /// LRANGE 0 -1 + PTTL of the list `key`, like [`Self::read_through`].
    pub(crate) async fn read_list_through(&self, route: &Route, key: &str) -> Result<Arc<[String]>, FredError> {
        let (client, connection) = self.connection(route, key)?;
        let ticket = self.ticket(connection.as_ref(), key);
        let (items, pttl) = read_list(&client, key).await?;
        let items: Arc<[String]> = items.into();
        self.delay_insert().await;
        self.insert(ticket, key, NearValue::List(Arc::clone(&items)), pttl);
        Ok(items)
    }

    /// The string `key` and the whole list `list` in one round trip (GET, PTTL, LRANGE, PTTL
    /// pipelined on the connection that tracks `key`; in a cluster fred routes, the pipeline
    /// may span nodes of that one client, all tracked; in a cluster Tessera routes, each key
    /// is read on its own primary's connection, both at once), each cached under its own ticket.
    pub(crate) async fn read_text_and_list_through(
        &self,
        route: &Route,
        key: &str,
        list: &str,
    ) -> Result<(Option<String>, Arc<[String]>), FredError> {
        let (client, connection) = self.connection(route, key)?;
        let (list_client, list_connection) = match route {
            Route::Pool(_) => (client.clone(), connection.clone()),
            Route::Cluster(_) => self.connection(route, list)?,
        };
        let text_ticket = self.ticket(connection.as_ref(), key);
        let list_ticket = self.ticket(list_connection.as_ref(), list);
        let ((value, value_pttl), (items, list_pttl)): ((Option<String>, i64), (Vec<String>, i64)) =
            if client.id() == list_client.id() {
                let pipeline = client.pipeline();
                let () = pipeline.get(key).await?;
                let () = pipeline.pttl(key).await?;
                let () = pipeline.lrange(list, 0, -1).await?;
                let () = pipeline.pttl(list).await?;
                let (value, value_pttl, items, list_pttl) = pipeline.all().await?;
                ((value, value_pttl), (items, list_pttl))
            } else {
                futures::future::try_join(read_text(&client, key), read_list(&list_client, list)).await?
            };
        let items: Arc<[String]> = items.into();
        self.delay_insert().await;
        self.insert(text_ticket, key, NearValue::Text(value.as_deref().map(Arc::from)), value_pttl);
        self.insert(list_ticket, list, NearValue::List(Arc::clone(&items)), list_pttl);
        Ok((value, items))
    }

    async fn delay_insert(&self) {
        let delay = self.insert_delay_micros.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_micros(delay)).await;
        }
    }

    fn insert(&self, ticket: Option<InsertTicket>, key: &str, value: NearValue, pttl: i64) {
        let Some(ticket) = ticket else { return };
        let cap_ms = spread_lifetime_ms(millis(self.settings.max_ttl), rand::random());
        let lifetime_ms = match u64::try_from(pttl) {
            Ok(0) => return,
            Ok(left) => left.min(cap_ms),
            // -1: no TTL; -2: missing (a tracked miss): the cap alone bounds the entry.
            Err(_) => cap_ms,
        };
        let weight = key.len() + value.bytes() + ENTRY_OVERHEAD_BYTES;
        let Ok(weight) = u32::try_from(weight) else { return };
        let now_ms = self.now_ms();
        let generation = self.stripe(key);
        let state = &ticket.connection;
        if *generation != ticket.generation
            || state.epoch.load(Ordering::Acquire) != ticket.epoch
            || !state.trusted.load(Ordering::Acquire)
        {
            drop(generation);
            self.metrics.count(CacheEvent::NearInsertCancelled);
            return;
        }
        let entry = NearEntry {
            value,
            connection: Arc::clone(&ticket.connection),
            epoch: ticket.epoch,
            decoded: DecodedSlot::default(),
            retired: AtomicBool::new(false),
            expires_at_ms: now_ms.saturating_add(lifetime_ms),
        };
        self.entries.insert(key, Arc::new(entry), weight, lifetime_ms, now_ms);
        drop(generation);
        self.metrics.count(CacheEvent::NearInsert);
    }

    /// Drops `key` and cancels any read of it in flight: for a push from Redis, and for this
    /// process's own writes (whose push only arrives after the write returned).
    pub(crate) fn invalidate(&self, key: &str) {
        let mut generation = self.stripe(key);
        *generation = generation.wrapping_add(1);
        self.entries.remove(key);
        drop(generation);
        self.metrics.count(CacheEvent::NearInvalidation);
    }

    /// Drops everything and cancels every read in flight (a flushed keyspace, a pattern delete).
    pub(crate) fn invalidate_everything(&self, cause: Option<FlushCause>) {
        // Every stripe is held at once, so no insert slips between the bumps and the clear.
        let mut stripes: Vec<_> = self
            .generations
            .iter()
            .map(|stripe| stripe.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
            .collect();
        for generation in &mut stripes {
            **generation = generation.wrapping_add(1);
        }
        for state in self.lock_connections().values() {
            state.epoch.fetch_add(1, Ordering::AcqRel);
        }
        self.entries.clear();
        drop(stripes);
        if let Some(cause) = cause {
            self.metrics.count_flush(cause);
        }
    }

    /// Forgets what `state`'s connection vouched for. `distrust`: also stop caching its answers
    /// until tracking is confirmed again.
    fn flush_connection(&self, state: &Arc<ConnectionState>, cause: FlushCause, distrust: bool) {
        if distrust {
            state.trusted.store(false, Ordering::Release);
        }
        state.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.remove_if(|entry| Arc::ptr_eq(&entry.connection, state));
        self.metrics.count_flush(cause);
        tracing::debug!(connection = state.id, cause = cause.name(), "near cache flushed a connection's entries");
    }

    /// `CLIENT TRACKING ON` (default mode: on every primary in a cluster fred routes), then the
    /// canary keys, then trust. Inserts stay off until this returns `Ok`.
    async fn enable_tracking(&self, state: &ConnectionState) -> Result<(), NearCacheError> {
        let connection = state.id;
        let failed = |error: FredError| NearCacheError::Tracking { connection, reason: error.details().to_owned() };
        let client = &state.client;
        state.trusted.store(false, Ordering::Release);
        let sent_at = self.now_ms();
        client.start_tracking(Vec::<String>::new(), false, false, false, false).await.map_err(failed)?;
        let canaries = canary_keys(client, &self.instance, connection, state.slots.as_deref());
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

    fn listeners_held(&self) -> Option<Duration> {
        let until = self.listeners_held_until_ms.load(Ordering::Acquire);
        let now = self.now_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    pub(crate) fn hold_listeners_for(&self, duration: Duration) {
        self.listeners_held_until_ms.store(self.now_ms() + millis(duration), Ordering::Release);
    }

    pub(crate) fn delay_inserts_by(&self, delay: Duration) {
        self.insert_delay_micros.store(u64::try_from(delay.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn settings(&self) -> &NearCacheSettings {
        &self.settings
    }
}

struct Receivers {
    invalidations: tokio::sync::broadcast::Receiver<fred::types::client::Invalidation>,
    errors: tokio::sync::broadcast::Receiver<(FredError, Option<Server>)>,
    reconnects: tokio::sync::broadcast::Receiver<Server>,
}

impl Receivers {
    fn subscribe(client: &Client) -> Self {
        Self { invalidations: client.invalidation_rx(), errors: client.error_rx(), reconnects: client.reconnect_rx() }
    }
}

/// Applies one connection's invalidations and reacts to its errors and reconnections. Uses the
/// receivers directly: fred's `on_*` helpers stop silently at the first `Lagged`.
async fn listen(near: Weak<NearCache>, state: Arc<ConnectionState>, mut receivers: Receivers) {
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
async fn heartbeat(near: Weak<NearCache>, state: Arc<ConnectionState>) {
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
async fn renew_canaries(client: &Client, canaries: &[String]) -> Result<bool, FredError> {
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
fn canary_keys(client: &Client, instance: &str, connection: usize, slots: Option<&[(u16, u16)]>) -> Vec<String> {
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

/// GET + PTTL of `key`, pipelined on `client`.
async fn read_text(client: &Client, key: &str) -> Result<(Option<String>, i64), FredError> {
    let pipeline = client.pipeline();
    let () = pipeline.get(key).await?;
    let () = pipeline.pttl(key).await?;
    pipeline.all().await
}

/// LRANGE 0 -1 + PTTL of the list `key`, pipelined on `client`.
async fn read_list(client: &Client, key: &str) -> Result<(Vec<String>, i64), FredError> {
    let pipeline = client.pipeline();
    let () = pipeline.lrange(key, 0, -1).await?;
    let () = pipeline.pttl(key).await?;
    pipeline.all().await
}

fn check_settings(settings: &NearCacheSettings) -> Result<(), NearCacheError> {
    let invalid = |setting, problem| Err(NearCacheError::InvalidSetting { setting, problem });
    if settings.max_bytes == 0 {
        return invalid("max_bytes", "must be more than 0");
    }
    if settings.max_ttl < Duration::from_millis(1) {
        return invalid("max_ttl", "must be at least 1 ms");
    }
    if settings.heartbeat_interval < Duration::from_millis(1) {
        return invalid("heartbeat_interval", "must be at least 1 ms");
    }
    if settings.max_silence <= settings.heartbeat_interval {
        return invalid("max_silence", "must be longer than heartbeat_interval");
    }
    Ok(())
}

async fn check_redis_version(client: &Client) -> Result<(), NearCacheError> {
    let info: String = client
        .info(Some(InfoKind::Server))
        .await
        .map_err(|error| NearCacheError::Version(error.details().to_owned()))?;
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(str::trim)
        .ok_or_else(|| NearCacheError::Version("INFO server has no redis_version".to_owned()))?;
    let major: u64 = version.split('.').next().and_then(|major| major.parse().ok()).unwrap_or(0);
    if major < MINIMUM_REDIS_MAJOR {
        return Err(NearCacheError::RedisTooOld { version: version.to_owned() });
    }
    Ok(())
}

/// An entry's cap on its lifetime: `max_ttl_ms` less up to a tenth of it, picked by `draw`
/// (uniform over `u64`), so that entries filled in the same second spread their expiries.
fn spread_lifetime_ms(max_ttl_ms: u64, draw: u64) -> u64 {
    let spread = max_ttl_ms / 10;
    max_ttl_ms - draw % (spread + 1)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn millis_i64(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::spread_lifetime_ms;

    #[test]
    fn lifetime_caps_spread_over_the_top_tenth_of_max_ttl() {
        assert_eq!(spread_lifetime_ms(30_000, 0), 30_000);
        assert_eq!(spread_lifetime_ms(30_000, 3_000), 27_000);
        assert_eq!(spread_lifetime_ms(30_000, 3_001), 30_000);
        assert_eq!(spread_lifetime_ms(1, u64::MAX), 1);
        let caps: std::collections::BTreeSet<u64> =
            (0..1_000).map(|_| spread_lifetime_ms(30_000, rand::random())).collect();
        assert!(caps.iter().all(|cap| (27_000..=30_000).contains(cap)));
        assert!(caps.len() > 500, "1,000 draws gave only {} distinct caps", caps.len());
    }
}
