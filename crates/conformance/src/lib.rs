//! The conformance suite: one set of cases (`cases`, `locks`, `get_or_load`, `bloom`) run
//! against every backend — the embedded store, standalone Redis, Redis Cluster and
//! Sentinel-discovered Redis, and standalone and cluster Redis behind the near cache. The
//! backend is part of each test's path (`conformance::cluster::lists_negative_indices`), so a
//! run shows which backend passed what. Redis backends come from `cargo xtask test`; without it
//! these tests fail and say so. Each test works under its own random key prefix.
//!
//! The `conformance_suite!` macro below makes one test per case and backend. Its list names
//! each case bare, since every area's file is glob-imported; so that names cannot collide, each
//! area but `cases.rs` prefixes its case names with the area (`lock_…`, `get_or_load_…`,
//! `bloom_…`). A new case is written in its area's file and added to that list.
//! `differential.rs` runs random operation sequences on the embedded store and on Redis side by
//! side.

#![cfg(test)]
#![allow(clippy::unwrap_used, reason = "tests: a panic is a failure with its message")]

mod bloom;
mod cases;
mod differential;
mod get_or_load;
mod locks;

use std::time::Duration;

use fred::{
    interfaces::ClientLike,
    types::{
        Builder,
        config::{Config, ReconnectPolicy},
    },
};

// Every area's cases by bare name (each area prefixes its case names, e.g. `bloom_`), so the
// macro list below names them without a path.
use bloom::*;
use cases::*;
use get_or_load::*;
use locks::*;

use cache_toolkit::{CacheClient, CacheOptions, CacheStore, EmbeddedStore, KeyPrefix, RedisPool};

fn unique_options() -> CacheOptions {
    let prefix = format!("conformance:{:016x}:", rand::random::<u64>());
    CacheOptions { key_prefix: KeyPrefix::parse(&prefix).unwrap(), ..CacheOptions::default() }
}

fn embedded() -> CacheClient {
    CacheClient::new(CacheStore::Embedded(EmbeddedStore::new()), unique_options())
}

/// A pooled client on one of the topologies `cargo xtask test` started. (Production pools are
/// built by `infra`, which this crate cannot depend on; these settings mirror its essentials.)
async fn redis(variable: &str) -> CacheClient {
    redis_with_pool(variable).await.0
}

async fn redis_with_pool(variable: &str) -> (CacheClient, fred::clients::Pool) {
    let url = std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: run the tests with `cargo xtask test` (it starts private Redis servers)")
    });
    let config = Config::from_url(&url).unwrap_or_else(|error| panic!("{variable}={url}: {error}"));
    let pool = Builder::from_config(config)
        .with_connection_config(|connection| connection.connection_timeout = Duration::from_secs(2))
        .with_performance_config(|performance| performance.default_command_timeout = Duration::from_secs(5))
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 1_000, 2))
        .build_pool(2)
        .unwrap();
    pool.init().await.unwrap_or_else(|error| panic!("cannot connect to {url}: {error}"));
    (CacheClient::new(CacheStore::Redis(RedisPool::from_fred(pool.clone())), unique_options()), pool)
}

/// A pooled client with the near cache in front (RESP3, as `infra` builds it): every case must
/// pass through it unchanged, which shows it never answers what Redis would not.
async fn near(variable: &str) -> CacheClient {
    let url = std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: run the tests with `cargo xtask test` (it starts private Redis servers)")
    });
    let mut config = Config::from_url(&url).unwrap_or_else(|error| panic!("{variable}={url}: {error}"));
    config.version = fred::types::RespVersion::RESP3;
    let pool = Builder::from_config(config)
        .with_connection_config(|connection| connection.connection_timeout = Duration::from_secs(2))
        .with_performance_config(|performance| {
            performance.default_command_timeout = Duration::from_secs(5);
            performance.broadcast_channel_capacity = 4_096;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 1_000, 2))
        .build_pool(2)
        .unwrap();
    pool.init().await.unwrap_or_else(|error| panic!("cannot connect to {url}: {error}"));
    let cache = CacheClient::new(CacheStore::Redis(RedisPool::from_fred(pool)), unique_options());
    let cache = cache.with_near_cache(cache_toolkit::NearCacheSettings::default()).await.unwrap();
    assert!(cache.near_cache_enabled());
    cache
}

/// Lock scripts are sent by EVALSHA; after Redis forgets them (restart, SCRIPT FLUSH) the
/// NOSCRIPT reply must lead to a reload, not to a failed release.
async fn lock_scripts_survive_a_script_flush(variable: &str) {
    use fred::interfaces::LuaInterface;

    use cache_toolkit::LockRelease;

    let (cache, pool) = redis_with_pool(variable).await;
    let flush = async || {
        if pool.next().is_clustered() {
            pool.next().script_flush_cluster(false).await.unwrap();
        } else {
            pool.script_flush(false).await.unwrap();
        }
    };
    for _ in 0..2 {
        flush().await;
        let guard = cache.acquire_lock("lock", Duration::from_secs(10), Duration::ZERO, Duration::ZERO).await.unwrap();
        let guard = guard.expect("a free lock");
        flush().await;
        assert!(guard.extend(Duration::from_secs(20)).await.unwrap(), "extend after SCRIPT FLUSH");
        flush().await;
        assert_eq!(guard.release().await.unwrap(), LockRelease::Released, "release after SCRIPT FLUSH");
    }
}

mod noscript_fallback {
    #[tokio::test]
    async fn standalone() {
        super::lock_scripts_survive_a_script_flush(dev_support::env::REDIS_URL).await;
    }

    #[tokio::test]
    async fn cluster() {
        super::lock_scripts_survive_a_script_flush(dev_support::env::REDIS_CLUSTER_URL).await;
    }

    #[tokio::test]
    async fn sentinel() {
        super::lock_scripts_survive_a_script_flush(dev_support::env::REDIS_SENTINEL_URL).await;
    }
}

/// While the primary gate is closed (a failover), PING is refused with the commands: the nodes
/// still answer it, but the store cannot serve, and `/readyz` must say so.
async fn ping_is_refused_while_the_primary_gate_is_closed(variable: &str) {
    use std::sync::Arc;

    use cache_toolkit::{CacheErrorKind, GateClosed, PrimaryGate};

    let (_, pool) = redis_with_pool(variable).await;
    let gate = Arc::new(PrimaryGate::new());
    let cache = CacheClient::new(
        CacheStore::Redis(RedisPool::from_fred(pool).with_primary_gate(Arc::clone(&gate))),
        unique_options(),
    );
    cache.ping().await.unwrap();
    for why in [GateClosed::Failover, GateClosed::ReadOnlyReply] {
        gate.close(why);
        let refused = cache.ping().await.unwrap_err();
        assert_eq!(refused.kind(), CacheErrorKind::Unavailable, "{refused}");
        assert!(refused.to_string().contains(why.as_str()), "{refused}");
        gate.open();
        cache.ping().await.unwrap();
    }
}

mod readiness_behind_the_primary_gate {
    #[tokio::test]
    async fn standalone() {
        super::ping_is_refused_while_the_primary_gate_is_closed(dev_support::env::REDIS_URL).await;
    }

    #[tokio::test]
    async fn sentinel() {
        super::ping_is_refused_while_the_primary_gate_is_closed(dev_support::env::REDIS_SENTINEL_URL).await;
    }
}

/// `conformance_suite!(a, b)` runs the cases `a` and `b` (imported by bare name from their
/// area's file) on every backend, one module per backend.
macro_rules! conformance_suite {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test] async fn $case() { super::$case(super::embedded()).await; })*
        }
        mod standalone {
            $(#[tokio::test] async fn $case() { super::$case(super::redis(dev_support::env::REDIS_URL).await).await; })*
        }
        mod cluster {
            $(#[tokio::test] async fn $case() { super::$case(super::redis(dev_support::env::REDIS_CLUSTER_URL).await).await; })*
        }
        mod sentinel {
            $(#[tokio::test] async fn $case() { super::$case(super::redis(dev_support::env::REDIS_SENTINEL_URL).await).await; })*
        }
        mod standalone_near_cache {
            $(#[tokio::test] async fn $case() { super::$case(super::near(dev_support::env::REDIS_URL).await).await; })*
        }
        mod cluster_near_cache {
            $(#[tokio::test] async fn $case() { super::$case(super::near(dev_support::env::REDIS_CLUSTER_URL).await).await; })*
        }
    };
}

conformance_suite!(
    ping_answers,
    strings_set_get_overwrite_and_missing,
    strings_odd_keys_and_values,
    strings_one_mebibyte_value,
    strings_set_if_absent,
    keys_exist_and_delete,
    existing_keys_in_order_across_slots,
    ttl_states,
    ttl_zero_is_refused_or_deletes,
    ttl_expires_for_real,
    ttl_over_the_maximum_is_refused_and_long_waits_saturate,
    json_nested_round_trips,
    json_bad_stored_data_is_an_error_naming_the_key,
    wrong_type_is_an_error_on_every_structure,
    hashes_set_get_all_delete,
    lists_push_order_and_length,
    lists_negative_indices,
    lists_pop_both_ends,
    lists_position,
    lists_remove_positive_negative_and_zero_counts,
    lists_trim,
    lists_capped_push_keeps_the_newest_and_returns_the_evicted,
    lists_contains_and_value_with_membership,
    lock_contention_loses_no_update,
    lock_expired_cannot_be_released_by_its_old_holder,
    lock_wrong_identifier_cannot_release_or_extend,
    lock_acquire_times_out,
    batch_delete_over_many_slots,
    delete_matching_pattern_everywhere,
    prefixes_isolate_clients_on_one_store,
    metrics_count_hits_misses_and_errors,
    bloom_has_no_false_negatives,
    bloom_false_positive_rate_is_near_the_target,
    bloom_refuses_bad_parameters,
    bloom_wrong_type_is_an_error,
    bloom_shared_between_clients,
    bloom_bitmap_has_redis_bit_semantics,
    bloom_clear_empties_the_filter,
    lock_fencing_tokens_increase_across_acquisitions_and_clients,
    lock_keys_without_a_slot_for_their_counter_are_refused,
    lock_counter_of_another_type_fails_acquisition_and_leaves_no_lock,
    lock_counter_that_incr_refuses_fails_acquisition_as_in_redis,
    lock_watchdog_keeps_a_lock_past_its_lease,
    lock_paused_holder_is_told_it_lost_the_lock,
    lock_watchdog_stops_when_the_guard_is_released_or_dropped,
    lock_extend_finding_the_lock_lost_signals_it_once,
    get_or_load_loads_once_then_serves_from_the_cache,
    get_or_load_caches_missing_with_the_shorter_negative_ttl,
    get_or_load_does_not_cache_errors,
    get_or_load_coalesces_concurrent_callers,
    get_or_load_survives_a_cancelled_leader,
    get_or_load_jitters_ttls_within_bounds,
    get_or_load_single_flight_across_instances,
    get_or_load_envelope_never_confused_with_the_placeholder,
    get_or_load_refuses_a_value_that_is_not_an_envelope,
    get_or_load_refreshes_early_near_expiry,
    get_or_load_serves_stale_when_the_loader_fails,
    get_or_load_bloom_guard_rejects_unknown_keys,
);

/// Scripts run on standalone and sentinel Redis, with the key prefix applied to KEYS; the
/// embedded store and a cluster refuse them plainly (callers fall back to plain operations).
mod scripts {
    use std::sync::LazyLock;

    use cache_toolkit::{CacheClient, CacheErrorKind, CacheScript, ScriptReply};

    static ECHO: LazyLock<CacheScript> = LazyLock::new(|| {
        CacheScript::new(
            "if ARGV[1] == 'nil' then return false end \
             return {KEYS[1], tonumber(ARGV[2]), redis.call('SET', KEYS[1], ARGV[1]) and 1, redis.call('GET', KEYS[1])}",
        )
    });

    async fn runs(cache: CacheClient) {
        assert!(cache.runs_scripts());
        cache.load_script(&ECHO).await.unwrap();
        let prefix = cache.key_prefix().as_str().to_owned();
        let reply = cache.run_script(&ECHO, &["k"], &["vé", "42"]).await.unwrap();
        assert_eq!(
            reply,
            ScriptReply::Array(vec![
                ScriptReply::Text(format!("{prefix}k")),
                ScriptReply::Integer(42),
                ScriptReply::Integer(1),
                ScriptReply::Text("vé".to_owned()),
            ])
        );
        assert_eq!(cache.run_script(&ECHO, &["k"], &["nil", "0"]).await.unwrap(), ScriptReply::Nil);
        assert_eq!(cache.get_value("k").await.unwrap().as_deref(), Some("vé"));
    }

    async fn refused(cache: CacheClient) {
        assert!(!cache.runs_scripts());
        cache.load_script(&ECHO).await.unwrap();
        let error = cache.run_script(&ECHO, &["k"], &["v", "1"]).await.expect_err("no scripts here");
        assert_eq!(error.kind(), CacheErrorKind::InvalidInput, "{error}");
    }

    #[tokio::test]
    async fn standalone() {
        runs(super::redis(dev_support::env::REDIS_URL).await).await;
    }

    #[tokio::test]
    async fn sentinel() {
        runs(super::redis(dev_support::env::REDIS_SENTINEL_URL).await).await;
    }

    #[tokio::test]
    async fn cluster() {
        refused(super::redis(dev_support::env::REDIS_CLUSTER_URL).await).await;
    }

    #[tokio::test]
    async fn embedded() {
        refused(super::embedded()).await;
    }
}
