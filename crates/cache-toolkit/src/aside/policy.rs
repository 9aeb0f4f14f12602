//! [`LoadPolicy`]: how `get_or_load` caches (TTL, jitter, negative TTL, early refresh) and
//! which protections it applies, validated once by [`LoadPolicyBuilder::build`]. The policy
//! also owns the in-process state those protections share — the single-flight table, the last
//! good values for stale-on-error, the permits of degraded loads — so every caller that must
//! coordinate uses clones of one policy.

use std::{any::Any, sync::Arc, time::Duration};

use tokio::sync::Semaphore;

use super::flight::Flights;
use crate::{BloomGuard, MAX_TTL};

/// How `get_or_load` caches and protects one kind of value. Cheap to clone; clones share the
/// in-process state (build one policy per kind of value and share it, rather than building
/// one per call: a fresh policy coalesces with nobody).
#[derive(Clone, Debug)]
pub struct LoadPolicy {
    pub(super) inner: Arc<PolicyState>,
}

#[derive(Debug)]
pub(super) struct PolicyState {
    pub(super) settings: LoadSettings,
    pub(super) flights: Flights,
    /// Last good values by (value type, stored key); entries live `stale_on_error` long and
    /// their count is bounded, so a burst of keys cannot grow memory without limit.
    pub(super) last_good: Option<moka::sync::Cache<(std::any::TypeId, String), LastGood>>,
    pub(super) degraded_permits: Option<Semaphore>,
    /// Keys that may exist: a key the guard has certainly never seen is answered `None`
    /// without asking Redis or the loader (cache penetration).
    pub(super) known_keys: Option<BloomGuard>,
}

/// A last good value, type-erased (the policy serves any value type; the type is part of the
/// entry's key, so the downcast matches).
pub(super) type LastGood = Arc<dyn Any + Send + Sync>;

/// The validated settings.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct LoadSettings {
    pub(super) ttl: Duration,
    pub(super) jitter: f64,
    pub(super) negative_ttl: Duration,
    pub(super) early_refresh_beta: f64,
    pub(super) cross_instance: Option<CrossInstance>,
    pub(super) stale_on_error: Option<Duration>,
    pub(super) stale_capacity: u64,
    pub(super) degrade_max_concurrent: Option<usize>,
}

/// Cross-instance single-flight settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct CrossInstance {
    pub(super) lease: Duration,
    pub(super) max_wait: Duration,
}

impl CrossInstance {
    /// How often a waiting instance looks for the value (and tries the lock): a twentieth of
    /// the wait, between 5 and 100 ms.
    pub(super) fn poll_interval(&self) -> Duration {
        (self.max_wait / 20).clamp(Duration::from_millis(5), Duration::from_millis(100))
    }
}

/// The default jitter: TTLs spread over ±10 %.
pub const DEFAULT_JITTER: f64 = 0.1;
/// The default lifetime of a "missing" placeholder (shortened to the TTL when that is shorter).
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// The default XFetch β: the paper's 1.0.
pub const DEFAULT_EARLY_REFRESH_BETA: f64 = 1.0;
/// The default bound on the number of last good values kept for stale-on-error.
pub const DEFAULT_STALE_CAPACITY: u64 = 10_000;

/// A setting [`LoadPolicyBuilder::build`] refused, and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid load policy setting `{setting}`: {problem}")]
pub struct LoadPolicyError {
    setting: &'static str,
    problem: String,
}

impl LoadPolicyError {
    fn new(setting: &'static str, problem: impl Into<String>) -> Self {
        Self { setting, problem: problem.into() }
    }

    /// The builder method whose value was refused (`ttl`, `jitter`, …).
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

/// Builds a [`LoadPolicy`]; see each method for its default.
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until build()"]
pub struct LoadPolicyBuilder {
    settings: LoadSettings,
    negative_ttl_given: bool,
    known_keys: Option<BloomGuard>,
}

impl LoadPolicy {
    /// Starts a policy whose values live `ttl` (before jitter). No default TTL: how long a
    /// value may be served is the caller's decision.
    pub fn builder(ttl: Duration) -> LoadPolicyBuilder {
        LoadPolicyBuilder {
            settings: LoadSettings {
                ttl,
                jitter: DEFAULT_JITTER,
                negative_ttl: DEFAULT_NEGATIVE_TTL.min(ttl),
                early_refresh_beta: DEFAULT_EARLY_REFRESH_BETA,
                cross_instance: None,
                stale_on_error: None,
                stale_capacity: DEFAULT_STALE_CAPACITY,
                degrade_max_concurrent: None,
            },
            negative_ttl_given: false,
            known_keys: None,
        }
    }

    /// The TTL of a value, before jitter.
    pub fn ttl(&self) -> Duration {
        self.inner.settings.ttl
    }

    /// The TTL of a "missing" placeholder, before jitter.
    pub fn negative_ttl(&self) -> Duration {
        self.inner.settings.negative_ttl
    }

    /// The jitter: each TTL written is drawn uniformly in `ttl × [1 − jitter, 1 + jitter]`.
    pub fn jitter(&self) -> f64 {
        self.inner.settings.jitter
    }

    /// XFetch's β; 0 when early refresh is off.
    pub fn early_refresh_beta(&self) -> f64 {
        self.inner.settings.early_refresh_beta
    }

    pub(super) fn settings(&self) -> &LoadSettings {
        &self.inner.settings
    }
}

impl LoadPolicyBuilder {
    /// Spread each TTL uniformly over `ttl × [1 − jitter, 1 + jitter]`, so keys written
    /// together do not expire together. In `[0, 1)`; default 0.1; 0 turns it off.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.settings.jitter = jitter;
        self
    }

    /// How long a "missing" answer from the loader is cached (before jitter); at most the
    /// TTL. Default: 60 s, or the TTL when that is shorter.
    pub fn negative_ttl(mut self, negative_ttl: Duration) -> Self {
        self.settings.negative_ttl = negative_ttl;
        self.negative_ttl_given = true;
        self
    }

    /// XFetch's β (Vattani, Chierichetti, Lowenstein, VLDB 2015): a read refreshes the value
    /// early, in the background, when `now − load_time × β × ln(rand) ≥ expiry`. Larger is
    /// earlier; 0 turns early refresh off. Finite and ≥ 0; default 1.0.
    pub fn early_refresh_beta(mut self, beta: f64) -> Self {
        self.settings.early_refresh_beta = beta;
        self
    }

    /// Only one instance loads a cold key: the loader of one process holds the Redis lock
    /// `<key>:loading` for at most `lease` (make it longer than the slowest load: once it
    /// lapses another instance may load too). Other instances poll for the value and the
    /// lock for up to `max_wait`, then load themselves. Off by default.
    pub fn cross_instance(mut self, lease: Duration, max_wait: Duration) -> Self {
        self.settings.cross_instance = Some(CrossInstance { lease, max_wait });
        self
    }

    /// When Redis or the loader fails, serve the last good value this process saw for the
    /// key if it was seen at most `max_age` ago (counted as `StaleServed`). "Seen" means read
    /// from Redis or loaded, so with this on every hit also keeps a clone of the value. A
    /// "missing" answer from the loader forgets the kept value. Off by default: keep it off, or
    /// very short, for security-relevant data such as revocations.
    pub fn stale_on_error(mut self, max_age: Duration) -> Self {
        self.settings.stale_on_error = Some(max_age);
        self
    }

    /// How many last good values stale-on-error keeps at most (least recently used go
    /// first). Default 10 000.
    pub fn stale_capacity(mut self, entries: u64) -> Self {
        self.settings.stale_capacity = entries;
        self
    }

    /// When Redis cannot be read, ask the loader directly (nothing is cached), with at most
    /// `max_concurrent` such loads at once in this process so the source is not stampeded.
    /// Off by default: a Redis failure is then an error.
    pub fn degrade_to_loader(mut self, max_concurrent: usize) -> Self {
        self.settings.degrade_max_concurrent = Some(max_concurrent);
        self
    }

    /// Guards against penetration: a key `known_keys` certainly never saw (no false
    /// negatives) is answered `None` at once — no Redis read, no load — and counted as
    /// [`crate::CacheEvent::BloomRejection`]. The application adds each key it creates (the
    /// loader's source of truth decides what exists). When the guard cannot be read (Redis
    /// down), the key is treated as possibly known and the usual path decides.
    pub fn known_keys(mut self, guard: BloomGuard) -> Self {
        self.known_keys = Some(guard);
        self
    }

    /// Checks every setting and builds the policy with fresh in-process state.
    pub fn build(self) -> Result<LoadPolicy, LoadPolicyError> {
        let mut settings = self.settings;
        let at_least_one_ms = |setting, duration: Duration| {
            if duration < Duration::from_millis(1) {
                Err(LoadPolicyError::new(setting, format!("must be at least 1 ms, got {duration:?}")))
            } else {
                Ok(())
            }
        };
        // What becomes a TTL in the store must be one the store accepts; waits and ages only
        // saturate (a longer one is "forever").
        let a_storable_ttl = |setting, duration: Duration| {
            at_least_one_ms(setting, duration)?;
            if duration > MAX_TTL {
                return Err(LoadPolicyError::new(
                    setting,
                    format!("must be at most {} ms (the toolkit's MAX_TTL), got {duration:?}", MAX_TTL.as_millis()),
                ));
            }
            Ok(())
        };
        a_storable_ttl("ttl", settings.ttl)?;
        if !self.negative_ttl_given {
            settings.negative_ttl = DEFAULT_NEGATIVE_TTL.min(settings.ttl);
        }
        at_least_one_ms("negative_ttl", settings.negative_ttl)?;
        if settings.negative_ttl > settings.ttl {
            return Err(LoadPolicyError::new(
                "negative_ttl",
                format!("must not exceed the ttl ({:?}), got {:?}", settings.ttl, settings.negative_ttl),
            ));
        }
        if !(0.0..1.0).contains(&settings.jitter) {
            return Err(LoadPolicyError::new("jitter", format!("must be in [0, 1), got {}", settings.jitter)));
        }
        if !settings.early_refresh_beta.is_finite() || settings.early_refresh_beta < 0.0 {
            return Err(LoadPolicyError::new(
                "early_refresh_beta",
                format!("must be finite and at least 0, got {}", settings.early_refresh_beta),
            ));
        }
        if let Some(cross) = settings.cross_instance {
            a_storable_ttl("cross_instance", cross.lease)?;
        }
        if let Some(max_age) = settings.stale_on_error {
            at_least_one_ms("stale_on_error", max_age)?;
        }
        if settings.stale_capacity == 0 {
            return Err(LoadPolicyError::new("stale_capacity", "must be at least 1"));
        }
        if let Some(max_concurrent) = settings.degrade_max_concurrent
            && !(1..=Semaphore::MAX_PERMITS).contains(&max_concurrent)
        {
            return Err(LoadPolicyError::new(
                "degrade_to_loader",
                format!("must allow 1 to {} concurrent loads, got {max_concurrent}", Semaphore::MAX_PERMITS),
            ));
        }
        let last_good = settings.stale_on_error.map(|max_age| {
            moka::sync::Cache::builder()
                .max_capacity(settings.stale_capacity)
                .time_to_live(max_age.min(STALE_AGE_CEILING))
                .build()
        });
        let degraded_permits = settings.degrade_max_concurrent.map(Semaphore::new);
        Ok(LoadPolicy {
            inner: Arc::new(PolicyState {
                settings,
                flights: Flights::default(),
                last_good,
                degraded_permits,
                known_keys: self.known_keys,
            }),
        })
    }
}

/// moka refuses (panics on) a time-to-live over 1000 years; a process keeps a stale value no
/// longer than it lives, so a longer `stale_on_error` age is kept as this.
const STALE_AGE_CEILING: Duration = Duration::from_secs(1000 * 365 * 24 * 60 * 60);

/// The TTL to write: `ttl × (1 + jitter × (2u − 1))` for `u` uniform in `[0, 1)`, at least 1 ms
/// and at most [`MAX_TTL`] (jitter may not push a long TTL past what the store accepts).
pub(super) fn jittered_ttl(ttl: Duration, jitter: f64, uniform: f64) -> Duration {
    let factor = 1.0 + jitter * (2.0 * uniform - 1.0);
    let millis = (ttl.as_secs_f64() * 1000.0 * factor).round().max(1.0);
    Duration::from_millis(millis as u64).min(MAX_TTL)
}

/// XFetch's decision: refresh now when `now − load_time × β × ln(u) ≥ expiry`, `u` uniform in
/// `(0, 1]`. Its probability is 1 at or past the expiry and `exp(−gap / (load_time × β))`
/// at `gap` before it. β = 0 or a zero load time never refreshes early.
pub(super) fn should_refresh_early(
    now_ms: u64,
    load_time_ms: u64,
    expires_at_ms: u64,
    beta: f64,
    uniform: f64,
) -> bool {
    if beta == 0.0 || load_time_ms == 0 {
        return false;
    }
    let head_start = -(load_time_ms as f64) * beta * uniform.ln();
    now_ms as f64 + head_start >= expires_at_ms as f64
}
