//! `cargo xtask bench --soak [SECONDS]`: tessera on the embedded store with sliding expiry
//! (every verification renews its token's TTL and its list's) under wrk's full load
//! (`GET /auth/verify`, 2 threads, 64 connections, a random seeded token per request) for a
//! fixed time, 60 s unless told. Every [`SAMPLE_EVERY`] it reads the server's resident memory
//! (`VmRSS`) and, from `/metrics`, the embedded store's key count and expiry-index length.
//!
//! Prints first, last and max of each and writes `target/bench/soak.md`. Fails (after the
//! report) when a request failed, the server died, the expiry index held more entries than
//! there are keys, or RSS grew more than [`RSS_GROWTH_LIMIT`] from the first sample (taken
//! under load, so warm-up allocations are in it) to the last.

use std::fmt::Write as _;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::install;
use crate::process;
use crate::workspace;

use super::load::{self, WrkReport};
use super::probe;
use super::servers::{self, ServerProcess};
use super::{TesseraStore, report};

/// How long the soak runs unless `--soak SECONDS` says otherwise.
pub(super) const DEFAULT_SECONDS: u64 = 60;
/// How often memory and the store's sizes are read.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Growth of RSS from the first sample to the last beyond which memory is not flat.
const RSS_GROWTH_LIMIT: f64 = 0.25;
/// The watchdog's topology name; the soak starts no Redis, so it has nothing to reap there.
const SOAK_TOPOLOGY: &str = "bench-soak";

/// One reading of the server under load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Sample {
    pub(super) at_seconds: f64,
    pub(super) rss_kib: u64,
    pub(super) keys: u64,
    pub(super) expiry_index: u64,
}

pub(super) fn run(seconds: u64) -> Result<()> {
    let dir = workspace::target_dir().join("bench").join("soak");
    let logs = dir.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let binaries = super::build()?;
    let wrk = install::ensure_tool("wrk", "wrk")?;
    let registry = dir.join("servers.pids");
    let _watchdog = process::Watchdog::start(Some(&registry), &[SOAK_TOPOLOGY]);
    servers::reset_registry(&registry)?;

    let port = process::free_port(&[], false)?;
    let internal_key = format!("soak-{}", probe::unknown_tokens(1)?.concat());
    let data_dir = dir.join("data-soak");
    let store = TesseraStore::Embedded { data_dir: Some(&data_dir), fsync: "everysec" };
    let mut command = super::tessera_command(&binaries.tessera, port, store, &internal_key);
    command.env("TESSERA_SLIDING_EXPIRY", "true");
    let mut server = ServerProcess::start("tessera-soak", &mut command, port, &logs, &registry)?;
    let tokens = dir.join("tokens.txt");
    eprintln!("xtask: seeding {} users into tessera's embedded store", super::USERS);
    super::seed(
        Command::new(&binaries.seed)
            .args(["--http", &format!("http://{}", super::listen(port))])
            .args(["--internal-key", &internal_key])
            .args(super::seed_output_args(&tokens)),
    )?;
    let script = dir.join("verify.lua");
    load::write_wrk_script(&script, &tokens)?;

    eprintln!("xtask: soak: tessera (embedded store, sliding expiry) under wrk for {seconds} s");
    let started = Instant::now();
    let wrk_run = std::thread::spawn(move || load::run_wrk(&wrk, port, &script, seconds));
    let mut samples = Vec::new();
    let mut next_sample = SAMPLE_EVERY;
    while !wrk_run.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() < next_sample || wrk_run.is_finished() {
            continue;
        }
        let sample = sample(server.pid(), port, &internal_key, started)?;
        eprintln!(
            "xtask: soak {:>4.0} s: RSS {:.1} MiB, {} keys, {} expiry-index entries",
            sample.at_seconds,
            mib(sample.rss_kib),
            sample.keys,
            sample.expiry_index
        );
        samples.push(sample);
        next_sample += SAMPLE_EVERY;
    }
    let wrk_report = wrk_run.join().map_err(|_| anyhow!("the wrk thread panicked"))??;
    server.ensure_alive()?;

    let markdown = markdown(seconds, &wrk_report, &samples);
    println!("{markdown}");
    let written = workspace::target_dir().join("bench").join("soak.md");
    fs::write(&written, &markdown).with_context(|| format!("cannot write {}", written.display()))?;
    eprintln!("xtask: wrote {}", written.display());
    let problems = problems(&wrk_report, &samples);
    if !problems.is_empty() {
        bail!("the soak found: {}", problems.join("; "));
    }
    Ok(())
}

/// RSS from `/proc` and the store's sizes from `/metrics`, now.
fn sample(pid: u32, port: u16, internal_key: &str, started: Instant) -> Result<Sample> {
    let rss_kib = servers::rss_kib(pid)?;
    let text = probe::metrics(port, internal_key)?;
    let gauge = |name: &str| probe::metric(&text, name).with_context(|| format!("no {name} in /metrics"));
    Ok(Sample {
        at_seconds: started.elapsed().as_secs_f64(),
        rss_kib,
        keys: gauge("tessera_embedded_keys")?,
        expiry_index: gauge("tessera_embedded_expiry_index_entries")?,
    })
}

/// What the soak must not show: failed requests, an expiry index larger than the keys it
/// indexes, memory that grew. Empty when all is well.
pub(super) fn problems(wrk: &WrkReport, samples: &[Sample]) -> Vec<String> {
    let mut problems = Vec::new();
    if wrk.requests == 0 {
        problems.push("wrk completed no request".to_owned());
    }
    if wrk.non_2xx > 0 || wrk.socket_errors.total() > 0 {
        problems.push(format!(
            "{} responses were not 2xx and {} socket errors in {} requests",
            wrk.non_2xx,
            wrk.socket_errors.total(),
            wrk.requests
        ));
    }
    if let Some(over) = samples.iter().find(|sample| sample.expiry_index > sample.keys) {
        problems.push(format!(
            "at {:.0} s the expiry index held {} entries for {} keys",
            over.at_seconds, over.expiry_index, over.keys
        ));
    }
    match (samples.first(), samples.last()) {
        (Some(first), Some(last)) if samples.len() >= 2 => {
            let growth = growth(first.rss_kib, last.rss_kib);
            if growth > RSS_GROWTH_LIMIT {
                problems.push(format!(
                    "RSS grew {:.0} % under load, from {:.1} MiB to {:.1} MiB",
                    growth * 100.0,
                    mib(first.rss_kib),
                    mib(last.rss_kib)
                ));
            }
        }
        _ => problems.push(format!(
            "{} samples: run the soak for at least {} s",
            samples.len(),
            3 * SAMPLE_EVERY.as_secs()
        )),
    }
    problems
}

fn growth(first: u64, last: u64) -> f64 {
    (last as f64 - first as f64) / (first.max(1) as f64)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A row of the report: its name, what it reads from a sample, how a value is shown.
type Reading = (&'static str, fn(&Sample) -> u64, fn(u64) -> String);

/// The soak's report: the load, then first, last and max of each reading, then every sample.
pub(super) fn markdown(seconds: u64, wrk: &WrkReport, samples: &[Sample]) -> String {
    let mut text = format!(
        "## Soak: tessera, embedded store, sliding expiry, {seconds} s under wrk ({} threads, {} connections)\n\n\
         {} requests, {} req/s, p50 {:.2} ms, p99 {:.2} ms; {} not 2xx, {} socket errors.\n\n\
         | reading | first | last | max |\n|---|---:|---:|---:|\n",
        load::WRK_THREADS,
        load::CONNECTIONS,
        wrk.requests,
        report::thousands(wrk.requests_per_second),
        wrk.p50_ms,
        wrk.p99_ms,
        wrk.non_2xx,
        wrk.socket_errors.total(),
    );
    let readings: [Reading; 3] = [
        ("RSS", |sample| sample.rss_kib, |kib| format!("{:.1} MiB", mib(kib))),
        ("embedded keys", |sample| sample.keys, |count| count.to_string()),
        ("expiry-index entries", |sample| sample.expiry_index, |count| count.to_string()),
    ];
    for (name, value, shown) in readings {
        let values: Vec<u64> = samples.iter().map(value).collect();
        let (Some(&first), Some(&last), Some(&max)) = (values.first(), values.last(), values.iter().max()) else {
            break;
        };
        let _ = writeln!(text, "| {name} | {} | {} | {} |", shown(first), shown(last), shown(max));
    }
    text.push_str("\nSamples (s: RSS MiB, keys, expiry-index entries):");
    for sample in samples {
        let _ = write!(
            text,
            " {:.0}: {:.1}, {}, {};",
            sample.at_seconds,
            mib(sample.rss_kib),
            sample.keys,
            sample.expiry_index
        );
    }
    text.push('\n');
    text
}
