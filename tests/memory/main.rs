//! The near cache's memory stays within `max_bytes` plus a fixed allowance
//! (docs/NEAR-CACHE.md#memory), measured with a counting allocator (its own test binary, so no
//! other test's allocations are counted): two users' worth of lists churned while their
//! sessions are verified the way the DAO does it, the decoded token record holding the
//! remembered list verdict.
//!
//! The churn is what used to escape the budget: every push to a user's list retires the near
//! cache's copy of it, and each session's remembered verdict kept the retired copy alive, so a
//! user with many sessions pinned many list versions the cache no longer counted.

#![allow(clippy::unwrap_used, reason = "tests: a panic is a failure with its message")]
#![allow(clippy::print_stderr, reason = "the test reports the bytes it measured")]

use std::{
    alloc::System,
    sync::Arc,
    time::{Duration, Instant},
};

use cache_toolkit::{CacheClient, CacheOptions, KeyPrefix, ListEnd, ListVerdict, NearCacheSettings};
use config::{AppEnv, Settings};
use infra::Backend;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tests::PrivateRedis;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The near cache's budget in this test.
const BUDGET: u64 = 1024 * 1024;
/// Heap the near cache may hold beyond its budget: its fixed structures (lock stripes, shards,
/// one state and two tasks per connection) and what fred and tokio hold for reads in flight.
const FIXED_ALLOWANCE: i64 = 512 * 1024;
const USERS: usize = 300;
const SESSIONS: usize = 6;
const ROUNDS: usize = 10;
/// Bytes of each filler item pushed to a user's list per round: each list version grows.
const FILLER: usize = 512;
/// The run never takes longer than this, whatever happens.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Heap bytes allocated and not freed so far, process-wide.
fn live_heap() -> i64 {
    let stats = ALLOCATOR.stats();
    // A reallocation is already counted in these two (its growth or its shrinkage).
    let allocated = i64::try_from(stats.bytes_allocated).unwrap_or(i64::MAX);
    let freed = i64::try_from(stats.bytes_deallocated).unwrap_or(i64::MAX);
    allocated - freed
}

/// A session's token as the DAO keeps it decoded beside the near cache's entry: the record's
/// text and the remembered verdict of "is this token in its user's list".
#[derive(Debug)]
struct Session {
    record: String,
    listed: ListVerdict,
}

fn token(user: usize, session: usize) -> String {
    format!("t{user:05}-{session}-{}", "x".repeat(32))
}

async fn verify(near: &CacheClient, user: usize, session: usize) {
    let (key, list, token) =
        (format!("token:{}", token(user, session)), format!("token_list:{user}"), token(user, session));
    let decode = |text: &str| Session { record: text.to_owned(), listed: ListVerdict::default() };
    let session_record = match near.get_decoded_if_cached(&key, decode) {
        Some(Some(found)) => found,
        _ => {
            let text = near.get_value(&key).await.unwrap().expect("a seeded token");
            // Kept with the entry the read cached, unless eviction took that entry at once.
            near.get_decoded_if_cached(&key, decode).and_then(|found| found).unwrap_or_else(|| Arc::new(decode(&text)))
        }
    };
    assert!(session_record.record.contains("user_id"));
    let listed = near.list_contains_remembered(&list, &token, &session_record.listed).await.unwrap();
    assert!(listed, "session {session} of user {user} is in its list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_within_the_budget_while_lists_churn() {
    let redis = tokio::task::spawn_blocking(PrivateRedis::start).await.unwrap();
    let url = redis.url();
    let settings = Settings::from_env_pairs(AppEnv::Test, &[("REDIS_URL", &url)]).unwrap();
    let options = CacheOptions { key_prefix: KeyPrefix::parse("").unwrap(), ..CacheOptions::default() };
    let writer_backend = Backend::connect_redis(&settings.redis, options.clone()).await.unwrap();
    let writer = writer_backend.cache().clone();
    for user in 0..USERS {
        let tokens: Vec<String> = (0..SESSIONS).map(|session| token(user, session)).collect();
        writer.push_many_to_list(&format!("token_list:{user}"), &tokens, ListEnd::Left).await.unwrap();
        for token in &tokens {
            let record = format!(r#"{{"user_id":{user},"username":"user {user}","iat":1700000000}}"#);
            writer.set_value(&format!("token:{token}"), &record, Some(Duration::from_secs(600))).await.unwrap();
        }
    }
    let reader_backend = Backend::connect_redis(&settings.redis, options).await.unwrap();
    let before = live_heap();
    let near_settings = NearCacheSettings { max_bytes: BUDGET, ..NearCacheSettings::default() };
    let near = reader_backend.cache().with_near_cache(near_settings).await.unwrap();
    let started = Instant::now();
    let filler = "f".repeat(FILLER);
    let mut highest = 0_i64;
    for round in 0..ROUNDS {
        for user in 0..USERS {
            assert!(started.elapsed() < RUN_LIMIT, "the churn took longer than {RUN_LIMIT:?}");
            for session in 0..SESSIONS {
                verify(&near, user, session).await;
            }
            // A new list version: the near cache's copy is retired, every verdict on it stale.
            writer
                .push_to_list(&format!("token_list:{user}"), &format!("{filler}{round}"), ListEnd::Right)
                .await
                .unwrap();
        }
        highest = highest.max(live_heap() - before);
    }
    let accounted = i64::try_from(near.metrics().snapshot().near_bytes).unwrap_or(i64::MAX);
    let held = live_heap() - before;
    eprintln!(
        "near cache under list churn: budget {BUDGET} B, accounted {accounted} B, heap held {held} B (highest after a \
         round {highest} B)"
    );
    assert!(accounted <= i64::try_from(BUDGET).unwrap(), "the store counts {accounted} B against a {BUDGET} B budget");
    assert!(
        highest <= i64::try_from(BUDGET).unwrap() + FIXED_ALLOWANCE,
        "the near cache held up to {highest} B of heap with a {BUDGET} B budget"
    );
    assert!(held <= accounted + FIXED_ALLOWANCE, "the store counts {accounted} B for {held} B of heap");
    drop(near);
    reader_backend.close().await;
    writer_backend.close().await;
    drop(redis);
}
