//! The near cache (L1) against real Redis, two instances (two pools, two near caches) on one
//! Redis: own and foreign writes, the in-flight-load race, TTL bounds, a lagged receiver,
//! randomised writers and readers checked at quiescence (standalone and cluster, the shared
//! test topologies), and — on a private server a test may flush, kill connections of, and
//! freeze — FLUSHALL, CLIENT KILL and a frozen Redis.

use std::time::{Duration, Instant};

use cache_toolkit::{
    CacheClient, CacheEvent, CacheOptions, FlushCause, KeyPrefix, ListEnd, ListVerdict, NearCacheSettings,
};
use config::{AppEnv, Settings};
use infra::Backend;
use tests::{PrivateRedis, RespReply};

/// Generous: CI is a loaded 2-core machine; a stale entry would stay for the 30 s cap.
const AGREEMENT_DEADLINE: Duration = Duration::from_secs(3);

struct Instance {
    backend: Backend,
    cache: CacheClient,
}

async fn instance(url: &str, prefix: &str, pool_size: &str, settings: NearCacheSettings) -> Instance {
    let pairs =
        [("REDIS_URL", url), ("TESSERA_REDIS_POOL_SIZE", pool_size), ("TESSERA_REDIS_COMMAND_TIMEOUT_MS", "1000")];
    let redis = Settings::from_env_pairs(AppEnv::Test, &pairs).unwrap().redis;
    let options = CacheOptions { key_prefix: KeyPrefix::parse(prefix).unwrap(), ..CacheOptions::default() };
    let backend = Backend::connect_redis(&redis, options).await.unwrap();
    let cache = backend.cache().with_near_cache(settings).await.unwrap();
    assert!(cache.near_cache_enabled(), "Redis 7 or newer runs the near cache");
    Instance { backend, cache }
}

/// Two near-cache instances and one plain writer on one Redis, under one fresh prefix.
async fn trio(url: &str) -> (Instance, Instance, Instance) {
    let prefix = format!("near:{:016x}:", rand_u64());
    let first = instance(url, &prefix, "2", NearCacheSettings::default()).await;
    let second = instance(url, &prefix, "2", NearCacheSettings::default()).await;
    (first, second, plain(url, &prefix).await)
}

/// A client without near cache: what Redis holds.
async fn plain(url: &str, prefix: &str) -> Instance {
    let redis = Settings::from_env_pairs(AppEnv::Test, &[("REDIS_URL", url)]).unwrap().redis;
    let options = CacheOptions { key_prefix: KeyPrefix::parse(prefix).unwrap(), ..CacheOptions::default() };
    let backend = Backend::connect_redis(&redis, options).await.unwrap();
    Instance { cache: backend.cache().clone(), backend }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// A small xorshift generator: reproducible from the seed printed on failure.
struct Dice(u64);

impl Dice {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Waits until what `cache`'s L1 may serve for `key` agrees with Redis (or it serves
/// nothing); fails with both values after the deadline.
async fn wait_until_agrees(cache: &CacheClient, truth: &CacheClient, key: &str, context: &str) {
    let deadline = Instant::now() + AGREEMENT_DEADLINE;
    loop {
        let stored = truth.get_value(key).await.unwrap();
        match cache.near_cache_peek(key) {
            None => return,
            Some(cached) if cached == stored => return,
            Some(cached) => {
                assert!(
                    Instant::now() < deadline,
                    "{context}: L1 still serves {cached:?} for {key:?} while Redis holds {stored:?}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `writer` stores `value` at `key`, `reader` reads it: afterwards `reader`'s L1 serves it.
async fn cache_in(reader: &CacheClient, writer: &CacheClient, key: &str, value: &str) {
    writer.set_value(key, value, None).await.unwrap();
    assert_eq!(reader.get_value(key).await.unwrap().as_deref(), Some(value));
    assert_eq!(reader.near_cache_peek(key), Some(Some(value.to_owned())), "a read fills L1");
}

/// Waits until `cache`'s L1 no longer serves `key`; fails with `failure` after `limit`.
async fn wait_until_not_served(cache: &CacheClient, key: &str, limit: Duration, failure: &str) -> Duration {
    let started = Instant::now();
    while cache.near_cache_peek(key).is_some() {
        assert!(started.elapsed() < limit, "{failure}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

async fn stop(instances: impl IntoIterator<Item = Instance>) {
    for instance in instances {
        drop(instance.cache);
        instance.backend.close().await;
    }
}

async fn own_write_invalidates_before_returning(url: &str) {
    let (first, second, writer) = trio(url).await;
    let cache = &first.cache;
    cache_in(cache, cache, "k", "v1").await;
    let hits = cache.metrics().snapshot().event(CacheEvent::NearHit);
    assert_eq!(cache.get_value("k").await.unwrap().as_deref(), Some("v1"));
    assert_eq!(cache.metrics().snapshot().event(CacheEvent::NearHit), hits + 1, "the second read is an L1 hit");

    cache.set_value("k", "v2", None).await.unwrap();
    assert_eq!(cache.near_cache_peek("k"), None, "SET returned: L1 must not hold the old value");
    assert_eq!(cache.get_value("k").await.unwrap().as_deref(), Some("v2"));
    assert!(cache.delete_key("k").await.unwrap());
    assert_eq!(cache.near_cache_peek("k"), None, "DEL returned: L1 must not hold the old value");
    // A tracked miss is cached too. The DEL's own push arrives after the DEL returned and may
    // cancel the first read's insert (an invalidation beats an in-flight read): read again.
    let deadline = Instant::now() + AGREEMENT_DEADLINE;
    loop {
        assert_eq!(cache.get_value("k").await.unwrap(), None);
        if cache.near_cache_peek("k") == Some(None) {
            break;
        }
        assert!(Instant::now() < deadline, "a tracked miss is never cached");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cache.set_value("k", "v3", None).await.unwrap();
    assert_eq!(cache.get_value("k").await.unwrap().as_deref(), Some("v3"), "a cached miss never hides a write");
    stop([first, second, writer]).await;
}

async fn foreign_writes_invalidate_every_instance(url: &str) {
    let (first, second, writer) = trio(url).await;
    let keys: Vec<String> = (0..64).map(|index| format!("spread:{index}")).collect();
    for key in &keys {
        writer.cache.set_value(key, "old", None).await.unwrap();
        first.cache.get_value(key).await.unwrap();
        second.cache.get_value(key).await.unwrap();
    }
    for (index, key) in keys.iter().enumerate() {
        match index % 4 {
            0 => writer.cache.set_value(key, "new", None).await.map(drop).unwrap(),
            1 => writer.cache.delete_key(key).await.map(drop).unwrap(),
            2 => writer.cache.set_expiry(key, Duration::from_secs(500)).await.map(drop).unwrap(),
            _ => second.cache.set_value(key, "new", None).await.unwrap(),
        }
    }
    for key in &keys {
        wait_until_agrees(&first.cache, &writer.cache, key, "after foreign writes").await;
        wait_until_agrees(&second.cache, &writer.cache, key, "after foreign writes").await;
    }
    let received = first.cache.metrics().snapshot().event(CacheEvent::NearInvalidation);
    assert!(received >= keys.len() as u64, "every key was invalidated by a push: {received}");
    stop([first, second, writer]).await;
}

/// A decoded form is kept with its entry: decoded once however often it is read, shared by
/// every reader, and gone with the entry when a foreign write invalidates it.
async fn decoded_values_live_and_die_with_their_entry(url: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (first, second, writer) = trio(url).await;
    let cache = &first.cache;
    let decodes = AtomicUsize::new(0);
    let decode = |text: &str| {
        decodes.fetch_add(1, Ordering::SeqCst);
        text.len()
    };
    assert_eq!(cache.get_decoded_if_cached("d", decode), None, "nothing cached yet: no answer, no decode");
    cache_in(cache, &writer.cache, "d", "four").await;
    let kept = cache.get_decoded_if_cached("d", decode).expect("cached").expect("present");
    for _ in 0..100 {
        let again = cache.get_decoded_if_cached("d", decode).unwrap().unwrap();
        assert!(std::sync::Arc::ptr_eq(&kept, &again), "every hit shares the one decoded value");
    }
    assert_eq!((*kept, decodes.load(Ordering::SeqCst)), (4, 1), "decoded once for 101 hits");
    assert_eq!(cache.get_decoded_if_cached("d", |text: &str| text.to_owned()).unwrap().unwrap().as_str(), "four");
    assert_eq!(decodes.load(Ordering::SeqCst), 1, "another type is decoded afresh, the kept one stays");

    writer.cache.set_value("d", "eleven char", None).await.unwrap();
    wait_until_not_served(cache, "d", AGREEMENT_DEADLINE, "a foreign SET must remove the entry").await;
    assert_eq!(cache.get_value("d").await.unwrap().as_deref(), Some("eleven char"));
    assert_eq!(*cache.get_decoded_if_cached("d", decode).unwrap().unwrap(), 11, "the new value, decoded anew");
    assert_eq!(decodes.load(Ordering::SeqCst), 2);
    writer.cache.delete_key("d").await.unwrap();
    wait_until_not_served(cache, "d", AGREEMENT_DEADLINE, "a foreign DEL must remove the entry").await;
    stop([first, second, writer]).await;
}

/// A remembered list verdict is answered without a lookup while its list entry stands, and
/// follows the list through a foreign LREM, a foreign push and an own write: it is exactly what
/// a lookup of the list would say.
async fn remembered_verdicts_follow_their_list(url: &str) {
    let (first, second, writer) = trio(url).await;
    let cache = &first.cache;
    let memo = ListVerdict::default();
    writer.cache.push_to_list("sessions", "t1", ListEnd::Left).await.unwrap();
    assert!(cache.list_contains_remembered("sessions", "t1", &memo).await.unwrap());
    let hits = cache.metrics().snapshot().event(CacheEvent::NearHit);
    let operations = cache.metrics().snapshot().operations;
    for _ in 0..100 {
        assert!(cache.list_contains_remembered("sessions", "t1", &memo).await.unwrap());
    }
    let after = cache.metrics().snapshot();
    assert_eq!(after.event(CacheEvent::NearHit) - hits, 100, "every repeat is a near-cache hit");
    assert_eq!(after.operations, operations, "and none reached Redis");

    writer.cache.list_remove("sessions", 0, "t1").await.unwrap();
    let started = Instant::now();
    while cache.list_contains_remembered("sessions", "t1", &memo).await.unwrap() {
        assert!(started.elapsed() < AGREEMENT_DEADLINE, "a foreign LREM must end the remembered verdict");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.cache.push_to_list("sessions", "t1", ListEnd::Left).await.unwrap();
    let started = Instant::now();
    while !cache.list_contains_remembered("sessions", "t1", &memo).await.unwrap() {
        assert!(started.elapsed() < AGREEMENT_DEADLINE, "a foreign push must end the remembered verdict");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cache.list_remove("sessions", 0, "t1").await.unwrap();
    assert!(!cache.list_contains_remembered("sessions", "t1", &memo).await.unwrap(), "an own write, at once");

    // A read through the near cache names the caller's operation when it fails.
    writer.cache.set_value("not-a-list", "text", None).await.unwrap();
    let error = cache.get_list("not-a-list").await.expect_err("a string is not a list");
    assert!(error.to_string().starts_with("cache get_list failed on key"), "{error}");
    let error = cache.list_contains("not-a-list", "x").await.expect_err("a string is not a list");
    assert!(error.to_string().starts_with("cache list_contains failed on key"), "{error}");
    stop([first, second, writer]).await;
}

/// A string and a list missing from L1 and read together (`get_value_and_list_contains`, the
/// verification of a token whose user is known: GET, PTTL, LRANGE, PTTL in one round trip) are both
/// tracked: a foreign LREM alone, then a foreign SET of the string, each end what L1 serves
/// (were either untracked, L1 would serve the old answer for the 30 s cap).
async fn a_string_and_a_list_read_together_are_both_tracked(url: &str) {
    let (first, second, writer) = trio(url).await;
    let cache = &first.cache;
    writer.cache.set_value("token", "v1", None).await.unwrap();
    writer.cache.push_to_list("sessions", "token", ListEnd::Left).await.unwrap();
    let read = async || cache.get_value_and_list_contains("token", "sessions", "token").await.unwrap();
    assert_eq!(read().await, (Some("v1".to_owned()), true));
    assert_eq!(cache.near_cache_peek("token"), Some(Some("v1".to_owned())), "the read fills L1");
    let operations = cache.metrics().snapshot().operations;
    assert_eq!(read().await, (Some("v1".to_owned()), true));
    assert_eq!(cache.metrics().snapshot().operations, operations, "the repeat is answered from L1");

    writer.cache.list_remove("sessions", 0, "token").await.unwrap();
    let started = Instant::now();
    while read().await != (Some("v1".to_owned()), false) {
        assert!(started.elapsed() < AGREEMENT_DEADLINE, "a foreign LREM must end the cached list");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.cache.set_value("token", "v2", None).await.unwrap();
    let started = Instant::now();
    while read().await != (Some("v2".to_owned()), false) {
        assert!(started.elapsed() < AGREEMENT_DEADLINE, "a foreign SET must end the cached string");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop([first, second, writer]).await;
}

/// The race fred makes possible: the read's reply reaches the caller after the invalidation
/// for a later write reached the listener. Inserts are delayed to widen the window; without
/// the generation check every cancelled insert below would be a stale entry.
async fn in_flight_load_race(url: &str) {
    let (first, second, writer) = trio(url).await;
    first.cache.delay_near_cache_inserts(Duration::from_millis(2));
    let mut dice = Dice(rand_u64() | 1);
    for round in 0..150 {
        let key = format!("race:{round}");
        writer.cache.set_value(&key, "old", None).await.unwrap();
        let reader = {
            let cache = first.cache.clone();
            let key = key.clone();
            tokio::spawn(async move { cache.get_value(&key).await })
        };
        tokio::time::sleep(Duration::from_micros(dice.below(1_500))).await;
        writer.cache.set_value(&key, "new", None).await.unwrap();
        reader.await.unwrap().unwrap();
        wait_until_agrees(&first.cache, &writer.cache, &key, &format!("race round {round}")).await;
    }
    let cancelled = first.cache.metrics().snapshot().event(CacheEvent::NearInsertCancelled);
    eprintln!("in-flight race: {cancelled} of 150 inserts cancelled by an invalidation");
    assert!(cancelled > 0, "the race never happened: the test proved nothing");
    stop([first, second, writer]).await;
}

async fn entries_live_at_most_the_cap_and_the_redis_ttl(url: &str) {
    let prefix = format!("near:{:016x}:", rand_u64());
    let capped = NearCacheSettings { max_ttl: Duration::from_millis(300), ..NearCacheSettings::default() };
    let first = instance(url, &prefix, "1", capped).await;
    let second = instance(url, &prefix, "1", NearCacheSettings::default()).await;
    cache_in(&first.cache, &first.cache, "forever", "v").await;
    // The Redis TTL: the listener is held, so Redis's expiry push cannot be what removes it.
    second.cache.set_value("short", "v", Some(Duration::from_millis(300))).await.unwrap();
    second.cache.get_value("short").await.unwrap();
    assert_eq!(second.cache.near_cache_peek("short"), Some(Some("v".to_owned())));
    second.cache.hold_near_cache_listeners_for(Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(first.cache.near_cache_peek("forever"), None, "the 300 ms cap bounds a key without TTL");
    assert_eq!(second.cache.near_cache_peek("short"), None, "a 300 ms PTTL bounds the entry");
    stop([first, second]).await;
}

/// Entries filled in the same second must not all expire in the same second (every cap
/// later, a burst of misses): each entry's cap is drawn between 90 % and 100 % of `max_ttl`.
/// Without the spread none of these entries, read at most 990 ms after its GET started, could
/// have expired under a 1,000 ms cap.
async fn entries_filled_together_expire_apart(url: &str) {
    const CAP: Duration = Duration::from_millis(1_000);
    let prefix = format!("near:{:016x}:", rand_u64());
    let reader = instance(url, &prefix, "1", NearCacheSettings { max_ttl: CAP, ..NearCacheSettings::default() }).await;
    let writer = plain(url, &prefix).await;
    let keys: Vec<String> = (0..200).map(|index| format!("spread:{index}")).collect();
    for key in &keys {
        writer.cache.set_value(key, "v", None).await.unwrap();
    }
    let mut started = Vec::with_capacity(keys.len());
    for key in &keys {
        started.push(Instant::now());
        reader.cache.get_value(key).await.unwrap();
    }
    tokio::time::sleep_until((started[0] + Duration::from_millis(975)).into()).await;
    let mut expired_early = 0;
    for (key, started) in keys.iter().zip(&started) {
        let before = reader.cache.metrics().snapshot().event(CacheEvent::NearEviction);
        reader.cache.near_cache_peek(key);
        let expired = reader.cache.metrics().snapshot().event(CacheEvent::NearEviction) > before;
        if expired && started.elapsed() < Duration::from_millis(990) {
            expired_early += 1;
        }
    }
    eprintln!("spread expiry: {expired_early} of {} entries expired before 990 ms of a 1,000 ms cap", keys.len());
    assert!(expired_early > 0, "every entry filled together lived its whole cap: their expiries are not spread");
    stop([reader, writer]).await;
}

/// More invalidations than fred's channel holds arrive while the listener is held: the
/// `Lagged` receiver must flush, never leave the missed keys cached.
async fn lagged_receiver_flushes(url: &str) {
    let prefix = format!("near:{:016x}:", rand_u64());
    let first = instance(url, &prefix, "1", NearCacheSettings::default()).await;
    let writer = plain(url, &prefix).await;
    // One hash tag: on a cluster every key lives on one primary, whose connection gets every push.
    let keys: Vec<String> = (0..6_000).map(|index| format!("{{lag}}:{index}")).collect();
    for key in &keys {
        writer.cache.set_value(key, "old", None).await.unwrap();
        first.cache.get_value(key).await.unwrap();
    }
    first.cache.hold_near_cache_listeners_for(Duration::from_secs(3));
    // One UNLINK: 6,000 pushes back to back on one connection, over fred's 4,096.
    writer.cache.batch_delete_keys(&keys).await.unwrap();
    for key in keys.iter().step_by(100) {
        writer.cache.set_value(key, "new", None).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while first.cache.metrics().snapshot().flushes_by(FlushCause::Lagged) == 0 {
        assert!(Instant::now() < deadline, "6,000 invalidations behind a held listener never lagged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for key in &keys {
        wait_until_agrees(&first.cache, &writer.cache, key, "after a lagged receiver").await;
    }
    assert_eq!(first.cache.get_value("{lag}:100").await.unwrap().as_deref(), Some("new"));
    stop([first, writer]).await;
}

/// Two instances read and write the same small key set at random, concurrently; at
/// quiescence every L1 agrees with Redis.
async fn random_writers_and_readers_agree_at_quiescence(url: &str) {
    let (first, second, writer) = trio(url).await;
    let seed = rand_u64() | 1;
    eprintln!("random writers and readers: seed {seed}");
    let mut workers = Vec::new();
    for (worker, cache) in
        [first.cache.clone(), second.cache.clone(), first.cache.clone(), second.cache.clone()].into_iter().enumerate()
    {
        let mut dice = Dice(seed.wrapping_add(worker as u64 * 7_919) | 1);
        workers.push(tokio::spawn(async move {
            for step in 0..600 {
                let key = format!("r:{}", dice.below(12));
                match dice.below(10) {
                    0..=5 => drop(cache.get_value(&key).await.unwrap()),
                    6 | 7 => cache.set_value(&key, &format!("{worker}:{step}"), None).await.unwrap(),
                    8 => drop(cache.delete_key(&key).await.unwrap()),
                    _ => {
                        let ttl = Duration::from_millis(1 + dice.below(40));
                        cache.set_value(&key, "ttl", Some(ttl)).await.unwrap();
                    }
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    for index in 0..12 {
        let key = format!("r:{index}");
        wait_until_agrees(&first.cache, &writer.cache, &key, &format!("seed {seed}")).await;
        wait_until_agrees(&second.cache, &writer.cache, &key, &format!("seed {seed}")).await;
    }
    let hits = first.cache.metrics().snapshot().event(CacheEvent::NearHit);
    assert!(hits > 0, "no read was answered from L1: the test exercised nothing");
    stop([first, second, writer]).await;
}

macro_rules! on_shared_topology {
    ($topology:ident: $($case:ident),* $(,)?) => {
        $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            super::$case(&tests::Topology::$topology.url()).await;
        })*
    };
}

mod standalone {
    on_shared_topology!(Standalone:
        own_write_invalidates_before_returning,
        foreign_writes_invalidate_every_instance,
        decoded_values_live_and_die_with_their_entry,
        remembered_verdicts_follow_their_list,
        a_string_and_a_list_read_together_are_both_tracked,
        in_flight_load_race,
        entries_live_at_most_the_cap_and_the_redis_ttl,
        entries_filled_together_expire_apart,
        lagged_receiver_flushes,
        random_writers_and_readers_agree_at_quiescence,
    );

    use super::*;

    /// FLUSHALL's null invalidation never reaches fred's listeners; the canary does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flushall_empties_every_near_cache() {
        let redis = PrivateRedis::start();
        let (first, second, writer) = trio(&redis.url()).await;
        for key in ["a", "b", "c"] {
            writer.cache.set_value(key, "before", None).await.unwrap();
            first.cache.get_value(key).await.unwrap();
            second.cache.get_value(key).await.unwrap();
        }
        assert_eq!(redis.query(&["FLUSHALL"]), RespReply::Simple("OK".to_owned()));
        // Written after the flush: Redis sends no invalidation (its tracking table is gone).
        writer.cache.set_value("a", "after", None).await.unwrap();
        let flushed_at = Instant::now();
        for key in ["a", "b", "c"] {
            wait_until_agrees(&first.cache, &writer.cache, key, "after FLUSHALL").await;
            wait_until_agrees(&second.cache, &writer.cache, key, "after FLUSHALL").await;
        }
        eprintln!("FLUSHALL reached both near caches within {:?}", flushed_at.elapsed());
        assert!(first.cache.metrics().snapshot().flushes_by(FlushCause::Flushed) >= 1);
        assert_eq!(first.cache.get_value("a").await.unwrap().as_deref(), Some("after"));
        first.cache.get_value("a").await.unwrap();
        writer.cache.set_value("a", "later", None).await.unwrap();
        wait_until_agrees(&first.cache, &writer.cache, "a", "tracking still works after FLUSHALL").await;
        stop([first, second, writer]).await;
    }

    /// A killed connection flushes what it vouched for, and tracking comes back on the new one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_connections_flush_and_tracking_returns() {
        let redis = PrivateRedis::start();
        let (first, second, writer) = trio(&redis.url()).await;
        cache_in(&first.cache, &writer.cache, "k", "v1").await;
        let killed = redis.query(&["CLIENT", "KILL", "TYPE", "normal"]);
        assert!(matches!(killed, RespReply::Integer(count) if count > 0), "{killed:?}");
        let limit = Duration::from_secs(5);
        wait_until_not_served(&first.cache, "k", limit, "a killed connection's entry is still served").await;
        let snapshot = first.cache.metrics().snapshot();
        assert!(snapshot.flushes_by(FlushCause::Disconnect) + snapshot.flushes_by(FlushCause::Reconnect) >= 1);
        // Back: reads are cached again, and a foreign write still invalidates them.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert_eq!(first.cache.get_value("k").await.ok().flatten().as_deref(), Some("v1"));
            if first.cache.near_cache_peek("k").is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "tracking never came back after the reconnect");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        writer.cache.set_value("k", "v2", None).await.unwrap();
        wait_until_agrees(&first.cache, &writer.cache, "k", "after reconnect").await;
        stop([first, second, writer]).await;
    }

    /// A frozen Redis sends no invalidations: its entries stop being served within
    /// `max_silence` (750 ms) of the last heartbeat, and reads then fail rather than go stale.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frozen_redis_stops_serving_within_a_second() {
        let redis = PrivateRedis::start();
        let (first, second, writer) = trio(&redis.url()).await;
        cache_in(&first.cache, &writer.cache, "k", "v").await;
        redis.freeze();
        let limit = Duration::from_secs(3);
        let served_for =
            wait_until_not_served(&first.cache, "k", limit, "an entry is still served 3 s into a freeze").await;
        eprintln!("frozen Redis: L1 stopped serving after {served_for:?}");
        // 750 ms after the last heartbeat was sent (at or before the freeze), plus polling slack.
        assert!(served_for <= Duration::from_millis(750 + 600), "served {served_for:?} into a freeze");
        assert!(first.cache.get_value("k").await.is_err(), "a read during a freeze is an error, not a stale value");
        redis.thaw();
        let deadline = Instant::now() + Duration::from_secs(5);
        while first.cache.get_value("k").await.is_err() {
            assert!(Instant::now() < deadline, "no answer after the thaw");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop([first, second, writer]).await;
    }
}

mod cluster {
    on_shared_topology!(Cluster:
        own_write_invalidates_before_returning,
        foreign_writes_invalidate_every_instance,
        decoded_values_live_and_die_with_their_entry,
        remembered_verdicts_follow_their_list,
        a_string_and_a_list_read_together_are_both_tracked,
        in_flight_load_race,
        entries_live_at_most_the_cap_and_the_redis_ttl,
        entries_filled_together_expire_apart,
        lagged_receiver_flushes,
        random_writers_and_readers_agree_at_quiescence,
    );
}

/// The embedded store needs no near cache (it is memory); the API behaves the same on it.
#[tokio::test]
async fn embedded_store_takes_the_same_calls() {
    let cache = CacheClient::embedded().with_near_cache(NearCacheSettings::default()).await.unwrap();
    assert!(!cache.near_cache_enabled());
    cache.set_value("k", "v", None).await.unwrap();
    assert_eq!(cache.get_value("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(cache.near_cache_peek("k"), None);
    cache.flush_near_cache();
}
