//! `cargo xtask bench` (toolkit part): what the cache toolkit costs over the raw client, and
//! what simd-json buys over serde_json, each as a ratio of medians measured in the same run
//! with the two sides interleaved round by round (A B, B A, ...), so drift hits both.
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
use cache_toolkit::{CacheClient, CacheOptions, CacheStore};
use fred::{
    interfaces::{ClientLike, KeysInterface},
    types::{Builder, config::Config},
};
use serde::Deserialize;

/// A typical token metadata object as the Python system stores it (~200 bytes of compact JSON).
const METADATA: &str = r#"{"user_id":9007199254740993,"username":"alice.example","email":"alice@example.com","roles":["user","billing-admin"],"issued_at":1764134400,"ip":"203.0.113.42","user_agent":"Mozilla/5.0 (X11; Linux x86_64)","mfa":true}"#;

#[derive(Debug, Deserialize)]
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
}

fn main() -> Result<()> {
    let quick = std::env::var("TESSERA_BENCH_QUICK").is_ok_and(|value| value == "1");
    let plan = if quick {
        Plan { rounds: 3, round_trips: 1_000, decodes: 20_000 }
    } else {
        Plan { rounds: 9, round_trips: 5_000, decodes: 200_000 }
    };
    let url = std::env::var("TESSERA_BENCH_REDIS_URL")
        .context("TESSERA_BENCH_REDIS_URL is not set: run `cargo xtask bench`, which starts a private Redis")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let round_trip = runtime.block_on(round_trips(&url, &plan))?;
    let decode = decodes(&plan);
    let report = format!(
        "| comparison | reference (median, min–max) | measured (median, min–max) | ratio measured/reference |\n|---|---|---|---|\n{}\n{}\n",
        round_trip.row("GET round trip + decode: toolkit `get_json` vs raw fred `get` + simd-json"),
        decode.row("decode token metadata: toolkit simd-json (reused buffers) vs serde_json"),
    );
    println!("{report}");
    println!(
        "budget: toolkit over raw fred ≤ 1.05× → {} ({:.3}×)",
        if round_trip.ratio() <= 1.05 { "met" } else { "MISSED" },
        round_trip.ratio()
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
    let cache = CacheClient::new(CacheStore::Redis(pool.clone()), CacheOptions::default());
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
    if sorted.len() % 2 == 0 { (sorted[middle - 1] + sorted[middle]) / 2.0 } else { sorted[middle] }
}

fn nanos(value: f64) -> String {
    if value >= 1_000.0 { format!("{:.1} µs", value / 1_000.0) } else { format!("{value:.0} ns") }
}
