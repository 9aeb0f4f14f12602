//! `get_or_load`'s conformance cases (cache-aside with its protections), run on every backend.
//! Loaders count their calls; where the test must know that callers are waiting on a load,
//! the load is held open until they are (bounded), so the counts are exact rather than timed.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::{sync::Semaphore, time::Instant};

use cache_toolkit::{CacheClient, CacheErrorKind, CacheEvent, LoadError, LoadPolicy, Loaded, Ttl};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    visits: u64,
}

fn profile(name: &str) -> Profile {
    Profile { name: name.to_owned(), visits: 7 }
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("the source is down")]
struct SourceDown;

/// A loader's source that counts how often it is asked.
#[derive(Clone, Default)]
struct Source {
    calls: Arc<AtomicU64>,
}

impl Source {
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// A load that answers `answer` after `delay`.
    fn load<T: Send + 'static>(
        &self,
        answer: Result<Loaded<T>, SourceDown>,
        delay: Duration,
    ) -> impl Future<Output = Result<Loaded<T>, SourceDown>> + Send + use<T> {
        let calls = Arc::clone(&self.calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            answer
        }
    }
}

fn event(cache: &CacheClient, event: CacheEvent) -> u64 {
    cache.metrics().snapshot().event(event)
}

/// Waits (bounded) until `condition` holds; false when it never did.
async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

fn expires_in(ttl: Ttl) -> Duration {
    match ttl {
        Ttl::ExpiresIn(left) => left,
        other => panic!("expected a TTL, got {other:?}"),
    }
}

pub(super) async fn get_or_load_loads_once_then_serves_from_the_cache(cache: CacheClient) {
    let policy = LoadPolicy::builder(Duration::from_secs(60)).build().unwrap();
    let source = Source::default();
    for round in 0..3 {
        let found = cache
            .get_or_load("profile:1", &policy, || source.load(Ok(Loaded::Found(profile("ada"))), Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(found, Some(profile("ada")), "round {round}");
    }
    assert_eq!(source.calls(), 1, "only the first call loads");
    assert_eq!(event(&cache, CacheEvent::Load), 1);
    let left = expires_in(cache.get_ttl("profile:1").await.unwrap());
    assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(66), "ttl 60 s ± 10 %: {left:?}");
}

pub(super) async fn get_or_load_caches_missing_with_the_shorter_negative_ttl(cache: CacheClient) {
    let policy = LoadPolicy::builder(Duration::from_secs(3600)).build().unwrap();
    let source = Source::default();
    for round in 0..3 {
        let found: Option<Profile> =
            cache.get_or_load("ghost", &policy, || source.load(Ok(Loaded::Missing), Duration::ZERO)).await.unwrap();
        assert_eq!(found, None, "round {round}");
    }
    assert_eq!(source.calls(), 1, "a cached placeholder answers without the loader");
    assert_eq!(event(&cache, CacheEvent::NegativeHit), 2);
    let left = expires_in(cache.get_ttl("ghost").await.unwrap());
    assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(66), "default negative ttl 60 s: {left:?}");

    let short = LoadPolicy::builder(Duration::from_secs(3600)).negative_ttl(Duration::from_secs(5)).build().unwrap();
    let found: Option<Profile> =
        cache.get_or_load("ghost:2", &short, || source.load(Ok(Loaded::Missing), Duration::ZERO)).await.unwrap();
    assert_eq!(found, None);
    let left = expires_in(cache.get_ttl("ghost:2").await.unwrap());
    assert!(left <= Duration::from_millis(5500), "negative ttl 5 s ± 10 %: {left:?}");
}

pub(super) async fn get_or_load_does_not_cache_errors(cache: CacheClient) {
    let policy = LoadPolicy::builder(Duration::from_secs(60)).build().unwrap();
    let source = Source::default();
    let error = cache
        .get_or_load::<Profile, _, _, _>("flaky", &policy, || source.load(Err(SourceDown), Duration::ZERO))
        .await
        .expect_err("the loader failed");
    assert!(matches!(&error, LoadError::Loader { source, .. } if **source == SourceDown), "{error:?}");
    let redacted = cache.redacted_key("flaky").to_string();
    assert!(error.to_string().contains(&redacted), "the message names the key, redacted: {error}");
    assert!(!cache.key_exists("flaky").await.unwrap(), "an error is not cached");
    let found =
        cache.get_or_load("flaky", &policy, || source.load(Ok(Loaded::Found(profile("bo"))), Duration::ZERO)).await;
    assert_eq!(found.unwrap(), Some(profile("bo")));
    assert_eq!(source.calls(), 2, "the call after an error loads again");
}

pub(super) async fn get_or_load_coalesces_concurrent_callers(cache: CacheClient) {
    const CALLERS: u64 = 16;
    let policy = LoadPolicy::builder(Duration::from_secs(60)).build().unwrap();
    let source = Source::default();
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let (cache, policy, source) = (cache.clone(), policy.clone(), source.clone());
        callers.push(tokio::spawn(async move {
            let watched = cache.clone();
            cache
                .get_or_load("hot", &policy, move || {
                    // Held open until every other caller waits on it: nothing is cached before
                    // then, so each of them must have joined this load.
                    let load = source.load(Ok(Loaded::Found(profile("hot"))), Duration::ZERO);
                    async move {
                        eventually(|| event(&watched, CacheEvent::CoalescedWait) >= CALLERS - 1).await;
                        load.await
                    }
                })
                .await
        }));
    }
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), Some(profile("hot")));
    }
    assert_eq!(source.calls(), 1, "{CALLERS} concurrent callers, one load");
    assert_eq!(event(&cache, CacheEvent::CoalescedWait), CALLERS - 1);
    assert_eq!(event(&cache, CacheEvent::Load), 1);
}

pub(super) async fn get_or_load_survives_a_cancelled_leader(cache: CacheClient) {
    const WAITERS: u64 = 3;
    let policy = LoadPolicy::builder(Duration::from_secs(60)).build().unwrap();
    let source = Source::default();
    let gate = Arc::new(Semaphore::new(0));
    let leader = {
        let (cache, policy, source, gate) = (cache.clone(), policy.clone(), source.clone(), Arc::clone(&gate));
        tokio::spawn(async move {
            cache
                .get_or_load("slow", &policy, move || {
                    let calls = Arc::clone(&source.calls);
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let _open = gate.acquire().await;
                        Ok::<_, SourceDown>(Loaded::Found(profile("leader")))
                    }
                })
                .await
        })
    };
    assert!(eventually(|| source.calls() == 1).await, "the leader's load started");
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (cache, policy, source) = (cache.clone(), policy.clone(), source.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load("slow", &policy, || source.load(Ok(Loaded::Found(profile("waiter"))), Duration::ZERO))
                    .await
            })
        })
        .collect();
    assert!(eventually(|| event(&cache, CacheEvent::CoalescedWait) == WAITERS).await, "the waiters joined");
    leader.abort();
    assert!(leader.await.expect_err("aborted mid-load").is_cancelled());
    gate.add_permits(1);
    for waiter in waiters {
        let found = tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("a waiter is not wedged");
        assert_eq!(found.unwrap().unwrap(), Some(profile("leader")));
    }
    assert_eq!(source.calls(), 1);
    let again =
        cache.get_or_load("slow", &policy, || source.load(Ok(Loaded::Found(profile("late"))), Duration::ZERO)).await;
    assert_eq!(again.unwrap(), Some(profile("leader")), "the cancelled caller's load was still cached");
    assert_eq!(source.calls(), 1);
}

pub(super) async fn get_or_load_jitters_ttls_within_bounds(cache: CacheClient) {
    const KEYS: usize = 40;
    let ttl = Duration::from_secs(1000);
    let policy = LoadPolicy::builder(ttl).build().unwrap();
    let source = Source::default();
    let mut lefts = Vec::new();
    for index in 0..KEYS {
        let key = format!("jitter:{index}");
        cache.get_or_load(&key, &policy, || source.load(Ok(Loaded::Found(index)), Duration::ZERO)).await.unwrap();
        lefts.push(expires_in(cache.get_ttl(&key).await.unwrap()));
    }
    for left in &lefts {
        assert!(*left >= Duration::from_secs(898) && *left <= Duration::from_secs(1100), "1000 s ± 10 %: {left:?}");
    }
    let (shortest, longest) = (lefts.iter().min().unwrap(), lefts.iter().max().unwrap());
    assert!(
        *longest - *shortest >= Duration::from_secs(50),
        "{KEYS} TTLs spread over 200 s: {shortest:?}..{longest:?}"
    );

    let exact = LoadPolicy::builder(ttl).jitter(0.0).build().unwrap();
    cache.get_or_load("exact", &exact, || source.load(Ok(Loaded::Found(0)), Duration::ZERO)).await.unwrap();
    let left = expires_in(cache.get_ttl("exact").await.unwrap());
    assert!(left >= Duration::from_secs(998) && left <= ttl, "no jitter: {left:?}");
}

pub(super) async fn get_or_load_single_flight_across_instances(cache: CacheClient) {
    const CALLERS_PER_INSTANCE: usize = 4;
    // Two instances: two clients on one store with their own policies (their own in-process
    // single-flight tables); only the Redis lock can keep them from loading twice.
    let other = cache.with_key_prefix(cache.key_prefix().clone());
    let build = || {
        LoadPolicy::builder(Duration::from_secs(60))
            .cross_instance(Duration::from_secs(10), Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let source = Source::default();
    let mut callers = Vec::new();
    for (client, policy) in [(cache.clone(), build()), (other.clone(), build())] {
        for _ in 0..CALLERS_PER_INSTANCE {
            let (client, policy, source) = (client.clone(), policy.clone(), source.clone());
            callers.push(tokio::spawn(async move {
                client
                    .get_or_load("cold", &policy, || {
                        source.load(Ok(Loaded::Found(profile("cold"))), Duration::from_millis(300))
                    })
                    .await
            }));
        }
    }
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), Some(profile("cold")));
    }
    assert_eq!(source.calls(), 1, "two instances, one load");
    assert!(!cache.key_exists("cold:loading").await.unwrap(), "the loading lock is released");
}

pub(super) async fn get_or_load_envelope_never_confused_with_the_placeholder(cache: CacheClient) {
    let policy = LoadPolicy::builder(Duration::from_secs(60)).build().unwrap();
    let source = Source::default();

    let lookalike: HashMap<String, u64> = [("m".to_owned(), 1), ("x".to_owned(), 5)].into();
    let text_lookalike = r#"{"m":1,"x":5}"#.to_owned();
    for round in 0..2 {
        let found = cache
            .get_or_load("map", &policy, || source.load(Ok(Loaded::Found(lookalike.clone())), Duration::ZERO))
            .await;
        assert_eq!(found.unwrap(), Some(lookalike.clone()), "round {round}");
        let found = cache
            .get_or_load("text", &policy, || source.load(Ok(Loaded::Found(text_lookalike.clone())), Duration::ZERO))
            .await;
        assert_eq!(found.unwrap(), Some(text_lookalike.clone()), "round {round}");
        let found =
            cache.get_or_load("null", &policy, || source.load(Ok(Loaded::Found(None::<u64>)), Duration::ZERO)).await;
        assert_eq!(found.unwrap(), Some(None), "a null value is a value, not a miss (round {round})");
        let found: Option<Option<u64>> =
            cache.get_or_load("gone", &policy, || source.load(Ok(Loaded::Missing), Duration::ZERO)).await.unwrap();
        assert_eq!(found, None, "round {round}");
    }
    assert_eq!(source.calls(), 4, "the second round is served from the cache");
    assert_eq!(event(&cache, CacheEvent::NegativeHit), 1);

    let stored: serde_json::Value = serde_json::from_str(&cache.get_value("map").await.unwrap().unwrap()).unwrap();
    assert_eq!(stored["v"], serde_json::json!({"m": 1, "x": 5}), "the value is nested: {stored}");
    assert!(stored["d"].is_u64() && stored["x"].is_u64() && stored.get("m").is_none(), "{stored}");
    let stored: serde_json::Value = serde_json::from_str(&cache.get_value("gone").await.unwrap().unwrap()).unwrap();
    assert_eq!(stored["m"], 1, "{stored}");
    assert!(stored["x"].is_u64() && stored.get("v").is_none(), "{stored}");
}

pub(super) async fn get_or_load_refuses_a_value_that_is_not_an_envelope(cache: CacheClient) {
    let policy = LoadPolicy::builder(Duration::from_secs(60)).build().unwrap();
    let source = Source::default();
    let foreign = [
        r#"{"name":"ada","visits":7}"#,
        r#"{"m":2,"x":1}"#,
        r#"{"v":{"name":"ada","visits":7},"x":1}"#,
        r#"{"m":1,"x":1,"extra":0}"#,
        r#"{"m":1,"v":{"name":"ada","visits":7},"d":1,"x":1}"#,
        "not json",
    ];
    for (index, text) in foreign.iter().enumerate() {
        let key = format!("foreign:{index}");
        cache.set_value(&key, text, None).await.unwrap();
        let error = cache
            .get_or_load(&key, &policy, || source.load(Ok(Loaded::Found(profile("new"))), Duration::ZERO))
            .await
            .expect_err(text);
        assert!(
            matches!(&error, LoadError::Cache(error) if error.kind() == CacheErrorKind::BadData),
            "{text}: {error}"
        );
        let redacted = cache.redacted_key(&key).to_string();
        assert!(error.to_string().contains(&redacted), "the message names the key, redacted: {error}");
        assert_eq!(cache.get_value(&key).await.unwrap().as_deref(), Some(*text), "left as it was");
    }
    assert_eq!(source.calls(), 0);
}

pub(super) async fn get_or_load_refreshes_early_near_expiry(cache: CacheClient) {
    // A 1 s TTL and a load of at least 100 ms with β = 4: XFetch refreshes with probability
    // exp(−gap / 400 ms) on each read, so reads every 25 ms refresh well before the expiry.
    let policy = LoadPolicy::builder(Duration::from_secs(1)).jitter(0.0).early_refresh_beta(4.0).build().unwrap();
    let generation = Arc::new(AtomicU64::new(0));
    let load = || {
        let generation = Arc::clone(&generation);
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, SourceDown>(Loaded::Found(generation.fetch_add(1, Ordering::SeqCst) + 1))
        }
    };
    assert_eq!(cache.get_or_load("fresh", &policy, load).await.unwrap(), Some(1));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = vec![1];
    while seen.last() != Some(&2) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let found = cache.get_or_load("fresh", &policy, load).await.unwrap();
        seen.push(found.expect("a value is served meanwhile"));
    }
    assert_eq!(seen.last(), Some(&2), "refreshed within 5 s: {seen:?}");
    assert!(seen.iter().all(|generation| *generation <= 2), "{seen:?}");
    assert!(event(&cache, CacheEvent::EarlyRefresh) >= 1, "the new value came from an early refresh");
}

pub(super) async fn get_or_load_serves_stale_when_the_loader_fails(cache: CacheClient) {
    let builder = || LoadPolicy::builder(Duration::from_millis(200)).jitter(0.0).early_refresh_beta(0.0);
    let stale = builder().stale_on_error(Duration::from_secs(30)).build().unwrap();
    let strict = builder().build().unwrap();
    let briefly = builder().stale_on_error(Duration::from_millis(250)).build().unwrap();
    let source = Source::default();
    for (key, policy) in [("stale", &stale), ("strict", &strict), ("briefly", &briefly)] {
        let found =
            cache.get_or_load(key, policy, || source.load(Ok(Loaded::Found(profile(key))), Duration::ZERO)).await;
        assert_eq!(found.unwrap(), Some(profile(key)));
    }
    for key in ["stale", "strict", "briefly"] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while cache.key_exists(key).await.unwrap() {
            assert!(Instant::now() < deadline, "{key} expires");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let failing = || source.load::<Profile>(Err(SourceDown), Duration::ZERO);
    assert_eq!(cache.get_or_load("stale", &stale, failing).await.unwrap(), Some(profile("stale")));
    assert_eq!(event(&cache, CacheEvent::StaleServed), 1);
    let error = cache.get_or_load("strict", &strict, failing).await.expect_err("stale-on-error is off");
    assert!(matches!(error, LoadError::Loader { .. }), "{error}");
    let error = cache.get_or_load("briefly", &briefly, failing).await.expect_err("older than 250 ms");
    assert!(matches!(error, LoadError::Loader { .. }), "{error}");
    let error = cache.get_or_load("never-seen", &stale, failing).await.expect_err("nothing to serve");
    assert!(matches!(error, LoadError::Loader { .. }), "{error}");
    assert_eq!(event(&cache, CacheEvent::StaleServed), 1);
}

/// A key the Bloom guard never saw is answered `None` with no Redis read and no load; a key it
/// saw goes the usual way.
pub(super) async fn get_or_load_bloom_guard_rejects_unknown_keys(cache: CacheClient) {
    let guard = cache_toolkit::BloomGuard::new(&cache, "profiles", 1_000, 0.001).unwrap();
    guard.add("profile:known").await.unwrap();
    let policy = LoadPolicy::builder(Duration::from_secs(60)).known_keys(guard).build().unwrap();
    let source = Source::default();
    let operations_before = cache.metrics().snapshot().operations;
    for index in 0..50 {
        let key = format!("profile:unknown:{index}");
        let found = cache
            .get_or_load(&key, &policy, || source.load(Ok(Loaded::Found(profile("x"))), Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(found, None, "{key} was never added");
    }
    let rejected = event(&cache, CacheEvent::BloomRejection);
    // At p = 0.001 one false positive in 50 is already unlikely; allow two.
    assert!(rejected >= 48, "only {rejected} of 50 unknown keys rejected");
    assert_eq!(source.calls(), 50 - rejected, "a rejected key is never loaded");
    let reads = cache.metrics().snapshot().operations - operations_before;
    assert!(reads <= 50 + 2 * (50 - rejected), "rejections read only the filter: {reads} operations");
    let found = cache
        .get_or_load("profile:known", &policy, || source.load(Ok(Loaded::Found(profile("ada"))), Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(found, Some(profile("ada")), "a known key loads");
    assert!(cache.key_exists("profile:known").await.unwrap(), "and is cached");
}
