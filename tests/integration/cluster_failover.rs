//! A cluster primary dies: the healthy shards keep answering, the dead one answers again soon
//! after its replica takes over, and no acknowledged write is lost. A private six-node cluster
//! (three primaries, three replicas, `cluster-node-timeout` 2 s, `cluster-require-full-coverage
//! no`) serves a `Backend` built from the server's settings while tasks write and read keys on
//! all three shards; one primary is killed (SIGKILL) and its replica promoted. For each shard
//! the test measures and prints the longest time without a successful answer.
//!
//! Asserted: a healthy shard never goes more than [`HEALTHY_OUTAGE_BUDGET`] without an answer
//! (Tessera routes each key to its primary's own pool, docs/CLUSTER.md; fred's cluster client
//! would stall every shard until the promotion, docs/FRED.md); the dead shard answers again
//! within [`RECOVERY_BUDGET`] of the promotion; every write acknowledged on a healthy shard is
//! readable afterwards, and a write lost with the dead primary was acknowledged in the last
//! moments before the kill, before its replica had it (asynchronous replication: see README
//! "Revocations and failover").

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use cache_toolkit::{CacheClient, CacheOptions, KeyPrefix, PrimaryPools};
use config::{AppEnv, Settings};
use infra::Backend;
use tests::PrivateCluster;

const SHARDS: usize = 3;
const DEAD_SHARD: usize = 1;
/// Fails over gracefully (`CLUSTER FAILOVER`) once the dead shard's replica took over.
const GRACEFUL_SHARD: usize = 0;
const WORKERS_PER_SHARD: usize = 2;
/// Between two iterations of a worker: keeps the key count small and the timing fine.
const PAUSE: Duration = Duration::from_millis(5);
const LOAD_BEFORE_KILL: Duration = Duration::from_millis(1_500);
const LOAD_AFTER_PROMOTION: Duration = Duration::from_secs(2);
/// The load never runs longer than this, whatever happens.
const LOAD_LIMIT: Duration = Duration::from_secs(15);
const PROMOTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a healthy shard may go without an answer while another shard's primary is dead
/// (the bound).
const HEALTHY_OUTAGE_BUDGET: Duration = Duration::from_secs(1);
/// The dead shard answers again within this of the replica's promotion: a command sent to the
/// dead primary just before waits out its timeout (`TESSERA_REDIS_COMMAND_TIMEOUT_MS`, 1 s by
/// default), and the new primary is used after the next read of the slot map (every 100 ms
/// while a primary is not connected) and a connection to it.
const RECOVERY_BUDGET: Duration = Duration::from_millis(1_500);
/// A write lost with the dead primary was acknowledged at most this long before the kill
/// (its replica lags by well under a millisecond on loopback).
const REPLICATION_LAG_BUDGET: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct Outcome {
    finished: Instant,
    succeeded: bool,
}

#[derive(Debug)]
struct AcknowledgedWrite {
    key: String,
    value: String,
    at: Instant,
}

#[derive(Debug, Default)]
struct ShardLoad {
    outcomes: Vec<Outcome>,
    acknowledged: Vec<AcknowledgedWrite>,
}

/// Writes a new key on `tag`'s shard, then reads it back, until told to stop.
async fn drive(cache: CacheClient, tag: String, worker: usize, stop: Arc<AtomicBool>) -> ShardLoad {
    let deadline = Instant::now() + LOAD_LIMIT;
    let mut load = ShardLoad::default();
    for iteration in 0_u64.. {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            break;
        }
        let key = format!("{{{tag}}}:worker{worker}:{iteration}");
        let value = format!("value {iteration}");
        let written = cache.set_value(&key, &value, Some(Duration::from_secs(300))).await.is_ok();
        let finished = Instant::now();
        load.outcomes.push(Outcome { finished, succeeded: written });
        if written {
            load.acknowledged.push(AcknowledgedWrite { key: key.clone(), value: value.clone(), at: finished });
            let read = cache.get_value(&key).await;
            let succeeded = matches!(&read, Ok(Some(text)) if *text == value);
            load.outcomes.push(Outcome { finished: Instant::now(), succeeded });
        }
        tokio::time::sleep(PAUSE).await;
    }
    load
}

/// Kills `shard`'s primary (SIGKILL) and waits until its replica is promoted: when each happened.
async fn kill_and_await_promotion(cluster: &mut PrivateCluster, shard: usize) -> (Instant, Instant) {
    cluster.primary(shard).stop();
    let kill = Instant::now();
    while !cluster.replica_promoted(shard) {
        assert!(kill.elapsed() < PROMOTION_TIMEOUT, "the replica was not promoted within {PROMOTION_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (kill, Instant::now())
}

/// The longest stretch, from `kill` to `end`, without a successful answer on one shard: the
/// largest gap between consecutive successes, the first measured from the kill, the last to the end.
fn longest_outage(outcomes: &[Outcome], kill: Instant, end: Instant) -> Duration {
    let mut successes: Vec<Instant> =
        outcomes.iter().filter(|outcome| outcome.succeeded && outcome.finished > kill).map(|o| o.finished).collect();
    successes.sort();
    let mut previous = kill;
    let mut longest = Duration::ZERO;
    for success in successes.into_iter().chain([end]) {
        longest = longest.max(success.saturating_duration_since(previous));
        previous = success;
    }
    longest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_stalls_only_its_own_shard_and_no_acknowledged_write_is_lost() {
    let options = ["--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no"];
    let mut cluster = tokio::task::spawn_blocking(move || PrivateCluster::start(&options)).await.unwrap();
    let tags: Vec<String> = (0..SHARDS).map(|shard| cluster.hash_tag_on_shard(shard)).collect();
    let settings = Settings::from_env_pairs(AppEnv::Test, &[("REDIS_URL", &cluster.url())]).unwrap();
    let backend = Backend::start(&settings).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (shard, tag) in tags.iter().enumerate() {
        for worker in 0..WORKERS_PER_SHARD {
            let task = drive(backend.cache().clone(), tag.clone(), worker, Arc::clone(&stop));
            workers.push((shard, tokio::spawn(task)));
        }
    }
    tokio::time::sleep(LOAD_BEFORE_KILL).await;

    let (kill, promotion) = kill_and_await_promotion(&mut cluster, DEAD_SHARD).await;
    tokio::time::sleep(LOAD_AFTER_PROMOTION).await;
    // Then a graceful failover of another shard: its old primary answers MOVED until the slot
    // map is read again.
    let graceful = Instant::now();
    let reply = cluster.replica(GRACEFUL_SHARD).query(&["CLUSTER", "FAILOVER"]);
    assert_eq!(reply, tests::RespReply::Simple("OK".into()), "CLUSTER FAILOVER on shard {GRACEFUL_SHARD}");
    while !cluster.replica_promoted(GRACEFUL_SHARD) {
        assert!(graceful.elapsed() < PROMOTION_TIMEOUT, "the graceful failover did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let graceful_promotion = graceful.elapsed();
    tokio::time::sleep(LOAD_AFTER_PROMOTION).await;
    stop.store(true, Ordering::Relaxed);
    let mut loads: Vec<ShardLoad> = (0..SHARDS).map(|_| ShardLoad::default()).collect();
    for (shard, worker) in workers {
        let load = worker.await.unwrap();
        loads[shard].outcomes.extend(load.outcomes);
        loads[shard].acknowledged.extend(load.acknowledged);
    }
    let end = Instant::now();
    backend.close().await;

    // Read every acknowledged write on a client of its own, without a near cache.
    let options =
        CacheOptions { key_prefix: KeyPrefix::parse(&settings.key_prefix).unwrap(), ..CacheOptions::default() };
    let reader = Backend::connect_redis(&settings.redis, options).await.unwrap();
    let promoted_after = promotion - kill;
    let mut outages = Vec::new();
    for (shard, load) in loads.iter().enumerate() {
        let outage = longest_outage(&load.outcomes, kill, end);
        let failed = load.outcomes.iter().filter(|outcome| !outcome.succeeded).count();
        let mut lost = Vec::new();
        for write in &load.acknowledged {
            let read = reader.cache().get_value(&write.key).await;
            if !matches!(&read, Ok(Some(text)) if *text == write.value) {
                lost.push((write, read));
            }
        }
        if shard == GRACEFUL_SHARD {
            eprintln!(
                "cluster failover: shard {shard} failed over gracefully (promoted {graceful_promotion:?} after CLUSTER \
                 FAILOVER): longest outage around it {:?}",
                longest_outage(&load.outcomes, graceful, end)
            );
        }
        eprintln!(
            "cluster failover: shard {shard}{}: longest outage {outage:?} (replica promoted {promoted_after:?} after \
             the kill), {failed} of {} requests failed, {} of {} acknowledged writes lost",
            if shard == DEAD_SHARD { " (its primary killed)" } else { "" },
            load.outcomes.len(),
            lost.len(),
            load.acknowledged.len(),
        );
        if shard == DEAD_SHARD {
            for (write, read) in &lost {
                assert!(
                    write.at <= kill && kill - write.at <= REPLICATION_LAG_BUDGET,
                    "shard {shard}: {} acknowledged {:?} before the kill is gone: {read:?}",
                    write.key,
                    kill.saturating_duration_since(write.at),
                );
            }
        } else {
            assert!(lost.is_empty(), "shard {shard}: acknowledged writes lost: {lost:?}");
        }
        outages.push(outage);
    }
    reader.close().await;

    for (shard, outage) in outages.iter().enumerate() {
        if shard == DEAD_SHARD {
            assert!(
                *outage <= promoted_after + RECOVERY_BUDGET,
                "the dead shard went {outage:?} without an answer after the kill; the replica was promoted after \
                 {promoted_after:?}, so it stalled {:?} past the promotion",
                outage.saturating_sub(promoted_after),
            );
        } else {
            assert!(
                *outage <= HEALTHY_OUTAGE_BUDGET,
                "healthy shard {shard} went {outage:?} without an answer while shard {DEAD_SHARD}'s primary was dead"
            );
        }
    }
}

/// The new primary refuses connections this long after its promotion.
const REFUSED_AFTER_PROMOTION: Duration = Duration::from_millis(1_500);
/// Once the new primary accepts connections, its shard answers within this: a pool that
/// reconnects waits at most its reconnect delay (250 ms on a cluster), a pool rebuilt after
/// fred gave it up waits for the next refresh (100 ms while a primary is not connected).
const RECOVERY_AFTER_ACCEPT: Duration = Duration::from_secs(1);

/// A failover names a new primary whose first connections fail (a relay in front of it answers
/// as a Redis at `maxclients` does, then closes): its pool is retried, `primary_pools` (the
/// `/metrics` gauge) shows it connecting meanwhile, and its shard answers again soon after the
/// node accepts connections. A pool that gave up after a failed first connection would leave
/// the shard failing until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_primary_that_refuses_its_first_connections_is_used_once_it_accepts() {
    let options = ["--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no"];
    let cluster = tokio::task::spawn_blocking(move || PrivateCluster::start(&options)).await.unwrap();
    let relay = tests::RefusingRelay::start(cluster.replica(DEAD_SHARD).port()).await;
    let relay_port = relay.port();
    let mut cluster = tokio::task::spawn_blocking(move || {
        cluster.announce_replica_at(DEAD_SHARD, relay_port);
        cluster
    })
    .await
    .unwrap();
    let tag = cluster.hash_tag_on_shard(DEAD_SHARD);
    let settings = Settings::from_env_pairs(AppEnv::Test, &[("REDIS_URL", &cluster.url())]).unwrap();
    let backend = Backend::start(&settings).await.unwrap();
    let all_connected = Some(PrimaryPools { connected: SHARDS, connecting: 0 });
    assert_eq!(backend.cache().primary_pools(), all_connected);

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS_PER_SHARD)
        .map(|worker| tokio::spawn(drive(backend.cache().clone(), tag.clone(), worker, Arc::clone(&stop))))
        .collect();
    tokio::time::sleep(LOAD_BEFORE_KILL).await;
    let (_, promotion) = kill_and_await_promotion(&mut cluster, DEAD_SHARD).await;
    let mut seen_connecting = false;
    while promotion.elapsed() < REFUSED_AFTER_PROMOTION {
        seen_connecting |= backend.cache().primary_pools().is_some_and(|pools| pools.connecting > 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = relay.refused();
    assert!(refused > 0, "nothing tried the new primary while it refused connections");
    assert!(seen_connecting, "the new primary's refused pool was never shown as connecting");
    relay.accept();
    let accepted = Instant::now();
    let healed = loop {
        if backend.cache().primary_pools() == all_connected {
            break accepted.elapsed();
        }
        assert!(accepted.elapsed() < PROMOTION_TIMEOUT, "the new primary's pool never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(LOAD_AFTER_PROMOTION).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.unwrap().outcomes);
    }
    backend.close().await;

    let first_answer = outcomes
        .iter()
        .filter(|outcome| outcome.succeeded && outcome.finished > accepted)
        .map(|outcome| outcome.finished - accepted)
        .min();
    eprintln!(
        "cluster failover to a primary refusing its first connections: {refused} connections refused in the {:?} \
         after the promotion; all pools connected {healed:?} after it accepted, its shard answered {first_answer:?} \
         after",
        REFUSED_AFTER_PROMOTION,
    );
    let first_answer = first_answer.expect("the shard never answered after its new primary accepted connections");
    assert!(
        first_answer <= RECOVERY_AFTER_ACCEPT,
        "the shard answered {first_answer:?} after its new primary accepted connections"
    );
}

/// Once every node announces its own port again, every shard answers within this: the map is
/// read every 100 ms while a primary's pool is not connected, each address `REDIS_URL` names
/// is asked on a connection of its own, and the new primaries' pools connect.
const RECOVERY_FROM_THE_SEEDS: Duration = Duration::from_secs(5);

/// Writes and reads back one key on each of `tags`' shards; whether all of that succeeded.
async fn every_shard_answers(cache: &CacheClient, tags: &[String], attempt: u64) -> bool {
    for tag in tags {
        let (key, value) = (format!("{{{tag}}}:seeds:{attempt}"), format!("value {attempt}"));
        if cache.set_value(&key, &value, Some(Duration::from_secs(300))).await.is_err() {
            return false;
        }
        if !matches!(cache.get_value(&key).await, Ok(Some(text)) if text == value) {
            return false;
        }
    }
    true
}

/// No node Tessera knows answers at the address it knows it by, primaries and replicas alike
/// (every node announced a relay's port; the relays are gone, Tessera's connections cut, and
/// the nodes announce their own ports again, as after the whole cluster moved): the slot map is
/// read from the addresses `REDIS_URL` names, and every shard answers again. Without that last
/// resort the pools would keep reconnecting to addresses nothing listens on, until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_known_node_answers_the_map_is_read_from_the_configured_addresses() {
    let options = ["--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no"];
    let cluster = tokio::task::spawn_blocking(move || PrivateCluster::start(&options)).await.unwrap();
    let (cluster, relays) = cluster.behind_relays().await;
    let tags: Vec<String> = (0..SHARDS).map(|shard| cluster.hash_tag_on_shard(shard)).collect();
    let settings = Settings::from_env_pairs(AppEnv::Test, &[("REDIS_URL", &cluster.url())]).unwrap();
    let backend = Backend::start(&settings).await.unwrap();
    assert!(every_shard_answers(backend.cache(), &tags, 0).await, "the shards did not answer through the relays");

    // The relays stop listening; the connections they carry are cut on the nodes' side.
    drop(relays);
    let cut = Instant::now();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.cut_client_connections();
        for index in 0..cluster.nodes().len() {
            cluster.announce_node_at(index, 0);
        }
        cluster
    })
    .await
    .unwrap();
    let moved = Instant::now();
    let mut attempt = 1;
    while !every_shard_answers(backend.cache(), &tags, attempt).await {
        assert!(
            moved.elapsed() < RECOVERY_FROM_THE_SEEDS,
            "the shards did not answer within {RECOVERY_FROM_THE_SEEDS:?} of every node announcing its own port"
        );
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = moved.elapsed();
    let pools = backend.cache().primary_pools();
    backend.close().await;
    drop(cluster);
    eprintln!(
        "cluster moved away from every known address: connections cut, every node announcing its own port {:?} \
         later; every shard answered {recovered:?} after that",
        moved - cut
    );
    assert_eq!(pools, Some(PrimaryPools { connected: SHARDS, connecting: 0 }));
}
