//! `get_or_load`'s protections that need Redis to fail: without opt-in an outage is an error;
//! with stale-on-error the last good value is served, and degraded loads go to the source at
//! most N at a time. Each test owns a `redis-server` and kills it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use cache_toolkit::{CacheClient, CacheErrorKind, CacheEvent, CacheOptions, LoadError, LoadPolicy, Loaded};
use config::{AppEnv, Settings};
use infra::Backend;
use tests::PrivateRedis;

/// A client with short timeouts, so an outage shows within 300 ms.
async fn connect(redis: &PrivateRedis) -> (Backend, CacheClient) {
    let url = redis.url();
    let pairs = [
        ("REDIS_URL", url.as_str()),
        ("TESSERA_REDIS_COMMAND_TIMEOUT_MS", "300"),
        ("TESSERA_REDIS_CONNECT_TIMEOUT_MS", "300"),
    ];
    let settings = Settings::from_env_pairs(AppEnv::Test, &pairs).unwrap().redis;
    let backend = Backend::connect_redis(&settings, CacheOptions::default()).await.unwrap();
    let cache = backend.cache().clone();
    (backend, cache)
}

#[tokio::test]
async fn redis_outage_is_an_error_without_opt_in() {
    let mut redis = PrivateRedis::start();
    let (backend, cache) = connect(&redis).await;
    let policy = LoadPolicy::builder(Duration::from_secs(60)).build().unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let load = || {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Loaded::Found(7_u64))
        }
    };
    assert_eq!(cache.get_or_load("k", &policy, load).await.unwrap(), Some(7));
    redis.stop();
    let error = cache.get_or_load("other", &policy, load).await.expect_err("Redis is down");
    assert!(matches!(&error, LoadError::Cache(error) if error.kind() == CacheErrorKind::Unavailable), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the source is not asked when degrading is off");
    assert_eq!(cache.metrics().snapshot().event(CacheEvent::DegradedLoad), 0);
    backend.close().await;
}

#[tokio::test]
async fn redis_outage_serves_stale_values_then_degrades_with_bounded_concurrency() {
    const KEYS: u64 = 6;
    const MAX_CONCURRENT: usize = 2;
    let mut redis = PrivateRedis::start();
    let (backend, cache) = connect(&redis).await;
    let policy = LoadPolicy::builder(Duration::from_secs(60))
        .stale_on_error(Duration::from_secs(30))
        .degrade_to_loader(MAX_CONCURRENT)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicU64::new(0));
    let most_running = Arc::new(AtomicU64::new(0));
    let load = {
        let (calls, running, most_running) = (Arc::clone(&calls), Arc::clone(&running), Arc::clone(&most_running));
        move |value: u64| {
            let (calls, running, most_running) = (Arc::clone(&calls), Arc::clone(&running), Arc::clone(&most_running));
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let now_running = running.fetch_add(1, Ordering::SeqCst) + 1;
                most_running.fetch_max(now_running, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(Loaded::Found(value))
            }
        }
    };
    assert_eq!(cache.get_or_load("seen", &policy, || load(1)).await.unwrap(), Some(1));
    redis.stop();

    assert_eq!(cache.get_or_load("seen", &policy, || load(2)).await.unwrap(), Some(1), "the last good value");
    assert_eq!(cache.metrics().snapshot().event(CacheEvent::StaleServed), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a stale value spares the source");

    let callers: Vec<_> = (0..KEYS)
        .map(|index| {
            let (cache, policy, load) = (cache.clone(), policy.clone(), load.clone());
            tokio::spawn(async move { cache.get_or_load(&format!("cold:{index}"), &policy, || load(index)).await })
        })
        .collect();
    for (index, caller) in (0..KEYS).zip(callers) {
        assert_eq!(caller.await.unwrap().unwrap(), Some(index), "degraded load of cold:{index}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1 + KEYS);
    assert!(
        most_running.load(Ordering::SeqCst) <= MAX_CONCURRENT as u64,
        "at most {MAX_CONCURRENT} degraded loads at once"
    );
    let snapshot = cache.metrics().snapshot();
    assert_eq!(snapshot.event(CacheEvent::DegradedLoad), KEYS);
    assert_eq!(snapshot.event(CacheEvent::Load), 1 + KEYS);
    backend.close().await;
}
