//! `cargo xtask bench` (toolkit part): what the cache toolkit costs over the raw client, what
//! simd-json buys over serde_json, and what the near cache buys (`get_or_load` answered from L1
//! vs a raw fred GET), each as a ratio of medians measured in the same run with the two sides
//! interleaved round by round (A B, B A, ...), so drift hits both; and how long an invalidation
//! takes from one client's write to the moment another client's L1 stops serving the old value
//! (p50, p99).
//!
//! Needs `TESSERA_BENCH_REDIS_URL` (xtask starts a private Redis and sets it);
//! `TESSERA_BENCH_QUICK=1` runs fewer, shorter rounds.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "a benchmark binary reports on stdout and stops on any failure"
)]

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use cache_toolkit::{CacheClient, CacheOptions, CacheStore, LoadPolicy, Loaded, NearCacheSettings, RedisPool};
use fred::{
    clients::Pool,
    interfaces::{ClientLike, KeysInterface},
    types::{Builder, RespVersion, config::Config},
};
use serde::{Deserialize, Serialize};

/// A typical token metadata object as the Python system stores it (~200 bytes of compact JSON).
const METADATA: &str = r#"{"user_id":9007199254740993,"username":"alice.example","email":"alice@example.com","roles":["user","billing-admin"],"issued_at":1764134400,"ip":"203.0.113.42","user_agent":"Mozilla/5.0 (X11; Linux x86_64)","mfa":true}"#;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[allow(dead_code, reason = "fields are decoded to measure decoding, not read")]
struct Metadata {
    user_id: u64,
    username: String,
    email: String,
    roles: Vec<String>,
    issued_at: u64,
    ip: String,
    user_agent: String,
    mfa: bool,
}

struct Plan {
    rounds: usize,
    round_trips: usize,
    decodes: usize,
    near_hits: usize,
    propagations: usize,
}

fn main() -> Result<()> {
    let quick = std::env::var("TESSERA_BENCH_QUICK").is_ok_and(|value| value == "1");
    let plan = if quick {
        Plan { rounds: 3, round_trips: 1_000, decodes: 20_000, near_hits: 20_000, propagations: 200 }
    } else {
        Plan { rounds: 9, round_trips: 5_000, decodes: 200_000, near_hits: 200_000, propagations: 1_000 }
    };
    let url = std::env::var("TESSERA_BENCH_REDIS_URL")
        .context("TESSERA_BENCH_REDIS_URL is not set: run `cargo xtask bench`, which starts a private Redis")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let round_trip = runtime.block_on(round_trips(&url, &plan))?;
    let decode = decodes(&plan);
    let near = runtime.block_on(near_cache_hits(&url, &plan))?;
    let propagation = runtime.block_on(invalidation_propagation(&url, &plan))?;
    let report = format!(
        "| comparison | reference (median, min–max) | measured (median, min–max) | ratio measured/reference |\n|---|---|---|---|\n{}\n{}\n{}\n\n\
         invalidation propagation (client B's SET → client A's L1 stops serving; {} samples): p50 {}, p99 {}, max {}\n",
        round_trip.row("GET round trip + decode: toolkit `get_json` vs raw fred `get` + simd-json"),
        decode.row("decode token metadata: toolkit simd-json (reused buffers) vs serde_json"),
        near.row("`get_or_load` from the near cache (L1 hit, envelope decoded) vs raw fred `get`"),
        propagation.len(),
        nanos(percentile(&propagation, 0.50)),
        nanos(percentile(&propagation, 0.99)),
        nanos(percentile(&propagation, 1.0)),
    );
    println!("{report}");
    println!(
        "budget: toolkit over raw fred ≤ 1.05× → {} ({:.3}×)",
        if round_trip.ratio() <= 1.05 { "met" } else { "MISSED" },
        round_trip.ratio()
    );
    println!(
        "budget: get_or_load from L1 at least 20× less time than a raw GET → {} ({:.1}× less)",
        if near.ratio() <= 1.0 / 20.0 { "met" } else { "MISSED" },
        1.0 / near.ratio()
    );
    let p99 = percentile(&propagation, 0.99);
    println!(
        "budget: invalidation propagation p99 under 5 ms → {} ({})",
        if p99 < 5_000_000.0 { "met" } else { "MISSED" },
        nanos(p99)
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("toolkit.md"), report)?;
    Ok(())
}

/// Per-round nanoseconds per operation for a reference and a measured side.
struct Comparison {
    reference: Vec<f64>,
    measured: Vec<f64>,
}

impl Comparison {
    fn ratio(&self) -> f64 {
        median(&self.measured) / median(&self.reference)
    }

    fn row(&self, name: &str) -> String {
        let spread = |values: &[f64]| {
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(0.0, f64::max);
            format!("{} ({}–{})", nanos(median(values)), nanos(min), nanos(max))
        };
        format!("| {name} | {} | {} | {:.3} |", spread(&self.reference), spread(&self.measured), self.ratio())
    }
}

async fn round_trips(url: &str, plan: &Plan) -> Result<Comparison> {
    let pool = Builder::from_config(Config::from_url(url)?)
        .with_performance_config(|performance| performance.default_command_timeout = Duration::from_secs(2))
        .build_pool(2)?;
    pool.init().await?;
    pool.set::<(), _, _>("bench:token:metadata", METADATA, None, None, false).await?;
    let cache = CacheClient::new(CacheStore::Redis(RedisPool::from_fred(pool.clone())), CacheOptions::default());
    let mut comparison = Comparison { reference: Vec::new(), measured: Vec::new() };
    for round in 0..plan.rounds {
        for side in if round % 2 == 0 { [false, true] } else { [true, false] } {
            let started = Instant::now();
            for _ in 0..plan.round_trips {
                if side {
                    let value: Metadata = cache.get_json("bench:token:metadata").await?.context("seeded key")?;
                    black_box(value);
                } else {
                    let text: String =
                        pool.get::<Option<String>, _>("bench:token:metadata").await?.context("seeded key")?;
                    let mut bytes = text.into_bytes();
                    black_box(cache_toolkit::json::decode::<Metadata>(&mut bytes)?);
                }
            }
            let per_op = started.elapsed().as_nanos() as f64 / plan.round_trips as f64;
            if side { comparison.measured.push(per_op) } else { comparison.reference.push(per_op) }
        }
    }
    pool.del::<(), _>("bench:token:metadata").await?;
    pool.quit().await?;
    Ok(comparison)
}

/// A RESP3 pool (client tracking needs it), as `infra` builds it.
async fn resp3_pool(url: &str) -> Result<Pool> {
    let mut config = Config::from_url(url)?;
    config.version = RespVersion::RESP3;
    let pool = Builder::from_config(config)
        .with_performance_config(|performance| {
            performance.default_command_timeout = Duration::from_secs(2);
            performance.broadcast_channel_capacity = 4_096;
        })
        .build_pool(2)?;
    pool.init().await?;
    Ok(pool)
}

/// Reference: a raw fred GET of the stored value (one loopback round trip). Measured: the
/// same value through `get_or_load`, answered by the near cache (decode of the envelope and
/// the early-refresh draw included).
async fn near_cache_hits(url: &str, plan: &Plan) -> Result<Comparison> {
    let pool = resp3_pool(url).await?;
    let cache = CacheClient::new(CacheStore::Redis(RedisPool::from_fred(pool.clone())), CacheOptions::default())
        .with_near_cache(NearCacheSettings::default())
        .await?;
    let metadata: Metadata = serde_json::from_str(METADATA)?;
    let policy = LoadPolicy::builder(Duration::from_secs(600)).early_refresh_beta(0.0).build()?;
    let load = || {
        let metadata = metadata.clone();
        async move { Ok::<_, std::convert::Infallible>(Loaded::Found(metadata)) }
    };
    black_box(cache.get_or_load("bench:near:metadata", &policy, load).await?);
    let stored: String =
        pool.get::<Option<String>, _>("bench:near:metadata").await?.context("get_or_load stored it")?;
    let mut comparison = Comparison { reference: Vec::new(), measured: Vec::new() };
    for round in 0..plan.rounds {
        for side in if round % 2 == 0 { [false, true] } else { [true, false] } {
            let count = if side { plan.near_hits } else { plan.round_trips };
            let started = Instant::now();
            for _ in 0..count {
                if side {
                    let value: Option<Metadata> = cache.get_or_load("bench:near:metadata", &policy, load).await?;
                    black_box(value.context("cached")?);
                } else {
                    let text: Option<String> = pool.get("bench:near:metadata").await?;
                    black_box(text.context("stored")?.len() == stored.len());
                }
            }
            let per_op = started.elapsed().as_nanos() as f64 / count as f64;
            if side { comparison.measured.push(per_op) } else { comparison.reference.push(per_op) }
        }
    }
    let hits = cache.metrics().snapshot().event(cache_toolkit::CacheEvent::NearHit);
    anyhow::ensure!(hits as usize >= plan.near_hits, "the near cache answered only {hits} reads");
    pool.del::<(), _>("bench:near:metadata").await?;
    drop(cache);
    pool.quit().await?;
    Ok(comparison)
}

/// Nanoseconds from the start of client B's SET to the first moment client A's near cache no
/// longer serves the old value, one key at a time.
async fn invalidation_propagation(url: &str, plan: &Plan) -> Result<Vec<f64>> {
    let reader_pool = resp3_pool(url).await?;
    let writer_pool = resp3_pool(url).await?;
    let reader =
        CacheClient::new(CacheStore::Redis(RedisPool::from_fred(reader_pool.clone())), CacheOptions::default())
            .with_near_cache(NearCacheSettings::default())
            .await?;
    let writer =
        CacheClient::new(CacheStore::Redis(RedisPool::from_fred(writer_pool.clone())), CacheOptions::default());
    let mut samples = Vec::with_capacity(plan.propagations);
    for sample in 0..plan.propagations {
        let key = format!("bench:near:propagation:{}", sample % 16);
        writer.set_value(&key, "old", None).await?;
        reader.get_value(&key).await?;
        anyhow::ensure!(reader.near_cache_peek(&key).is_some(), "the read did not fill the near cache");
        let started = Instant::now();
        writer.set_value(&key, "new", None).await?;
        let deadline = started + Duration::from_secs(2);
        while reader.near_cache_peek(&key).is_some() {
            anyhow::ensure!(Instant::now() < deadline, "no invalidation within 2 s");
            tokio::task::yield_now().await;
        }
        samples.push(started.elapsed().as_nanos() as f64);
    }
    writer.delete_matching("bench:near:propagation:*").await?;
    drop((reader, writer));
    reader_pool.quit().await?;
    writer_pool.quit().await?;
    Ok(samples)
}

fn percentile(values: &[f64], quantile: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted.get(index).copied().unwrap_or(f64::NAN)
}

fn decodes(plan: &Plan) -> Comparison {
    let mut comparison = Comparison { reference: Vec::new(), measured: Vec::new() };
    for round in 0..plan.rounds {
        for simd in if round % 2 == 0 { [false, true] } else { [true, false] } {
            let started = Instant::now();
            for _ in 0..plan.decodes {
                if simd {
                    // The copy is what a caller holding a borrowed `&str` pays; the toolkit owns
                    // the bytes fred returned and skips it, so this ratio is conservative.
                    let mut bytes = black_box(METADATA).as_bytes().to_vec();
                    black_box(cache_toolkit::json::decode::<Metadata>(&mut bytes).unwrap());
                } else {
                    black_box(serde_json::from_str::<Metadata>(black_box(METADATA)).unwrap());
                }
            }
            let per_op = started.elapsed().as_nanos() as f64 / plan.decodes as f64;
            if simd { comparison.measured.push(per_op) } else { comparison.reference.push(per_op) }
        }
    }
    comparison
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) { (sorted[middle - 1] + sorted[middle]) / 2.0 } else { sorted[middle] }
}

fn nanos(value: f64) -> String {
    if value >= 1_000.0 { format!("{:.1} µs", value / 1_000.0) } else { format!("{value:.0} ns") }
}
