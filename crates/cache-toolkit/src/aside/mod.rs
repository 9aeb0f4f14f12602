//! Cache-aside: [`CacheClient::get_or_load`] reads a key and, on a miss, asks the caller's
//! loader and caches its answer, under a [`LoadPolicy`] that adds the protections of the
//! original design:
//!
//! - **TTL jitter** (default ±10 %), so keys written together do not expire together;
//! - **negative caching**: a loader answering [`Loaded::Missing`] caches a placeholder for the
//!   shorter `negative_ttl`; a hit on it answers `None` without calling the loader;
//! - **single-flight in the process**: concurrent callers of one key share one load, run in a
//!   spawned task so a cancelled caller wedges nobody; errors are shared, never cached;
//! - **cross-instance single-flight** (opt-in): the Redis lock `<key>:loading` lets one
//!   instance load a cold key while the others poll for its value, for a bounded time;
//! - **probabilistic early refresh** (XFetch, Vattani et al., VLDB 2015): the load time is
//!   stored with the value and a read refreshes it early, in the background, with the paper's
//!   probability, serving the current value meanwhile;
//! - **stale-on-error** (opt-in, bounded): the last good value seen at most N ago is served
//!   when Redis or the loader fails;
//! - **degrade to the loader** (opt-in): when Redis cannot be read, the loader answers
//!   directly, with a bound on concurrent loads;
//! - **a Bloom guard of known keys** (opt-in, [`LoadPolicyBuilder::known_keys`]): a key the
//!   guard certainly never saw answers `None` with no Redis read and no load.
//!
//! Every read and write goes through [`CacheClient::get_value`] and
//! [`CacheClient::set_value`] (so whatever sits under them, such as a near cache, applies).
//! The stored format is in [`envelope`].

mod envelope;
mod flight;
mod policy;
#[cfg(test)]
mod tests;

use std::{
    any::{Any, TypeId},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Serialize, de::DeserializeOwned};
use tokio::time::Instant;

pub use self::policy::{
    DEFAULT_EARLY_REFRESH_BETA, DEFAULT_JITTER, DEFAULT_NEGATIVE_TTL, DEFAULT_STALE_CAPACITY, LoadPolicy,
    LoadPolicyBuilder, LoadPolicyError,
};
use self::{
    envelope::Envelope,
    flight::{ErasedOutcome, FlightKey},
    policy::{CrossInstance, jittered_ttl, should_refresh_early},
};
use crate::{CacheClient, CacheError, CacheEvent, Op, RedactedKey};

/// What `get_or_load` can cache: any serde value that can be shared between the tasks that
/// wait on one load (implemented for every such type).
pub trait CacheValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> CacheValue for T {}

/// What a loader found at the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loaded<T> {
    /// The value; cached for the policy's TTL.
    Found(T),
    /// The source has no such value; a placeholder is cached for the policy's `negative_ttl`.
    Missing,
}

impl<T> Loaded<T> {
    pub fn into_option(self) -> Option<T> {
        match self {
            Loaded::Found(value) => Some(value),
            Loaded::Missing => None,
        }
    }
}

/// Why [`CacheClient::get_or_load`] has no answer. Keys in messages carry the client's prefix
/// and are cut like [`CacheError`]'s.
#[derive(Debug, thiserror::Error)]
pub enum LoadError<E> {
    /// The loader failed. Every caller that waited for the same load gets the same error
    /// (hence the `Arc`); nothing was cached, so the next call loads again.
    #[error("loading key `{key}` failed: {source}")]
    Loader {
        key: RedactedKey,
        #[source]
        source: Arc<E>,
    },
    /// The cache failed (Redis unavailable, bad stored data naming the key, …).
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The load stopped before it finished: its task panicked or the runtime shut down.
    #[error("loading key `{key}` stopped before it finished (the load panicked or the runtime shut down)")]
    Interrupted { key: RedactedKey },
}

impl<E> LoadError<E> {
    /// Whether the last good value may stand in for this failure (stale-on-error): the loader
    /// failed, or the store was unreachable — not bad data or a refused input.
    fn is_outage(&self) -> bool {
        match self {
            LoadError::Loader { .. } | LoadError::Interrupted { .. } => true,
            LoadError::Cache(error) => error.is_retryable(),
        }
    }
}

/// What a load task ends with, shared by its waiters through the single-flight table.
type FlightOutcome<T, E> = Result<Loaded<T>, FlightFailure<E>>;

enum FlightFailure<E> {
    Loader(Arc<E>),
    Cache(CacheError),
}

/// Why a load task runs: which path it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlightKind {
    /// The key was missing in Redis: load (under the cross-instance lock when enabled) and store.
    Miss,
    /// XFetch chose to refresh a live value: load and store, without the cross-instance lock
    /// (XFetch already makes concurrent refreshes unlikely, and the old value stays served).
    EarlyRefresh,
    /// Redis could not be read: load under the degraded-load permits, store nothing.
    Degraded,
}

impl CacheClient {
    /// Cache-aside read of a serde value: the cached value when `key` holds one, else the
    /// loader's answer, cached under `policy` (the protections are [`LoadPolicy`]'s).
    /// `Ok(None)` means the source has no such value (possibly answered from the cached
    /// placeholder, without calling the loader).
    ///
    /// The loader is called at most once, and not at all when the cache answers or another
    /// caller's load is joined. Its future runs in a spawned task, hence `Send + 'static`.
    ///
    /// Errors: a stored value that is not `get_or_load`'s envelope is a
    /// [`crate::CacheErrorKind::BadData`] error naming the key (nothing is overwritten); a
    /// Redis failure is an error unless stale-on-error (first) or degrade-to-loader applies; a
    /// loader error is [`LoadError::Loader`] unless stale-on-error applies. A failed write
    /// after a successful load is logged (and counted by the client's metrics) and the loaded
    /// value is still returned.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        key: &str,
        policy: &LoadPolicy,
        load: F,
    ) -> Result<Option<T>, LoadError<E>>
    where
        T: CacheValue,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded<T>, E>> + Send + 'static,
    {
        if let Some(known_keys) = &policy.inner.known_keys {
            match known_keys.might_contain(key).await {
                Ok(true) => {}
                Ok(false) => {
                    self.metrics().count(CacheEvent::BloomRejection);
                    return Ok(None);
                }
                Err(error) => tracing::debug!(%error, "bloom guard unreadable; treating the key as possibly known"),
            }
        }
        let outcome = match self.get_value(key).await {
            Ok(Some(text)) => return self.serve_stored(key, policy, text, load),
            Ok(None) => self.load_in_flight(key, policy, FlightKind::Miss, load).await,
            Err(error) if error.is_retryable() && policy.inner.degraded_permits.is_some() => {
                match self.stale_value(key, policy) {
                    Some(stale) => return Ok(Some(stale)),
                    None => self.load_in_flight(key, policy, FlightKind::Degraded, load).await,
                }
            }
            Err(error) => Err(LoadError::Cache(error)),
        };
        match outcome {
            Ok(loaded) => Ok(loaded.into_option()),
            Err(error) if error.is_outage() => self.stale_value(key, policy).map(Some).ok_or(error),
            Err(error) => Err(error),
        }
    }

    /// The last good value stale-on-error may serve for `key`, counted when there is one.
    fn stale_value<T: CacheValue>(&self, key: &str, policy: &LoadPolicy) -> Option<T> {
        let stale = policy.last_good::<T>(&self.key(key))?;
        self.metrics().count(CacheEvent::StaleServed);
        Some(stale)
    }

    /// A hit: the placeholder answers `None`; a value is served, and may start an early refresh.
    fn serve_stored<T, E, F, Fut>(
        &self,
        key: &str,
        policy: &LoadPolicy,
        text: String,
        load: F,
    ) -> Result<Option<T>, LoadError<E>>
    where
        T: CacheValue,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded<T>, E>> + Send + 'static,
    {
        let stored_key = self.key(key);
        match envelope::decode::<T>(text) {
            Err(problem) => Err(CacheError::bad_data(Op::GetOrLoad, &stored_key, problem).into()),
            Ok(Envelope::Missing { .. }) => {
                self.metrics().count(CacheEvent::NegativeHit);
                Ok(None)
            }
            Ok(Envelope::Value { value, load_time_ms, expires_at_ms }) => {
                policy.remember_good(&stored_key, &value);
                let beta = policy.settings().early_refresh_beta;
                let uniform = 1.0 - rand::random::<f64>();
                if should_refresh_early(unix_now_ms(), load_time_ms, expires_at_ms, beta, uniform) {
                    self.refresh_early(key, policy, load);
                }
                Ok(Some(value))
            }
        }
    }

    /// Starts a background refresh of `key` unless a load of it is already running.
    fn refresh_early<T, E, F, Fut>(&self, key: &str, policy: &LoadPolicy, load: F)
    where
        T: CacheValue,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded<T>, E>> + Send + 'static,
    {
        let flight_key = flight_key::<T, E>(&self.key(key));
        if policy.inner.flights.running(&flight_key).is_some() {
            return;
        }
        let work = erase(run_flight(self.clone(), key.to_owned(), policy.clone(), FlightKind::EarlyRefresh, load()));
        let (_, started) = policy.inner.flights.start_or_join(policy, flight_key, work);
        if started {
            self.metrics().count(CacheEvent::EarlyRefresh);
        }
    }

    /// Joins the load of `key` running in this process, or starts one; waits for its outcome.
    async fn load_in_flight<T, E, F, Fut>(
        &self,
        key: &str,
        policy: &LoadPolicy,
        kind: FlightKind,
        load: F,
    ) -> Result<Loaded<T>, LoadError<E>>
    where
        T: CacheValue,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded<T>, E>> + Send + 'static,
    {
        let stored_key = self.key(key).into_owned();
        let flight_key = flight_key::<T, E>(&stored_key);
        let flights = &policy.inner.flights;
        let (flight, started) = match flights.running(&flight_key) {
            Some(running) => (running, false),
            None => {
                let work = erase(run_flight(self.clone(), key.to_owned(), policy.clone(), kind, load()));
                flights.start_or_join(policy, flight_key, work)
            }
        };
        if !started {
            self.metrics().count(CacheEvent::CoalescedWait);
        }
        unerase::<T, E>(flight.await, &stored_key)
    }
}

fn flight_key<T: 'static, E: 'static>(stored_key: &str) -> FlightKey {
    (TypeId::of::<(T, E)>(), stored_key.to_owned())
}

/// The load as the single-flight table holds it: its outcome type-erased.
async fn erase<T, E>(work: impl Future<Output = FlightOutcome<T, E>>) -> Arc<dyn Any + Send + Sync>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    Arc::new(work.await)
}

/// A waiter's own copy of a shared outcome.
fn unerase<T: Clone + 'static, E: 'static>(
    outcome: ErasedOutcome,
    stored_key: &str,
) -> Result<Loaded<T>, LoadError<E>> {
    let interrupted = || LoadError::Interrupted { key: RedactedKey::new(stored_key) };
    // The flight key holds the types, so the downcast only fails if the task died.
    let outcome = outcome.ok_or_else(interrupted)?;
    match outcome.downcast_ref::<FlightOutcome<T, E>>().ok_or_else(interrupted)? {
        Ok(loaded) => Ok(loaded.clone()),
        Err(FlightFailure::Loader(error)) => {
            Err(LoadError::Loader { key: RedactedKey::new(stored_key), source: Arc::clone(error) })
        }
        Err(FlightFailure::Cache(error)) => Err(LoadError::Cache(error.shared_copy())),
    }
}

/// The body of a load task.
async fn run_flight<T, E, Fut>(
    cache: CacheClient,
    key: String,
    policy: LoadPolicy,
    kind: FlightKind,
    load: Fut,
) -> FlightOutcome<T, E>
where
    T: CacheValue,
    Fut: Future<Output = Result<Loaded<T>, E>>,
{
    let outcome = match (kind, policy.settings().cross_instance) {
        (FlightKind::Degraded, _) => load_degraded(&cache, &key, &policy, load).await,
        (FlightKind::Miss, Some(cross)) => load_across_instances(&cache, &key, &policy, cross, load).await,
        (FlightKind::Miss | FlightKind::EarlyRefresh, _) => load_and_store(&cache, &key, &policy, load).await,
    };
    if kind == FlightKind::EarlyRefresh
        && let Err(failure) = &outcome
    {
        let problem = match failure {
            FlightFailure::Loader(_) => "the loader failed".to_owned(),
            FlightFailure::Cache(error) => error.to_string(),
        };
        tracing::warn!(
            key = %RedactedKey::new(&cache.key(&key)),
            problem,
            "early refresh failed; the cached value stays"
        );
    }
    outcome
}

/// Runs the loader, then caches its answer with a jittered TTL. A failed write is logged and
/// the answer still returned: the value is good, only its caching failed.
async fn load_and_store<T, E, Fut>(
    cache: &CacheClient,
    key: &str,
    policy: &LoadPolicy,
    load: Fut,
) -> FlightOutcome<T, E>
where
    T: Serialize + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Loaded<T>, E>>,
{
    cache.metrics().count(CacheEvent::Load);
    let started = Instant::now();
    let loaded = load.await.map_err(|error| FlightFailure::Loader(Arc::new(error)))?;
    let load_time_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let settings = policy.settings();
    let stored_key = cache.key(key);
    let (encoded, ttl) = match &loaded {
        Loaded::Found(value) => {
            let ttl = jittered_ttl(settings.ttl, settings.jitter, rand::random());
            (envelope::encode_value(value, load_time_ms, expiry_ms(ttl)), ttl)
        }
        Loaded::Missing => {
            let ttl = jittered_ttl(settings.negative_ttl, settings.jitter, rand::random());
            (envelope::encode_missing(expiry_ms(ttl)), ttl)
        }
    };
    let text = encoded
        .map_err(|error| FlightFailure::Cache(CacheError::invalid_input(Op::GetOrLoad, Some(&stored_key), error)))?;
    if let Err(error) = cache.set_value(key, &text, Some(ttl)).await {
        tracing::warn!(%error, "get_or_load could not cache a loaded value; it is returned uncached");
    }
    policy.remember_loaded(&stored_key, &loaded);
    Ok(loaded)
}

/// Redis is unreachable: ask the loader directly, at most `max_concurrent` loads at once.
async fn load_degraded<T, E, Fut>(cache: &CacheClient, key: &str, policy: &LoadPolicy, load: Fut) -> FlightOutcome<T, E>
where
    T: Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Loaded<T>, E>>,
{
    // The semaphore is never closed, so `acquire` only fails if it were; then load anyway.
    let _permit = match &policy.inner.degraded_permits {
        Some(permits) => permits.acquire().await.ok(),
        None => None,
    };
    cache.metrics().count(CacheEvent::Load);
    cache.metrics().count(CacheEvent::DegradedLoad);
    let loaded = load.await.map_err(|error| FlightFailure::Loader(Arc::new(error)))?;
    policy.remember_loaded(&cache.key(key), &loaded);
    Ok(loaded)
}

/// Cross-instance single-flight. Whoever takes the lock `<key>:loading` (lease
/// `cross.lease`) checks the key again (another instance may have just written it), loads,
/// stores and releases. The others poll every [`CrossInstance::poll_interval`] for the value
/// and retry the lock — so a holder that failed (errors are not cached, the lock is released)
/// or vanished (the lease lapses) is replaced by one waiter. After `cross.max_wait` a waiter
/// stops waiting and loads itself, without the lock.
async fn load_across_instances<T, E, Fut>(
    cache: &CacheClient,
    key: &str,
    policy: &LoadPolicy,
    cross: CrossInstance,
    load: Fut,
) -> FlightOutcome<T, E>
where
    T: CacheValue,
    Fut: Future<Output = Result<Loaded<T>, E>>,
{
    let lock_key = format!("{key}:loading");
    let deadline = store::saturating_deadline(Instant::now(), cross.max_wait);
    loop {
        // The watchdog keeps the lease alive however long the load takes.
        let lock = cache.acquire_lock_with(&lock_key, crate::LockOptions::new(cross.lease).with_watchdog()).await;
        if let Some(guard) = lock.map_err(FlightFailure::Cache)? {
            let outcome = match read_loaded(cache, key, policy).await {
                Ok(Some(found)) => Ok(found),
                Ok(None) => load_and_store(cache, key, policy, load).await,
                Err(error) => Err(FlightFailure::Cache(error)),
            };
            if let Err(error) = guard.release().await {
                tracing::warn!(%error, "get_or_load could not release its loading lock; its lease will free it");
            }
            return outcome;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(cross.poll_interval().min(deadline - now)).await;
        if let Some(found) = read_loaded(cache, key, policy).await.map_err(FlightFailure::Cache)? {
            cache.metrics().count(CacheEvent::CoalescedWait);
            return Ok(found);
        }
    }
    tracing::debug!(
        key = %RedactedKey::new(&cache.key(key)),
        "another instance's load took longer than max_wait; loading here"
    );
    load_and_store(cache, key, policy, load).await
}

/// The key's cached answer, if it holds one (for the cross-instance paths).
async fn read_loaded<T>(cache: &CacheClient, key: &str, policy: &LoadPolicy) -> Result<Option<Loaded<T>>, CacheError>
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    let Some(text) = cache.get_value(key).await? else { return Ok(None) };
    let stored_key = cache.key(key);
    let loaded = match envelope::decode::<T>(text) {
        Ok(Envelope::Value { value, .. }) => Loaded::Found(value),
        Ok(Envelope::Missing { .. }) => Loaded::Missing,
        Err(problem) => return Err(CacheError::bad_data(Op::GetOrLoad, &stored_key, problem)),
    };
    policy.remember_loaded(&stored_key, &loaded);
    Ok(Some(loaded))
}

impl LoadPolicy {
    /// Keeps `value` as the key's last good value (stale-on-error only).
    fn remember_good<T: Clone + Send + Sync + 'static>(&self, stored_key: &str, value: &T) {
        if let Some(last_good) = &self.inner.last_good {
            last_good.insert((TypeId::of::<T>(), stored_key.to_owned()), Arc::new(value.clone()));
        }
    }

    /// Keeps a found value; forgets the last one when the source says the key is gone (an
    /// outage must not bring deleted data back).
    fn remember_loaded<T: Clone + Send + Sync + 'static>(&self, stored_key: &str, loaded: &Loaded<T>) {
        match loaded {
            Loaded::Found(value) => self.remember_good(stored_key, value),
            Loaded::Missing => {
                if let Some(last_good) = &self.inner.last_good {
                    last_good.invalidate(&(TypeId::of::<T>(), stored_key.to_owned()));
                }
            }
        }
    }

    /// The key's last good value, if seen at most `stale_on_error` ago.
    fn last_good<T: Clone + 'static>(&self, stored_key: &str) -> Option<T> {
        let last_good = self.inner.last_good.as_ref()?;
        let value = last_good.get(&(TypeId::of::<T>(), stored_key.to_owned()))?;
        value.downcast_ref::<T>().cloned()
    }
}

/// Wall-clock now in Unix milliseconds (the envelope's clock: shared by every instance).
fn unix_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

fn expiry_ms(ttl: Duration) -> u64 {
    unix_now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}
