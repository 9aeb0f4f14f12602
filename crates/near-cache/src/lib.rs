//! The near cache (L1): string and list reads answered from process memory, kept coherent with
//! Redis by client tracking (RESP3, default mode) on every pooled connection.
//! `docs/NEAR-CACHE.md` states the facts about Redis 7.0 and fred 10.1 this design rests on; the
//! invariants it keeps are:
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
//! - Only plain reads (GET, LRANGE of a whole list) are cached: never a script's result (keys a
//!   script reads by names built from ARGV are not tracked before Redis 7.2).
//!
//! `cache-toolkit`'s `CacheClient::with_near_cache` starts it, and it answers that client's
//! `get_value` (so `get_json` and `get_or_load`), `get_list` and `list_contains`. The caller's
//! own writes invalidate too: `CacheClient::call` drops the key of every operation whose
//! [`store::Op`] is not read-only before the call returns. On a cluster Tessera routes itself,
//! the connections of a primary that appears later are tracked as it comes and those of one that
//! leaves are detached, their entries flushed ([`store::PrimaryWatcher`]).

mod connection;
mod entries;
mod settings;
mod verdict;

use std::{
    any::Any,
    collections::HashMap,
    hash::BuildHasher,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use fred::{
    clients::Client,
    error::Error as FredError,
    interfaces::{ClientLike, KeysInterface, ListInterface},
};
use tokio::time::Instant;

use store::{
    CacheEvent, CacheMetrics, FlushCause, PrimaryGate, PrimaryWatcher, Route, WatcherReply, decoded::DecodedSlot,
};

use self::{
    connection::ConnectionState,
    entries::NearStore,
    settings::{check_redis_version, check_settings},
};
pub use self::{
    settings::{NearCacheError, NearCacheSettings},
    verdict::ListVerdict,
};

/// Lock stripes for per-key generations: a collision only cancels an unrelated insert.
const GENERATION_STRIPES: usize = 1_024;
/// What the allocator adds to each allocation (glibc's chunk header, rounded), counted once per
/// heap block an entry holds.
const ALLOCATION_BYTES: usize = 16;
/// An `Arc`'s two reference counts, ahead of what it holds.
const ARC_COUNTS_BYTES: usize = 2 * size_of::<usize>();
/// Heap an entry costs besides its key's and value's bytes: the `NearEntry` in its `Arc`, the
/// key's `Arc<str>` header, the retired flag's `Arc` (shared with remembered verdicts), and
/// the store's map bucket and ring record. The bucket is counted twice (a hash map keeps up
/// to half its buckets empty after growing) and the ring record three times (the ring keeps
/// stale records up to twice the live ones before compacting).
const ENTRY_OVERHEAD_BYTES: usize = (ALLOCATION_BYTES + ARC_COUNTS_BYTES + size_of::<NearEntry>())
    + (ALLOCATION_BYTES + ARC_COUNTS_BYTES)
    + (ALLOCATION_BYTES + ARC_COUNTS_BYTES + size_of::<AtomicBool>())
    + 2 * entries::SLOT_BYTES
    + 3 * entries::RING_RECORD_BYTES;

/// What an entry holds: a string key's value (or its absence: a tracked miss), or a whole list
/// (LRANGE 0 -1; empty when the key is missing).
#[derive(Clone, Debug)]
pub enum NearValue {
    Text(Option<Arc<str>>),
    List(Arc<[String]>),
}

impl NearValue {
    /// The heap this value holds: its text, or its items and their slice, each allocation with
    /// the allocator's overhead.
    fn bytes(&self) -> usize {
        match self {
            Self::Text(value) => value.as_deref().map_or(0, |text| ALLOCATION_BYTES + ARC_COUNTS_BYTES + text.len()),
            Self::List(items) => {
                ALLOCATION_BYTES
                    + ARC_COUNTS_BYTES
                    + items.iter().map(|item| size_of::<String>() + ALLOCATION_BYTES + item.capacity()).sum::<usize>()
            }
        }
    }
}

/// The weight of a decoded form of `text` as `T`, added to its entry's when it is made: the
/// `Arc<T>` and, for its own heap, as much again as the text (a decoded record holds the
/// strings its text held), which the memory test checks against an allocation count.
fn decoded_weight<T>(text: &str) -> usize {
    ALLOCATION_BYTES + ARC_COUNTS_BYTES + size_of::<T>() + 2 * ALLOCATION_BYTES + text.len()
}

/// One cached key: its value, the connection that vouched for it at which epoch, and the
/// value's decoded form once a reader asked for it (see [`NearCache::lookup_decoded_if_cached`]).
#[derive(Debug)]
pub(crate) struct NearEntry {
    pub(crate) value: NearValue,
    pub(crate) connection: Arc<ConnectionState>,
    pub(crate) epoch: u64,
    pub(crate) decoded: DecodedSlot,
    /// When the store lets go of it: set by the store on every removal ([`entries::Retire`]).
    /// Shared with the verdicts remembered from it, which so keep nothing else of it alive.
    pub(crate) retired: Arc<AtomicBool>,
    /// The store's expiry of the entry, in the cache's milliseconds.
    pub(crate) expires_at_ms: u64,
}

impl entries::Retire for Arc<NearEntry> {
    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }
}

/// Taken before a read is sent; the read's answer is inserted only if nothing moved since.
#[derive(Clone, Debug)]
pub struct InsertTicket {
    connection: Arc<ConnectionState>,
    epoch: u64,
    generation: u64,
    /// When the read was sent: the entry's lifetime (the PTTL it reads) counts from here, so
    /// it never outlives its key by the reply's latency.
    sent_ms: u64,
}

pub struct NearCache {
    entries: NearStore<Arc<NearEntry>>,
    generations: Box<[Mutex<u64>]>,
    stripe_hasher: foldhash::fast::FixedState,
    /// Every tracked connection, by its fred client's id.
    connections: RwLock<HashMap<Arc<str>, Arc<ConnectionState>>>,
    next_connection_id: AtomicUsize,
    settings: NearCacheSettings,
    /// The Sentinel primary gate: while a failover is under way nothing is served or cached
    /// (entries were vouched for by a primary that may be on its way out).
    gate: Option<Arc<PrimaryGate>>,
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

impl NearCache {
    /// Checks the Redis version, turns tracking on for every pooled connection and starts one
    /// listener and one heartbeat task per connection. The tasks stop when the cache is dropped.
    /// Where Tessera routes a cluster itself, primaries that appear later are tracked as they
    /// come, and those that go are forgotten (`attach`, `detach`).
    pub async fn start(
        route: &Route,
        gate: Option<Arc<PrimaryGate>>,
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
            gate,
            metrics,
            origin: Instant::now(),
            instance: format!("{:016x}", rand::random::<u64>()),
            listeners_held_until_ms: AtomicU64::new(0),
            insert_delay_micros: AtomicU64::new(0),
        });
        if let Route::Cluster(nodes) = route {
            let watcher: Arc<dyn PrimaryWatcher> = Arc::clone(&near) as Arc<dyn PrimaryWatcher>;
            nodes.follow_with(Arc::downgrade(&watcher));
        }
        for node in route.pools() {
            near.attach(&node.pool, node.slots.as_deref()).await?;
        }
        Ok(near)
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
        state.trusted.load(Ordering::Acquire)
            && silence <= millis(self.settings.max_silence)
            && self.gate.as_deref().is_none_or(|gate| gate.closed().is_none())
    }

    /// What L1 may serve for the string key `key` now, without counting.
    pub fn peek(&self, key: &str) -> Option<Option<String>> {
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
    pub fn lookup(&self, key: &str) -> Option<Option<String>> {
        let found = self.servable(key).and_then(|entry| match &entry.value {
            NearValue::Text(value) => Some(value.as_deref().map(str::to_owned)),
            NearValue::List(_) => None,
        });
        self.counted(found)
    }

    /// [`Self::lookup`] for a caller that reads elsewhere when L1 cannot answer: a hit is
    /// counted, a miss is left to the read that follows.
    pub fn lookup_if_cached(&self, key: &str) -> Option<Option<String>> {
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
    pub fn lookup_decoded_if_cached<T: Any + Send + Sync>(
        &self,
        key: &str,
        decode: impl Fn(&str) -> T,
    ) -> Option<Option<Arc<T>>> {
        let entry = self.servable(key)?;
        let NearValue::Text(value) = &entry.value else { return None };
        self.metrics.count(CacheEvent::NearHit);
        let Some(text) = value.as_deref() else { return Some(None) };
        let (decoded, kept_now) = entry.decoded.get_or_decode_telling(text, decode);
        if kept_now {
            let weight = u32::try_from(decoded_weight::<T>(text)).unwrap_or(u32::MAX);
            self.entries.add_weight(key, |kept| Arc::ptr_eq(kept, &entry), weight, self.now_ms());
        }
        Some(Some(decoded))
    }

    /// The verdict `memo` remembers, if the list entry it was read from may still be served
    /// (not retired by the store, its connection's epoch unchanged and vouching, not expired):
    /// what a lookup of the list would answer, without the lookup. Counted as a hit.
    /// Remembers in `memo` whether the list `key`, as the near cache holds it now, holds
    /// `element`; nothing when it holds no servable entry for `key`.
    /// The cached items of the list `key`, or `None` when L1 cannot answer.
    pub fn lookup_list(&self, key: &str) -> Option<Arc<[String]>> {
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
        let sent_ms = self.now_ms();
        if !self.serves(state, sent_ms) {
            return None;
        }
        let generation = *self.stripe(key);
        Some(InsertTicket { connection: Arc::clone(state), epoch, generation, sent_ms })
    }

    /// GET + PTTL on the connection that tracks `key`, pipelined (one round trip), and the
    /// answer cached if no invalidation or flush happened meanwhile.
    pub async fn read_through(&self, route: &Route, key: &str) -> Result<Option<String>, FredError> {
        let (client, connection) = self.connection(route, key)?;
        let ticket = self.ticket(connection.as_ref(), key);
        let (value, pttl) = match read_text(&client, key).await {
            Ok(answer) => answer,
            Err(error) if redirected(route, &error) => return store::redis::get(route, key).await,
            Err(error) => return Err(error),
        };
        self.delay_insert().await;
        self.insert(ticket, key, NearValue::Text(value.as_deref().map(Arc::from)), pttl);
        Ok(value)
    }

    /// LRANGE 0 -1 + PTTL of the list `key`, like [`Self::read_through`].
    pub async fn read_list_through(&self, route: &Route, key: &str) -> Result<Arc<[String]>, FredError> {
        let (client, connection) = self.connection(route, key)?;
        let ticket = self.ticket(connection.as_ref(), key);
        let (items, pttl) = match read_list(&client, key).await {
            Ok(answer) => answer,
            Err(error) if redirected(route, &error) => {
                return store::redis::list_range(route, key, 0, -1).await.map(Into::into);
            }
            Err(error) => return Err(error),
        };
        let items: Arc<[String]> = items.into();
        self.delay_insert().await;
        self.insert(ticket, key, NearValue::List(Arc::clone(&items)), pttl);
        Ok(items)
    }

    /// The string `key` and the whole list `list` in one round trip (GET, PTTL, LRANGE, PTTL
    /// pipelined on the connection that tracks `key`; in a cluster fred routes, the pipeline
    /// may span nodes of that one client, all tracked; in a cluster Tessera routes, each key
    /// is read on its own primary's connection, both at once), each cached under its own ticket.
    pub async fn read_text_and_list_through(
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
        let read = async {
            if client.id() == list_client.id() {
                let pipeline = client.pipeline();
                let () = pipeline.get(key).await?;
                let () = pipeline.pttl(key).await?;
                let () = pipeline.lrange(list, 0, -1).await?;
                let () = pipeline.pttl(list).await?;
                let (value, value_pttl, items, list_pttl) = pipeline.all().await?;
                Ok(((value, value_pttl), (items, list_pttl)))
            } else {
                futures::future::try_join(read_text(&client, key), read_list(&list_client, list)).await
            }
        };
        let ((value, value_pttl), (items, list_pttl)): ((Option<String>, i64), (Vec<String>, i64)) = match read.await {
            Ok(answer) => answer,
            Err(error) if redirected(route, &error) => {
                let (value, items) = futures::future::try_join(
                    store::redis::get(route, key),
                    store::redis::list_range(route, list, 0, -1),
                )
                .await?;
                return Ok((value, items.into()));
            }
            Err(error) => return Err(error),
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
        let Some(lifetime_ms) = ticket.sent_ms.saturating_add(lifetime_ms).checked_sub(now_ms).filter(|left| *left > 0)
        else {
            return;
        };
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
            retired: Arc::new(AtomicBool::new(false)),
            expires_at_ms: now_ms.saturating_add(lifetime_ms),
        };
        self.entries.insert(key, Arc::new(entry), weight, lifetime_ms, now_ms);
        drop(generation);
        self.metrics.count(CacheEvent::NearInsert);
    }

    /// Drops `key` and cancels any read of it in flight: for a push from Redis, and for this
    /// process's own writes (whose push only arrives after the write returned).
    pub fn invalidate(&self, key: &str) {
        let mut generation = self.stripe(key);
        *generation = generation.wrapping_add(1);
        self.entries.remove(key);
        drop(generation);
        self.metrics.count(CacheEvent::NearInvalidation);
    }

    /// Drops everything and cancels every read in flight (a flushed keyspace, a pattern delete).
    pub fn invalidate_everything(&self, cause: Option<FlushCause>) {
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
    fn listeners_held(&self) -> Option<Duration> {
        let until = self.listeners_held_until_ms.load(Ordering::Acquire);
        let now = self.now_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    pub fn hold_listeners_for(&self, duration: Duration) {
        self.listeners_held_until_ms.store(self.now_ms() + millis(duration), Ordering::Release);
    }

    pub fn delay_inserts_by(&self, delay: Duration) {
        self.insert_delay_micros.store(u64::try_from(delay.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn settings(&self) -> &NearCacheSettings {
        &self.settings
    }
}

/// Whether a read on a tracked connection was refused because its slot moved or is moving: it
/// is then read through the route, which follows the redirect, and not cached (the connection
/// that would vouch for it is not the one that answered).
fn redirected(route: &Route, error: &FredError) -> bool {
    matches!(route, Route::Cluster(_)) && store::Redirect::of(error).is_some()
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

/// An entry's cap on its lifetime: `max_ttl_ms` less up to a tenth of it, picked by `draw`
/// (uniform over `u64`), so that entries filled in the same second spread their expiries.
fn spread_lifetime_ms(max_ttl_ms: u64, draw: u64) -> u64 {
    let spread = max_ttl_ms / 10;
    max_ttl_ms - draw % (spread + 1)
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn millis_i64(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl PrimaryWatcher for NearCache {
    fn joined(self: Arc<Self>, pool: fred::clients::Pool, slots: Vec<(u16, u16)>) -> WatcherReply {
        Box::pin(async move { self.attach(&pool, Some(&slots)).await.map_err(Into::into) })
    }

    fn left(&self, pool: &fred::clients::Pool) {
        self.detach(pool);
    }

    fn slots_changed(&self, pool: &fred::clients::Pool, slots: Vec<(u16, u16)>) {
        NearCache::slots_changed(self, pool, &slots);
    }
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
