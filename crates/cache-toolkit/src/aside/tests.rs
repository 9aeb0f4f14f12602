//! Unit tests of `get_or_load`'s parts (the XFetch decision, jitter, the envelope, policy
//! validation) and of the protections that need Redis to fail: stale-on-error and degraded
//! loads, against a private `redis-server` this test starts and kills.

#![allow(clippy::unwrap_used, reason = "tests: a panic is a failure with its message")]

use std::{
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use fred::{
    interfaces::ClientLike,
    types::{
        Builder,
        config::{Config, ReconnectPolicy},
    },
};
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::{
    Loaded,
    envelope::{self, Envelope},
    policy::{jittered_ttl, should_refresh_early},
};
use crate::{CacheClient, CacheErrorKind, CacheEvent, CacheOptions, CacheStore, LoadError, LoadPolicy};

// --- XFetch -----------------------------------------------------------------------------------

/// A draw in (0, 1], as `get_or_load` makes it.
fn draw(random: &mut StdRng) -> f64 {
    1.0 - random.r#gen::<f64>()
}

#[test]
fn xfetch_always_refreshes_at_or_past_the_expiry() {
    let mut random = StdRng::seed_from_u64(1);
    for _ in 0..10_000 {
        let uniform = draw(&mut random);
        assert!(should_refresh_early(1_000, 50, 1_000, 1.0, uniform), "at the expiry, u = {uniform}");
        assert!(should_refresh_early(1_200, 50, 1_000, 1.0, uniform), "past the expiry, u = {uniform}");
    }
}

#[test]
fn xfetch_almost_never_refreshes_far_from_the_expiry() {
    // 100 load times before the expiry: probability exp(-100) per read.
    let mut random = StdRng::seed_from_u64(2);
    let refreshed = (0..100_000).filter(|_| should_refresh_early(0, 50, 5_000, 1.0, draw(&mut random))).count();
    assert_eq!(refreshed, 0);
}

#[test]
fn xfetch_rate_matches_the_paper() {
    // P(refresh) = exp(-gap / (load time × β)).
    const DRAWS: usize = 40_000;
    let cases = [(50_u64, 1.0_f64, 50_u64), (50, 1.0, 100), (40, 2.0, 40), (100, 0.5, 10)];
    let mut random = StdRng::seed_from_u64(3);
    for (load_time_ms, beta, gap_ms) in cases {
        let expected = (-(gap_ms as f64) / (load_time_ms as f64 * beta)).exp();
        let refreshed = (0..DRAWS)
            .filter(|_| should_refresh_early(10_000 - gap_ms, load_time_ms, 10_000, beta, draw(&mut random)))
            .count();
        let measured = refreshed as f64 / DRAWS as f64;
        assert!(
            (measured - expected).abs() < 0.015,
            "load {load_time_ms} ms, β {beta}, gap {gap_ms} ms: measured {measured}, expected {expected}"
        );
    }
}

#[test]
fn xfetch_is_off_with_a_zero_beta_or_load_time() {
    let mut random = StdRng::seed_from_u64(4);
    for _ in 0..10_000 {
        let uniform = draw(&mut random);
        assert!(!should_refresh_early(999, 50, 1_000, 0.0, uniform));
        assert!(!should_refresh_early(999, 0, 1_000, 1.0, uniform));
    }
}

// --- jitter -----------------------------------------------------------------------------------

#[test]
fn jitter_spreads_within_bounds() {
    let ttl = Duration::from_secs(100);
    assert_eq!(jittered_ttl(ttl, 0.1, 0.0), Duration::from_secs(90));
    assert_eq!(jittered_ttl(ttl, 0.1, 0.5), ttl);
    assert_eq!(jittered_ttl(ttl, 0.0, 0.99), ttl);
    assert!(jittered_ttl(ttl, 0.1, 0.999_999) <= Duration::from_secs(110));
    assert_eq!(jittered_ttl(Duration::from_millis(1), 0.5, 0.0), Duration::from_millis(1), "never below 1 ms");
    let mut random = StdRng::seed_from_u64(5);
    for _ in 0..10_000 {
        let jittered = jittered_ttl(ttl, 0.1, random.r#gen());
        assert!(jittered >= Duration::from_secs(90) && jittered <= Duration::from_secs(110), "{jittered:?}");
    }
}

// --- the envelope -----------------------------------------------------------------------------

#[test]
fn envelope_round_trips_and_keeps_values_apart_from_the_placeholder() {
    let text = envelope::encode_value(&serde_json::json!({"m": 1, "x": 2}), 12, 345).unwrap();
    assert_eq!(text, r#"{"v":{"m":1,"x":2},"d":12,"x":345}"#);
    assert_eq!(
        envelope::decode::<serde_json::Value>(text).unwrap(),
        Envelope::Value { value: serde_json::json!({"m": 1, "x": 2}), load_time_ms: 12, expires_at_ms: 345 }
    );
    let text = envelope::encode_missing(345).unwrap();
    assert_eq!(text, r#"{"m":1,"x":345}"#);
    assert_eq!(envelope::decode::<serde_json::Value>(text).unwrap(), Envelope::Missing { expires_at_ms: 345 });
    let text = envelope::encode_value(&None::<u8>, 0, 1).unwrap();
    assert_eq!(
        envelope::decode::<Option<u8>>(text).unwrap(),
        Envelope::Value { value: None, load_time_ms: 0, expires_at_ms: 1 }
    );
}

#[test]
fn envelope_refuses_anything_else() {
    let cases = [
        ("", "empty"),
        ("null", "null"),
        ("[1]", "an array"),
        (r#"{"x":1}"#, "neither value nor placeholder"),
        (r#"{"v":1,"x":1}"#, "no load time"),
        (r#"{"v":1,"d":1}"#, "no expiry"),
        (r#"{"m":0,"x":1}"#, "m is not 1"),
        (r#"{"m":1,"d":1,"x":1}"#, "a placeholder with a load time"),
        (r#"{"v":1,"d":1,"x":1,"y":0}"#, "an unknown field"),
        (r#"{"v":"text","d":1,"x":1}"#, "a value of the wrong type"),
    ];
    for (text, why) in cases {
        assert!(envelope::decode::<u64>(text.to_owned()).is_err(), "{why}: {text}");
    }
}

// --- the policy -------------------------------------------------------------------------------

#[test]
fn policy_defaults() {
    let policy = LoadPolicy::builder(Duration::from_secs(600)).build().unwrap();
    assert_eq!(policy.ttl(), Duration::from_secs(600));
    assert_eq!(policy.negative_ttl(), Duration::from_secs(60));
    assert!((policy.jitter() - 0.1).abs() < f64::EPSILON);
    assert!((policy.early_refresh_beta() - 1.0).abs() < f64::EPSILON);
    let short = LoadPolicy::builder(Duration::from_secs(10)).build().unwrap();
    assert_eq!(short.negative_ttl(), Duration::from_secs(10), "the default negative TTL never exceeds the TTL");
}

#[test]
fn policy_refuses_bad_settings_naming_them() {
    let ttl = Duration::from_secs(60);
    let cases = [
        (LoadPolicy::builder(Duration::ZERO), "ttl"),
        (LoadPolicy::builder(Duration::from_micros(999)), "ttl"),
        (LoadPolicy::builder(ttl).jitter(1.0), "jitter"),
        (LoadPolicy::builder(ttl).jitter(-0.1), "jitter"),
        (LoadPolicy::builder(ttl).jitter(f64::NAN), "jitter"),
        (LoadPolicy::builder(ttl).negative_ttl(Duration::ZERO), "negative_ttl"),
        (LoadPolicy::builder(ttl).negative_ttl(Duration::from_secs(61)), "negative_ttl"),
        (LoadPolicy::builder(ttl).early_refresh_beta(-1.0), "early_refresh_beta"),
        (LoadPolicy::builder(ttl).early_refresh_beta(f64::INFINITY), "early_refresh_beta"),
        (LoadPolicy::builder(ttl).cross_instance(Duration::ZERO, Duration::from_secs(1)), "cross_instance"),
        (LoadPolicy::builder(ttl).stale_on_error(Duration::ZERO), "stale_on_error"),
        (LoadPolicy::builder(ttl).stale_on_error(ttl).stale_capacity(0), "stale_capacity"),
        (LoadPolicy::builder(ttl).degrade_to_loader(0), "degrade_to_loader"),
    ];
    for (builder, setting) in cases {
        let error = builder.clone().build().expect_err(setting);
        assert_eq!(error.setting(), setting, "{builder:?}");
        assert!(error.to_string().starts_with(&format!("invalid load policy setting `{setting}`: ")), "{error}");
    }
}

// --- Redis failing ----------------------------------------------------------------------------

/// A `redis-server` of this test's own, killed on drop (even when the test panics).
struct PrivateRedisServer {
    child: Option<Child>,
    port: u16,
}

impl PrivateRedisServer {
    fn start() -> Self {
        let binary = std::env::var("TESSERA_TEST_REDIS_SERVER").unwrap_or_else(|_| {
            panic!(
                "TESSERA_TEST_REDIS_SERVER is not set: run the tests with `cargo xtask test` (it provides redis-server)"
            )
        });
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {binary}: {error}"));
        let server = Self { child: Some(child), port };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server on port {port} did not listen within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A client with short timeouts, so an outage shows within 300 ms.
    async fn client(&self) -> CacheClient {
        let config = Config::from_url(&format!("redis://127.0.0.1:{}", self.port)).unwrap();
        let pool = Builder::from_config(config)
            .with_connection_config(|connection| connection.connection_timeout = Duration::from_millis(300))
            .with_performance_config(|performance| performance.default_command_timeout = Duration::from_millis(300))
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 1_000, 2))
            .build_pool(2)
            .unwrap();
        pool.init().await.unwrap();
        CacheClient::new(CacheStore::Redis(pool), CacheOptions::default())
    }
}

impl Drop for PrivateRedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn redis_outage_is_an_error_without_opt_in() {
    let mut server = PrivateRedisServer::start();
    let cache = server.client().await;
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
    server.stop();
    let error = cache.get_or_load("other", &policy, load).await.expect_err("Redis is down");
    assert!(matches!(&error, LoadError::Cache(error) if error.kind() == CacheErrorKind::Unavailable), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the source is not asked when degrading is off");
    assert_eq!(cache.metrics().snapshot().event(CacheEvent::DegradedLoad), 0);
}

#[tokio::test]
async fn redis_outage_serves_stale_values_then_degrades_with_bounded_concurrency() {
    const KEYS: u64 = 6;
    const MAX_CONCURRENT: usize = 2;
    let mut server = PrivateRedisServer::start();
    let cache = server.client().await;
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
    server.stop();

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
}
