//! Resharding under load is invisible: a private six-node cluster, two tessera instances with
//! the near cache on, tasks verifying seeded tokens and issuing new ones (each new token
//! verified at once on the *other* instance) while `redis-cli --cluster reshard` moves 2,000
//! slots from one primary to another. While a slot migrates, Redis answers `ASK` for keys
//! already moved and for new keys, and `MOVED` once it has moved; Tessera follows both
//! (docs/CLUSTER.md), so no request may fail. Afterwards a token whose slot moved is deleted
//! on its new owner and must be refused at once by both instances, whose near caches had
//! vouched for it (and serve it again after the move).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use hyper::{Method, StatusCode};

use cache_toolkit::{CacheEvent, CacheOptions, KeyPrefix, NearCacheSettings};
use config::{AppEnv, Settings};
use infra::Backend;

use crate::auth_api::{INTERNAL_KEY, bearer, issue, json_field, metric, raw_cache, unique_user, verify};
use tests::{PrivateCluster, RespReply, TestApp, send, spawn_app};

const SEEDED_TOKENS: usize = 300;
const SLOTS_MOVED: &str = "2000";
const LOAD_TASKS: usize = 4;
/// The load never runs longer than this, whatever happens.
const LOAD_LIMIT: Duration = Duration::from_secs(60);
const LOAD_AFTER_RESHARD: Duration = Duration::from_secs(1);
/// A deleted token is refused within this (the outside check's bound).
const REFUSAL_BOUND: Duration = Duration::from_millis(50);

async fn instance(url: &str) -> TestApp {
    spawn_app(&[
        ("REDIS_URL", url),
        ("TESSERA_INTERNAL_KEY", INTERNAL_KEY),
        ("TESSERA_NEAR_CACHE", "on"),
        ("TESSERA_REDIS_COMMAND_TIMEOUT_MS", "2000"),
    ])
    .await
}

/// The near-cache hits `app` counted so far, from its `/metrics`.
async fn near_hits(app: &TestApp) -> u64 {
    metric(app, "tessera_cache_events_total{event=\"near_hits\"}").await
}

#[derive(Debug, Default)]
struct Tally {
    verified: u64,
    issued: u64,
    failures: Vec<String>,
}

/// Verifies a seeded token and issues a new one (verified at once on the other instance),
/// round after round, until told to stop.
async fn drive(apps: Arc<[TestApp; 2]>, tokens: Arc<Vec<String>>, task: usize, stop: Arc<AtomicBool>) -> Tally {
    let deadline = Instant::now() + LOAD_LIMIT;
    let mut tally = Tally::default();
    for round in 0_usize.. {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            break;
        }
        let (here, there) = (&apps[round % 2], &apps[(round + 1) % 2]);
        let token = &tokens[(round * LOAD_TASKS + task) % tokens.len()];
        let answer = verify(here, &[("authorization", &bearer(token))]).await;
        tally.verified += 1;
        if answer.status != StatusCode::OK {
            tally.failures.push(format!("verify of a seeded token: {} {}", answer.status, answer.body));
        }
        let body = format!(r#"{{"user_id":{}}}"#, unique_user());
        let issued = send(
            here.address,
            Method::POST,
            "/internal/sessions",
            &[("x-internal-key", INTERNAL_KEY)],
            Some(("application/json", body.into_bytes())),
        )
        .await;
        tally.issued += 1;
        if issued.status != StatusCode::CREATED {
            tally.failures.push(format!("issue: {} {}", issued.status, issued.body));
            continue;
        }
        let new_token = json_field(&issued.body, "token");
        let answer = verify(there, &[("authorization", &bearer(&new_token))]).await;
        tally.verified += 1;
        if answer.status != StatusCode::OK {
            tally
                .failures
                .push(format!("verify of a new token on the other instance: {} {}", answer.status, answer.body));
        }
    }
    tally
}

fn node_id(cluster: &mut PrivateCluster, shard: usize) -> String {
    cluster.primary(shard).query(&["CLUSTER", "MYID"]).text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reshard_under_load_fails_no_verification_and_no_issue() {
    let mut cluster =
        tokio::task::spawn_blocking(|| PrivateCluster::start(&["--cluster-node-timeout", "2000"])).await.unwrap();
    let url = cluster.url();
    let apps = Arc::new([instance(&url).await, instance(&url).await]);
    let mut tokens = Vec::with_capacity(SEEDED_TOKENS);
    for index in 0..SEEDED_TOKENS {
        let (token, _) = issue(&apps[index % 2], &format!(r#"{{"user_id":{}}}"#, unique_user())).await;
        for app in apps.iter() {
            assert_eq!(verify(app, &[("authorization", &bearer(&token))]).await.status, StatusCode::OK);
        }
        tokens.push(token);
    }
    let tokens = Arc::new(tokens);

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..LOAD_TASKS)
        .map(|task| tokio::spawn(drive(Arc::clone(&apps), Arc::clone(&tokens), task, Arc::clone(&stop))))
        .collect();
    let (from, to) = (node_id(&mut cluster, 0), node_id(&mut cluster, 1));
    let entry = format!("127.0.0.1:{}", cluster.primary(1).port());
    let started = Instant::now();
    let reshard = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-cli")
            .args(["--cluster", "reshard", &entry, "--cluster-from", &from, "--cluster-to", &to])
            .args(["--cluster-slots", SLOTS_MOVED, "--cluster-yes"])
            .output()
            .expect("redis-cli runs")
    })
    .await
    .unwrap();
    let resharded_in = started.elapsed();
    assert!(
        reshard.status.success(),
        "redis-cli --cluster reshard failed: {}{}",
        String::from_utf8_lossy(&reshard.stdout),
        String::from_utf8_lossy(&reshard.stderr)
    );
    tokio::time::sleep(LOAD_AFTER_RESHARD).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await.unwrap();
        total.verified += tally.verified;
        total.issued += tally.issued;
        total.failures.extend(tally.failures);
    }
    eprintln!(
        "reshard of {SLOTS_MOVED} slots in {resharded_in:?} under load: {} verifications, {} issues, {} failed",
        total.verified,
        total.issued,
        total.failures.len()
    );
    assert!(total.verified > 100 && total.issued > 50, "too little load ran during the reshard: {total:?}");
    assert!(total.failures.is_empty(), "requests failed during the reshard: {:?}", total.failures);

    // A seeded token whose slot moved, cached by both instances, deleted on its new owner.
    let (raw_backend, raw) = raw_cache(&url).await;
    let moved_node = cluster.primary(1).port();
    let moved = tokens
        .iter()
        .find(|token| {
            let key = format!("token:{token}");
            // Shard 0 started with the slots below 5,461: a token there now on shard 1 moved.
            let started_on_shard_0 =
                matches!(cluster.primary(1).query(&["CLUSTER", "KEYSLOT", &key]), tests::RespReply::Integer(slot) if slot < 5_461);
            started_on_shard_0 && cluster.primary(1).query(&["EXISTS", &key]) == tests::RespReply::Integer(1)
        })
        .unwrap_or_else(|| panic!("no seeded token moved to node {moved_node}"));
    // The near caches serve it again from its new owner: the canaries moved with their slots.
    for app in apps.iter() {
        let hits = near_hits(app).await;
        for _ in 0..3 {
            assert_eq!(verify(app, &[("authorization", &bearer(moved))]).await.status, StatusCode::OK);
        }
        assert!(near_hits(app).await > hits, "the near cache serves nothing after the reshard");
    }
    let deleted = Instant::now();
    assert!(raw.delete_key(&format!("token:{moved}")).await.unwrap());
    for app in apps.iter() {
        loop {
            let status = verify(app, &[("authorization", &bearer(moved))]).await.status;
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert_eq!(status, StatusCode::OK);
            assert!(deleted.elapsed() < REFUSAL_BOUND, "a token deleted on its new node was still accepted");
            tokio::task::yield_now().await;
        }
    }
    eprintln!("a token deleted on its new node: refused by both instances {:?} after the delete", deleted.elapsed());
    raw_backend.close().await;
    match Arc::try_unwrap(apps) {
        Ok([first, second]) => {
            first.stop().await;
            second.stop().await;
        }
        Err(_) => panic!("a load task still holds the instances"),
    }
}

/// A slot whose migration has begun (`SETSLOT … MIGRATING` and `IMPORTING`, the first step of
/// a reshard) holds a key this instance cached as absent; another instance creates the key,
/// which the migrating node sends on to the importing one (`ASK`). The migrating node never
/// hears of the key, so its tracking connections never invalidate the absence; the instance
/// must see the key once it learns the slot migrates (it asks every primary each second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_created_in_a_migrating_slot_replaces_a_cached_absence() {
    const SOURCE: usize = 0;
    const TARGET: usize = 1;
    /// The slot map and migrations are read every second; the rest is the question and a read.
    const SEEN_WITHIN: Duration = Duration::from_millis(1_500);
    /// The test gives up after this (a cached entry lives up to 30 s).
    const GIVE_UP: Duration = Duration::from_secs(10);

    let options = ["--cluster-node-timeout", "2000"];
    let mut cluster = tokio::task::spawn_blocking(move || PrivateCluster::start(&options)).await.unwrap();
    let tag = cluster.hash_tag_on_shard(SOURCE);
    let key = format!("{{{tag}}}:created-while-migrating");
    let settings = Settings::from_env_pairs(AppEnv::Test, &[("REDIS_URL", &cluster.url())]).unwrap();
    let options = CacheOptions { key_prefix: KeyPrefix::parse("").unwrap(), ..CacheOptions::default() };
    let reader_backend = Backend::connect_redis(&settings.redis, options.clone()).await.unwrap();
    let reader = reader_backend.cache().with_near_cache(NearCacheSettings::default()).await.unwrap();
    let writer_backend = Backend::connect_redis(&settings.redis, options).await.unwrap();
    let writer = writer_backend.cache();

    assert_eq!(reader.get_value(&key).await.unwrap(), None);
    let hits = reader.metrics().snapshot().event(CacheEvent::NearHit);
    assert_eq!(reader.get_value(&key).await.unwrap(), None);
    assert_eq!(reader.metrics().snapshot().event(CacheEvent::NearHit), hits + 1, "the absence is cached");

    let RespReply::Integer(slot) = cluster.primary(SOURCE).query(&["CLUSTER", "KEYSLOT", &key]) else {
        panic!("CLUSTER KEYSLOT answered no integer");
    };
    let slot = slot.to_string();
    let source_id = cluster.primary(SOURCE).query(&["CLUSTER", "MYID"]).text();
    let target_id = cluster.primary(TARGET).query(&["CLUSTER", "MYID"]).text();
    let ok = RespReply::Simple("OK".into());
    assert_eq!(cluster.primary(TARGET).query(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &source_id]), ok);
    assert_eq!(cluster.primary(SOURCE).query(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &target_id]), ok);

    writer.set_value(&key, "created", Some(Duration::from_secs(300))).await.unwrap();
    let created = Instant::now();
    let seen = loop {
        match reader.get_value(&key).await.unwrap() {
            Some(value) => {
                assert_eq!(value, "created");
                break created.elapsed();
            }
            None => assert!(created.elapsed() < GIVE_UP, "the cached absence was served for {GIVE_UP:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("cluster: a key created in a migrating slot was seen {seen:?} after, where its absence was cached");
    assert!(seen <= SEEN_WITHIN, "the cached absence was served {seen:?} after the key was created");
    // Once seen, it stays seen: the value is not cached from the importing node.
    for _ in 0..20 {
        assert_eq!(reader.get_value(&key).await.unwrap().as_deref(), Some("created"));
    }
    reader_backend.close().await;
    writer_backend.close().await;
}
