//! `infra::Backend` against standalone, cluster and sentinel Redis: init, PING, close; a
//! closed port fails fast and clearly; a restarted Redis is found again by the same client.

use std::time::{Duration, Instant};

use cache_toolkit::{CacheErrorKind, CacheOptions};
use config::{AppEnv, RedisSettings, Settings};
use infra::{Backend, InfraError};
use tests::{PrivateRedis, Topology, free_port};

fn redis_settings(pairs: &[(&str, &str)]) -> RedisSettings {
    Settings::from_env_pairs(AppEnv::Test, pairs).unwrap().redis
}

async fn init_ping_close(topology: Topology) {
    let url = topology.url();
    let backend = Backend::connect_redis(&redis_settings(&[("REDIS_URL", &url)]), CacheOptions::default())
        .await
        .unwrap_or_else(|error| panic!("{topology}: {error}"));
    assert!(backend.describe().contains(topology.as_str()), "{}", backend.describe());
    let latency = backend.health().await.unwrap_or_else(|error| panic!("{topology}: {error}"));
    assert!(latency < Duration::from_secs(1), "{topology}: PING took {latency:?}");
    backend.reset().await.unwrap();
    backend.health().await.unwrap_or_else(|error| panic!("{topology} after reset: {error}"));
    let started = Instant::now();
    backend.close().await;
    assert!(started.elapsed() < Duration::from_secs(3), "{topology}: close took {:?}", started.elapsed());
}

#[tokio::test]
async fn standalone_init_ping_close() {
    init_ping_close(Topology::Standalone).await;
}

#[tokio::test]
async fn cluster_init_ping_close() {
    init_ping_close(Topology::Cluster).await;
}

#[tokio::test]
async fn sentinel_init_ping_close() {
    init_ping_close(Topology::Sentinel).await;
}

#[tokio::test]
async fn a_closed_port_fails_within_the_connect_timeout_naming_the_address() {
    let port = free_port();
    let url = format!("redis://:topsecretpw@127.0.0.1:{port}");
    let settings = redis_settings(&[("REDIS_URL", &url), ("TESSERA_REDIS_CONNECT_TIMEOUT_MS", "800")]);
    let started = Instant::now();
    let error = Backend::connect_redis(&settings, CacheOptions::default()).await.expect_err("nothing listens there");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(800 + 1_200), "init took {elapsed:?}");
    let text = error.to_string();
    assert!(matches!(error, InfraError::Connect { .. } | InfraError::ConnectTimeout { .. }), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("Os {") && !text.contains("kind:"), "a debug-printed error reached the operator: {text}");
    assert!(!text.contains("topsecretpw"), "password leaked: {text}");
}

#[tokio::test]
async fn an_unanswering_cluster_seed_fails_within_the_connect_timeout() {
    let port = free_port();
    let url = format!("redis-cluster://127.0.0.1:{port}");
    let settings = redis_settings(&[("REDIS_URL", &url), ("TESSERA_REDIS_CONNECT_TIMEOUT_MS", "800")]);
    let started = Instant::now();
    let error = Backend::connect_redis(&settings, CacheOptions::default()).await.expect_err("nothing listens there");
    assert!(started.elapsed() < Duration::from_millis(800 + 1_200), "init took {:?}", started.elapsed());
    assert!(error.to_string().contains(&format!("127.0.0.1:{port}")), "{error}");
}

#[tokio::test]
async fn the_same_client_answers_again_after_redis_restarts() {
    let mut redis = PrivateRedis::start();
    let settings = redis_settings(&[
        ("REDIS_URL", &redis.url()),
        ("TESSERA_REDIS_COMMAND_TIMEOUT_MS", "500"),
        ("TESSERA_REDIS_RECONNECT_MAX_MS", "500"),
    ]);
    let backend = Backend::connect_redis(&settings, CacheOptions::default()).await.unwrap();
    let cache = backend.cache().clone();
    cache.ping().await.unwrap();

    redis.stop();
    let started = Instant::now();
    let error = cache.ping().await.expect_err("redis is down");
    assert_eq!(error.kind(), CacheErrorKind::Unavailable, "{error}");
    assert!(error.is_retryable());
    assert!(
        started.elapsed() < Duration::from_millis(500 + 1_500),
        "a down redis must fail within the command timeout, took {:?}",
        started.elapsed()
    );

    redis.restart();
    let restarted = Instant::now();
    loop {
        match cache.ping().await {
            Ok(_) => break,
            Err(error) => {
                assert!(restarted.elapsed() < Duration::from_secs(5), "still failing 5 s after restart: {error}")
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("client answered again {:?} after redis restarted", restarted.elapsed());
    backend.close().await;
}
