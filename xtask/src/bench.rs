//! `cargo xtask bench [--quick]`: builds the release binaries (`tessera` and the `bench`
//! package's servers and seeder), makes sure wrk and Redis are installed, starts a private
//! standalone Redis (no persistence) owned by this run, runs the toolkit micro-benchmark
//! against it, seeds 10,000 users through Tessera's own code, and then measures
//! `GET /auth/verify` under wrk, the rows interleaved round by round: the ceiling (bare
//! hyper), the naive port with fred's defaults at pool sizes 1, 2, 4 and 8 and with a 1 s
//! command timeout at pool size 4 (the budgets are taken against the fastest of these), tessera
//! on Redis with the near cache off and on and on the embedded store, then on a private Redis
//! Cluster (six nodes, beside the standalone one, seeded with the same users) the naive port on
//! fred's cluster client and tessera (its own cluster router) with the near cache off and on,
//! tessera under invalid- and malformed-token floods, and redis-benchmark GET as the Redis
//! limit. Then it measures how fast a revocation reaches a second tessera instance that had the
//! token in its near cache.
//!
//! Prints the table, writes `target/bench/latest.md` and `latest.json` and, for a full run,
//! `docs/BENCHMARKS.md`. Exits 0 when it measured (a missed budget is reported, not a
//! failure), non-zero when something broke. Everything it starts is stopped however the run
//! ends: guards on drop, and a watchdog for when xtask itself is killed.
//!
//! `--soak [SECONDS]` runs the soak instead (`soak.rs`): one tessera under full load for a
//! fixed time, its memory and its embedded store's sizes sampled.

mod durability;
mod load;
mod probe;
mod redis_stats;
mod report;
mod revocation;
pub(crate) mod servers;
mod soak;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::install;
use crate::process;
use crate::redis::{self, Topology};
use crate::workspace;

use self::redis_stats::BackgroundCommand;
use self::redis_stats::{CommandCounts, RedisCli, RedisNodes};
use self::report::{Load, Machine, NearCacheCounts, Report, Round, RoundTrips, Row, Setup};
use self::servers::ServerProcess;

const BENCH_TOPOLOGY: &str = "bench-standalone";
/// The Redis Cluster of the cluster rows, started beside [`BENCH_TOPOLOGY`].
const BENCH_CLUSTER_TOPOLOGY: &str = "bench-cluster";
/// Seeded users, one token each.
const USERS: u64 = 10_000;
/// Sequential requests over which the commands sent to Redis are counted exactly.
const PROBE_REQUESTS: u64 = 1_000;
/// How long each server is watched while it serves nothing, to learn the commands it sends on
/// its own (the near cache's heartbeat runs every 250 ms).
const IDLE_WATCH: Duration = Duration::from_secs(1);
/// The same for a server on the cluster: tessera's cluster router reads the slot map every
/// second (and, with the near cache on, asks each primary which slots it migrates away), so a
/// 1 s watch could miss a tick and count it as a request's command.
const CLUSTER_IDLE_WATCH: Duration = Duration::from_millis(2_500);
const REDIS_BENCHMARK_REQUESTS: u64 = 200_000;
const SEED_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a run is.
#[derive(Debug, Clone, Copy)]
struct Plan {
    quick: bool,
    rounds: usize,
    seconds: u64,
    warmup_seconds: u64,
    /// Tokens revoked for the revocation-propagation row.
    revocation_tokens: u64,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan { quick, rounds: 3, seconds: 3, warmup_seconds: 1, revocation_tokens: 100 }
        } else {
            Plan { quick, rounds: 5, seconds: 10, warmup_seconds: 2, revocation_tokens: 500 }
        }
    }
}

/// `cargo xtask bench [--quick | --soak [SECONDS]]`
pub(crate) fn command(args: &[String]) -> Result<ExitCode> {
    const USAGE: &str = "usage: cargo xtask bench [--quick | --soak [SECONDS]]";
    match args {
        [] => run(Plan::new(false))?,
        [flag] if flag == "--quick" => run(Plan::new(true))?,
        [flag] if flag == "--soak" => soak::run(soak::DEFAULT_SECONDS)?,
        [flag, seconds] if flag == "--soak" => {
            let seconds: u64 =
                seconds.parse().with_context(|| format!("`{seconds}` is not a number of seconds; {USAGE}"))?;
            soak::run(seconds)?;
        }
        _ => bail!("{USAGE}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The programs this run builds.
#[derive(Debug)]
struct Binaries {
    tessera: PathBuf,
    ceiling: PathBuf,
    naive: PathBuf,
    seed: PathBuf,
}

/// What the measuring steps share.
#[derive(Debug)]
struct Bench {
    plan: Plan,
    wrk: PathBuf,
    redis_benchmark: PathBuf,
    /// The standalone Redis: redis-benchmark's target, and the store of most rows.
    redis: RedisCli,
    redis_port: u16,
    redis_pid: u32,
    /// The standalone Redis as a row's rounds watch it (one node: `redis`).
    standalone: RedisNodes,
    /// The cluster rows' Redis Cluster, node by node.
    cluster: RedisNodes,
    clock_ticks: f64,
    /// Tessera's `X-Internal-Key`, for reading its `/metrics`.
    internal_key: String,
}

/// How one row is loaded: wrk on one of the servers with a token script, or redis-benchmark.
#[derive(Debug)]
enum Driver {
    Wrk { server: usize, script: PathBuf, tokens: Vec<String> },
    RedisBenchmark { pipeline: u32 },
}

/// The servers, in the order [`start_servers`] starts them (indexes into its result).
const CEILING: usize = 0;
const NAIVE_POOL_1: usize = 1;
const NAIVE_POOL_2: usize = 2;
const NAIVE_POOL_4: usize = 3;
const NAIVE_POOL_8: usize = 4;
const NAIVE_TIMEOUT: usize = 5;
const TESSERA_NEAR_OFF: usize = 6;
const TESSERA_NEAR_ON: usize = 7;
const TESSERA_EMBEDDED: usize = 8;
const NAIVE_CLUSTER: usize = 9;
const TESSERA_CLUSTER_NEAR_OFF: usize = 10;
const TESSERA_CLUSTER_NEAR_ON: usize = 11;
const SERVERS: usize = 12;

/// The Redis a server under test reads: none (the ceiling, the embedded store), the standalone
/// one, or the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RedisUse {
    None,
    Standalone,
    Cluster,
}

/// The Redis server `server` (an index into [`start_servers`]' result) reads.
fn redis_use(server: usize) -> RedisUse {
    match server {
        CEILING | TESSERA_EMBEDDED => RedisUse::None,
        NAIVE_CLUSTER | TESSERA_CLUSTER_NEAR_OFF | TESSERA_CLUSTER_NEAR_ON => RedisUse::Cluster,
        _ => RedisUse::Standalone,
    }
}

impl Bench {
    /// The Redis server `server` reads; `None` for a server that reads none.
    fn redis_of(&self, server: usize) -> Option<&RedisNodes> {
        match redis_use(server) {
            RedisUse::None => None,
            RedisUse::Standalone => Some(&self.standalone),
            RedisUse::Cluster => Some(&self.cluster),
        }
    }

    /// The Redis whose commands and CPU a row's rounds record: the one its server reads, else
    /// the standalone one (idle then: a server without Redis costs Redis nothing).
    fn loaded_redis(&self, server: usize) -> &RedisNodes {
        self.redis_of(server).unwrap_or(&self.standalone)
    }
}

/// The naive port's servers and rows, one `bench-naive` each: fred's defaults at each pool size
/// a tuning engineer would try, and a 1 s command timeout at pool size 4 (beside the defaults'
/// pool-4 row, so the two differ in the timeout alone). The budgets are taken against the
/// fastest of these rows in the run, so the pool size is picked by measurement, not assumed.
const NAIVE_SERVERS: [NaiveServer; 5] = [
    NaiveServer {
        server: NAIVE_POOL_1,
        key: report::NAIVE_POOL_1,
        title: "naive port, fred defaults, pool 1",
        pool_size: 1,
        command_timeout_ms: None,
    },
    NaiveServer {
        server: NAIVE_POOL_2,
        key: report::NAIVE_POOL_2,
        title: "naive port, fred defaults, pool 2",
        pool_size: 2,
        command_timeout_ms: None,
    },
    NaiveServer {
        server: NAIVE_POOL_4,
        key: report::NAIVE_POOL_4,
        title: "naive port, fred defaults, pool 4",
        pool_size: 4,
        command_timeout_ms: None,
    },
    NaiveServer {
        server: NAIVE_POOL_8,
        key: report::NAIVE_POOL_8,
        title: "naive port, fred defaults, pool 8",
        pool_size: 8,
        command_timeout_ms: None,
    },
    NaiveServer {
        server: NAIVE_TIMEOUT,
        key: report::NAIVE_TIMEOUT,
        title: "naive port, 1 s command timeout, pool 4",
        pool_size: 4,
        command_timeout_ms: Some(1_000),
    },
];

/// The naive port on fred's cluster client: `bench-naive` given the cluster's
/// `redis-cluster://` URL, which fred's `Config::from_url` turns into its cluster client; the
/// reference of the cluster budget. Which standalone pool size is fastest is only known after
/// the rounds, so this row runs at a fixed pool size: 4, with fred's defaults (each client of
/// the pool connects to every primary).
const NAIVE_CLUSTER_SERVER: NaiveServer = NaiveServer {
    server: NAIVE_CLUSTER,
    key: report::NAIVE_CLUSTER,
    title: "naive port on fred's cluster client, fred defaults, pool 4",
    pool_size: 4,
    command_timeout_ms: None,
};

/// One `bench-naive` under test: its index among the servers, its row's key (also the server's
/// name) and title, and its flags.
#[derive(Debug, Clone, Copy)]
struct NaiveServer {
    server: usize,
    key: &'static str,
    title: &'static str,
    pool_size: usize,
    command_timeout_ms: Option<u64>,
}

/// The store a `tessera` under test runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TesseraStore<'a> {
    /// The benchmark's Redis at `url`, with the near cache on or off (`TESSERA_NEAR_CACHE`).
    Redis { url: &'a str, near_cache: bool },
    /// The embedded store in `data_dir` (a fresh one: emptied first) with this fsync policy,
    /// or in memory only (`None`).
    Embedded { data_dir: Option<&'a Path>, fsync: &'a str },
}

fn run(plan: Plan) -> Result<()> {
    let started = Instant::now();
    let dir = workspace::target_dir().join("bench");
    let logs = dir.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let binaries = build()?;
    let tools = install::ensure_redis()?;
    let redis_benchmark = install::ensure_tool("redis-benchmark", "redis-tools")?;
    let wrk = install::ensure_tool("wrk", "wrk")?;

    // Dropped last, after every guard below has stopped what it guards.
    let registry = dir.join("servers.pids");
    let _watchdog = process::Watchdog::start(Some(&registry), &[BENCH_TOPOLOGY, BENCH_CLUSTER_TOPOLOGY]);
    eprintln!("xtask: starting redis {BENCH_TOPOLOGY} (no persistence)");
    let url = redis::start(&tools, Topology::Standalone, BENCH_TOPOLOGY, Some(std::process::id()))?;
    let _stop_redis = StopOnDrop(BENCH_TOPOLOGY);
    servers::reset_registry(&registry)?;
    let redis_port = port_of(&url)?;
    let redis = RedisCli::new(&tools.cli, redis_port);
    let toolkit = toolkit_benchmark(&url, plan.quick)?;
    // Started after the toolkit micro-benchmark, which its six idle nodes would only disturb.
    eprintln!("xtask: starting redis {BENCH_CLUSTER_TOPOLOGY} (six nodes, no persistence)");
    let cluster_url = redis::start(&tools, Topology::Cluster, BENCH_CLUSTER_TOPOLOGY, Some(std::process::id()))?;
    let stop_cluster = StopOnDrop(BENCH_CLUSTER_TOPOLOGY);
    let cluster = RedisNodes::cluster(&tools.cli, cluster_seed_port(&cluster_url)?)?;

    eprintln!("xtask: seeding {USERS} users through auth-core on redis");
    seed(Command::new(&binaries.seed).args(["--redis", &url]).args(seed_output_args(&dir.join(REDIS_TOKENS))))?;
    eprintln!("xtask: seeding the same {USERS} users through auth-core on the redis cluster");
    seed(
        Command::new(&binaries.seed).args(["--redis", &cluster_url]).args(seed_output_args(&dir.join(CLUSTER_TOKENS))),
    )?;
    probe::write_tokens(&dir.join(UNKNOWN_TOKENS), &probe::unknown_tokens(USERS as usize)?)?;
    probe::write_tokens(&dir.join(MALFORMED_TOKENS), &probe::malformed_tokens(USERS as usize)?)?;
    let internal_key = format!("bench-{}", probe::unknown_tokens(1)?.concat());
    let mut servers = start_servers(&binaries, &url, &cluster_url, redis_port, &internal_key, &logs, &registry)?;
    eprintln!("xtask: seeding {USERS} users into tessera's embedded store through POST /internal/sessions");
    seed(
        Command::new(&binaries.seed)
            .args(["--http", &format!("http://{}", listen(servers[TESSERA_EMBEDDED].port()))])
            .args(["--internal-key", &internal_key])
            .args(seed_output_args(&dir.join(EMBEDDED_TOKENS))),
    )?;

    let redis_pid = redis.pid()?;
    let bench = Bench {
        plan,
        wrk,
        redis_benchmark,
        standalone: RedisNodes::standalone(redis.clone(), redis_pid),
        redis,
        redis_port,
        redis_pid,
        cluster,
        clock_ticks: servers::clock_ticks_per_second()?,
        internal_key: internal_key.clone(),
    };
    let mut rows = plan_rows(&dir)?;
    // Each server in turn is warmed up, watched while idle and probed, so that its probe runs
    // seconds after its warm-up filled its near cache: an entry lives at most 30 s, and one
    // that expired between the probe's two passes would be counted as a round trip.
    eprintln!("xtask: warming up each server for {} s, then probing it", bench.plan.warmup_seconds);
    for (index, server) in servers.iter_mut().enumerate() {
        warm_up(&bench, index, server, &rows)?;
        let background = idle_background(&bench, index, server)?;
        for (row, driver) in &mut rows {
            if let Driver::Wrk { server: row_server, tokens, .. } = driver
                && *row_server == index
            {
                row.round_trips = Some(count_round_trips(&bench, index, server, &background, row, tokens)?);
            }
        }
    }
    measure_rounds(&bench, &mut servers, &mut rows)?;
    let revocation = measure_revocation(&bench, &binaries, &url, &internal_key, &mut servers, &logs, &registry)?;
    drop(servers);
    // The durability rows use no Redis; the cluster's six nodes would only share their cores.
    drop(stop_cluster);
    let durability = durability::measure(&binaries, &bench.wrk, &internal_key, &dir, &logs, &registry, plan.quick)?;

    let report = Report {
        setup: Setup {
            quick: plan.quick,
            rounds: plan.rounds,
            seconds: plan.seconds,
            warmup_seconds: plan.warmup_seconds,
            users: USERS,
            connections: load::CONNECTIONS,
            wrk_threads: load::WRK_THREADS,
            probe_requests: PROBE_REQUESTS,
            redis_benchmark_requests: REDIS_BENCHMARK_REQUESTS,
            revocation_tokens: plan.revocation_tokens,
        },
        machine: machine(&bench),
        rows: rows.into_iter().map(|(row, _)| row).collect(),
        toolkit,
        revocation: Some(revocation),
        durability: Some(durability),
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    let markdown = report.markdown();
    println!("{markdown}");
    write(&dir.join("latest.md"), &markdown)?;
    write(&dir.join("latest.json"), &report.json())?;
    if !plan.quick {
        write(&workspace::root().join("docs").join("BENCHMARKS.md"), &benchmarks_doc(&report, &markdown))?;
        eprintln!("xtask: wrote docs/BENCHMARKS.md");
    }
    eprintln!(
        "xtask: wrote {} and latest.json; the benchmark took {:.0} s",
        dir.join("latest.md").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Token files under `target/bench/`: seeded on Redis, on the Redis Cluster, in the embedded
/// store, and the two floods.
const REDIS_TOKENS: &str = "tokens-redis.txt";
const CLUSTER_TOKENS: &str = "tokens-cluster.txt";
const EMBEDDED_TOKENS: &str = "tokens-embedded.txt";
const UNKNOWN_TOKENS: &str = "tokens-unknown.txt";
const MALFORMED_TOKENS: &str = "tokens-malformed.txt";

/// Starts the twelve servers, each on a free loopback port: the ceiling, the naive port as
/// [`NAIVE_SERVERS`] lists it (fred's defaults at pool sizes 1, 2, 4 and 8, and a 1 s command
/// timeout at pool size 4), tessera on Redis (`url`) with the near cache off and on, tessera on
/// the embedded store, and on the Redis Cluster (`cluster_url`) the naive port on fred's cluster
/// client ([`NAIVE_CLUSTER_SERVER`]) and tessera with the near cache off and on, configured as
/// the standalone tessera rows but for `REDIS_URL`.
fn start_servers(
    binaries: &Binaries,
    url: &str,
    cluster_url: &str,
    redis_port: u16,
    internal_key: &str,
    logs: &Path,
    registry: &Path,
) -> Result<Vec<ServerProcess>> {
    eprintln!("xtask: starting the servers");
    let mut ports = vec![redis_port];
    for _ in 0..SERVERS {
        ports.push(process::free_port(&ports, false)?);
    }
    let ports = &ports[1..];
    let mut ceiling = Command::new(&binaries.ceiling);
    ceiling.args(["--listen", &listen(ports[CEILING])]);
    let mut commands = vec![(report::CEILING, ceiling)];
    for naive in &NAIVE_SERVERS {
        if naive.server != commands.len() {
            bail!("{} is listed as server {}, but would start as server {}", naive.key, naive.server, commands.len());
        }
        commands.push((naive.key, naive_command(&binaries.naive, ports[naive.server], url, naive)));
    }
    let tessera = |port: usize, store| tessera_command(&binaries.tessera, ports[port], store, internal_key);
    // The embedded row keeps its data as a production instance does (the default policy).
    let embedded_data = logs.join("data-embedded");
    commands.extend([
        (report::TESSERA_NEAR_OFF, tessera(TESSERA_NEAR_OFF, TesseraStore::Redis { url, near_cache: false })),
        (report::TESSERA_NEAR_ON, tessera(TESSERA_NEAR_ON, TesseraStore::Redis { url, near_cache: true })),
        (
            report::TESSERA_EMBEDDED,
            tessera(TESSERA_EMBEDDED, TesseraStore::Embedded { data_dir: Some(&embedded_data), fsync: "everysec" }),
        ),
        (
            NAIVE_CLUSTER_SERVER.key,
            naive_command(&binaries.naive, ports[NAIVE_CLUSTER], cluster_url, &NAIVE_CLUSTER_SERVER),
        ),
        (
            report::TESSERA_CLUSTER_NEAR_OFF,
            tessera(TESSERA_CLUSTER_NEAR_OFF, TesseraStore::Redis { url: cluster_url, near_cache: false }),
        ),
        (
            report::TESSERA_CLUSTER_NEAR_ON,
            tessera(TESSERA_CLUSTER_NEAR_ON, TesseraStore::Redis { url: cluster_url, near_cache: true }),
        ),
    ]);
    if commands.len() != SERVERS {
        bail!("{} servers to start, {SERVERS} expected", commands.len());
    }
    let mut servers = Vec::new();
    for ((name, mut command), port) in commands.into_iter().zip(ports) {
        servers.push(ServerProcess::start(name, &mut command, *port, logs, registry)?);
    }
    Ok(servers)
}

/// `bench-naive` as `naive` lists it, on 127.0.0.1:`port`, reading the Redis at `url` (fred's
/// cluster client for a `redis-cluster://` URL).
fn naive_command(binary: &Path, port: u16, url: &str, naive: &NaiveServer) -> Command {
    let mut command = Command::new(binary);
    command.args(["--listen", &listen(port), "--redis", url]);
    command.args(["--pool-size", &naive.pool_size.to_string()]);
    if let Some(milliseconds) = naive.command_timeout_ms {
        command.args(["--command-timeout-ms", &milliseconds.to_string()]);
    }
    command
}

/// The rows, in the order each round runs them, and how each is driven.
fn plan_rows(dir: &Path) -> Result<Vec<(Row, Driver)>> {
    let wrk = |server: usize, tokens_file: &str| -> Result<Driver> {
        let tokens_file = dir.join(tokens_file);
        let stem = tokens_file.file_stem().unwrap_or_default().to_string_lossy().replace("tokens-", "");
        let script = dir.join(format!("verify-{stem}.lua"));
        load::write_wrk_script(&script, &tokens_file)?;
        Ok(Driver::Wrk { server, script, tokens: probe::read_tokens(&tokens_file)? })
    };
    let valid = Load::Wrk { valid: true };
    let refused = Load::Wrk { valid: false };
    let mut rows =
        vec![(Row::new(report::CEILING, "ceiling: bare hyper, fixed 200", valid), wrk(CEILING, REDIS_TOKENS)?)];
    for naive in &NAIVE_SERVERS {
        rows.push((Row::new(naive.key, naive.title, valid), wrk(naive.server, REDIS_TOKENS)?));
    }
    rows.extend([
        (
            Row::new(report::TESSERA_NEAR_OFF, "tessera, Redis, near cache off", valid),
            wrk(TESSERA_NEAR_OFF, REDIS_TOKENS)?,
        ),
        (
            Row::new(report::TESSERA_NEAR_ON, "tessera, Redis, near cache on", valid),
            wrk(TESSERA_NEAR_ON, REDIS_TOKENS)?,
        ),
        (Row::new(report::TESSERA_EMBEDDED, "tessera, embedded store", valid), wrk(TESSERA_EMBEDDED, EMBEDDED_TOKENS)?),
        (Row::new(NAIVE_CLUSTER_SERVER.key, NAIVE_CLUSTER_SERVER.title, valid), wrk(NAIVE_CLUSTER, CLUSTER_TOKENS)?),
        (
            Row::new(report::TESSERA_CLUSTER_NEAR_OFF, "tessera, cluster, near cache off", valid),
            wrk(TESSERA_CLUSTER_NEAR_OFF, CLUSTER_TOKENS)?,
        ),
        (
            Row::new(report::TESSERA_CLUSTER_NEAR_ON, "tessera, cluster, near cache on", valid),
            wrk(TESSERA_CLUSTER_NEAR_ON, CLUSTER_TOKENS)?,
        ),
        (
            Row::new("tessera-invalid", "tessera/Redis near cache off, invalid-token flood (401)", refused),
            wrk(TESSERA_NEAR_OFF, UNKNOWN_TOKENS)?,
        ),
        (
            Row::new("tessera-malformed", "tessera/Redis near cache off, malformed-token flood (401)", refused),
            wrk(TESSERA_NEAR_OFF, MALFORMED_TOKENS)?,
        ),
        (
            Row::new("redis-get-p1", "redis-benchmark GET -P 1 (50 clients)", Load::RedisBenchmark { pipeline: 1 }),
            Driver::RedisBenchmark { pipeline: 1 },
        ),
        (
            Row::new("redis-get-p16", "redis-benchmark GET -P 16 (50 clients)", Load::RedisBenchmark { pipeline: 16 }),
            Driver::RedisBenchmark { pipeline: 16 },
        ),
    ]);
    Ok(rows)
}

/// The rounds: each runs every row once, in order, so drift hits every row alike; then each
/// row's ratio to the same round's ceiling, and at the end each server's peak RSS.
///
/// Each wrk row is measured right after a discarded warm-up of [`Plan::warmup_seconds`] with
/// the same load on the same server, so every row is measured as it runs under continuous
/// traffic. Without it a row would start from what the other rows' minutes left: the near
/// cache empty (its entries outlive no 2-minute pause at the default 30 s bound), the other
/// servers' memory cold. The near cache's misses inside the measured window are counted and
/// reported ([`Round::near_cache`]).
fn measure_rounds(bench: &Bench, servers: &mut [ServerProcess], rows: &mut [(Row, Driver)]) -> Result<()> {
    let plan = bench.plan;
    for round in 1..=plan.rounds {
        for (row, driver) in rows.iter_mut() {
            let measured = match driver {
                Driver::Wrk { server: index, script, .. } => {
                    let server = &mut servers[*index];
                    load::run_wrk(&bench.wrk, server.port(), script, plan.warmup_seconds)
                        .with_context(|| format!("{}: warming up {}", row.title, server.name()))?;
                    measure_wrk(bench, bench.loaded_redis(*index), server, row, script)?
                }
                Driver::RedisBenchmark { pipeline } => measure_redis_benchmark(bench, *pipeline)?,
            };
            eprintln!(
                "xtask: round {round}/{}: {:<25} {:>9} req/s  p50 {}  p99 {}",
                plan.rounds,
                row.key,
                report::thousands(measured.requests_per_second),
                measured.p50_ms.map_or("—".to_owned(), |ms| format!("{ms:.2} ms")),
                measured.p99_ms.map_or("—".to_owned(), |ms| format!("{ms:.2} ms")),
            );
            row.rounds.push(measured);
        }
        let ceiling = rows[0].0.rounds.last().map_or(f64::NAN, |round| round.requests_per_second);
        for (row, _) in rows.iter_mut() {
            if let (Load::Wrk { .. }, Some(last)) = (row.load, row.rounds.last_mut()) {
                last.ratio_to_ceiling = Some(last.requests_per_second / ceiling);
            }
        }
    }
    for (row, driver) in rows.iter_mut() {
        let pid = match driver {
            Driver::Wrk { server, .. } => servers[*server].pid(),
            Driver::RedisBenchmark { .. } => bench.redis_pid,
        };
        row.peak_rss_kib = Some(servers::peak_rss_kib(pid)?);
    }
    Ok(())
}

/// `cargo build --release` of `tessera` and the bench servers; their paths.
fn build() -> Result<Binaries> {
    let mut build = workspace::cargo();
    build.args(["build", "--release", "--package", "bench", "--package", "http-server", "--bins"]);
    eprintln!("xtask: {}", process::describe(&build));
    let status = process::status_of(&mut build)?;
    if !status.success() {
        bail!("`{}` failed with {status}", process::describe(&build));
    }
    let release = workspace::target_dir().join("release");
    let binaries = Binaries {
        tessera: release.join("tessera"),
        ceiling: release.join("bench-ceiling"),
        naive: release.join("bench-naive"),
        seed: release.join("bench-seed"),
    };
    for binary in [&binaries.tessera, &binaries.ceiling, &binaries.naive, &binaries.seed] {
        if !binary.is_file() {
            bail!("`{}` succeeded but made no {}", process::describe(&build), binary.display());
        }
    }
    Ok(binaries)
}

/// Runs the toolkit micro-benchmark (`crates/cache-toolkit/benches/toolkit.rs`) against the
/// benchmark's Redis; its markdown table.
fn toolkit_benchmark(url: &str, quick: bool) -> Result<Option<String>> {
    // The micro-benchmark writes beside the workspace's own target directory.
    let table = workspace::root().join("target").join("bench").join("toolkit.md");
    fs::remove_file(&table).ok();
    let mut bench = workspace::cargo();
    bench
        .args(["bench", "--package", "cache-toolkit", "--bench", "toolkit"])
        .env("TESSERA_BENCH_REDIS_URL", url)
        .env("TESSERA_BENCH_QUICK", if quick { "1" } else { "0" })
        // Its table is part of the report printed at the end; stdout carries that report alone.
        .stdout(std::io::stderr());
    eprintln!("xtask: {}", process::describe(&bench));
    let status = process::status_of(&mut bench)?;
    if !status.success() {
        bail!("`{}` failed with {status}", process::describe(&bench));
    }
    Ok(fs::read_to_string(&table).ok())
}

fn seed_output_args(tokens_file: &Path) -> Vec<String> {
    vec!["--users".to_owned(), USERS.to_string(), "--out".to_owned(), tokens_file.to_string_lossy().into_owned()]
}

/// Runs `bench-seed` to completion (bounded) and passes on what it said.
fn seed(command: &mut Command) -> Result<()> {
    let output = process::output_within(command, SEED_TIMEOUT)?;
    if !output.status.success() {
        bail!("`{}` failed with {}: {}", process::describe(command), output.status, process::combined_output(&output));
    }
    eprintln!("xtask: {}", process::combined_output(&output));
    Ok(())
}

/// `tessera` as production runs it (`APP_ENV=prod`), quiet (`TESSERA_LOG=warn`), on
/// 127.0.0.1:`port`, on `store` (on Redis with `TESSERA_NEAR_CACHE` set either way, never left
/// to its default). Settings from the caller's environment are left out, so they cannot
/// change what is measured.
pub(crate) fn tessera_command(binary: &Path, port: u16, store: TesseraStore<'_>, internal_key: &str) -> Command {
    let mut command = Command::new(binary);
    command.current_dir(workspace::root());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("TESSERA_")
            || name.starts_with("REDIS_")
            || name == "APP_ENV"
            || name == "ACCESS_TOKEN_EXPIRE_MINUTES"
        {
            command.env_remove(name.as_ref());
        }
    }
    command
        .env("APP_ENV", "prod")
        .env("TESSERA_CONFIG_DIR", workspace::root().join("configs"))
        .env("TESSERA_LISTEN", listen(port))
        .env("TESSERA_INTERNAL_KEY", internal_key)
        .env("TESSERA_LOG", "warn");
    match store {
        TesseraStore::Redis { url, near_cache } => command
            .env("TESSERA_STORE", "redis")
            .env("REDIS_URL", url)
            .env("TESSERA_NEAR_CACHE", if near_cache { "on" } else { "off" }),
        TesseraStore::Embedded { data_dir, fsync } => {
            if let Some(dir) = data_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            let data_dir = data_dir.map_or_else(|| "none".into(), |dir| dir.as_os_str().to_owned());
            command.env("TESSERA_STORE", "embedded").env("TESSERA_DATA_DIR", data_dir).env("TESSERA_FSYNC", fsync)
        }
    };
    command
}

fn listen(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The port of `redis://127.0.0.1:PORT`.
pub(crate) fn port_of(url: &str) -> Result<u16> {
    url.rsplit(':')
        .next()
        .and_then(|port| port.trim_end_matches('/').parse().ok())
        .with_context(|| format!("no port in {url}"))
}

/// The port of the first node of `redis-cluster://127.0.0.1:PORT?node=…&node=…`.
fn cluster_seed_port(url: &str) -> Result<u16> {
    let first = url.split_once('?').map_or(url, |(first, _)| first);
    port_of(first).with_context(|| format!("no first node in {url}"))
}

/// A short wrk run on server `index` with its first row's script, so connections, pools and
/// scripts are set up before anything is measured.
fn warm_up(bench: &Bench, index: usize, server: &mut ServerProcess, rows: &[(Row, Driver)]) -> Result<()> {
    let script = rows.iter().find_map(|(_, driver)| match driver {
        Driver::Wrk { server, script, .. } if *server == index => Some(script),
        _ => None,
    });
    let Some(script) = script else { return Ok(()) };
    let report = load::run_wrk(&bench.wrk, server.port(), script, bench.plan.warmup_seconds)
        .with_context(|| format!("warming up {}", server.name()))?;
    server.ensure_alive()?;
    if report.non_2xx > 0 || report.requests == 0 {
        bail!(
            "warming up {}: {} of {} responses were not 2xx; valid tokens must verify",
            server.name(),
            report.non_2xx,
            report.requests
        );
    }
    Ok(())
}

/// The commands server `index` sends to Redis on its own: watched with MONITOR (on each
/// primary of a cluster) for [`IDLE_WATCH`], [`CLUSTER_IDLE_WATCH`] on the cluster, while it
/// serves nothing (by name and key; see [`redis_stats::count_commands`]).
fn idle_background(bench: &Bench, index: usize, server: &mut ServerProcess) -> Result<IdleBackground> {
    server.ensure_alive()?;
    let Some(redis) = bench.redis_of(index) else { return Ok(IdleBackground::default()) };
    let ports = redis_ports(redis, server)?;
    let monitors = redis.monitor()?;
    let watch = if redis_use(index) == RedisUse::Cluster { CLUSTER_IDLE_WATCH } else { IDLE_WATCH };
    std::thread::sleep(watch);
    let seen = monitors.finish()?;
    let commands = redis_stats::background_commands_on_nodes(&seen, &ports);
    let sent: u64 = redis_stats::count_commands_on_nodes(&seen, &ports, &commands).background.values().sum();
    let idle = IdleBackground { commands, per_second: sent as f64 / watch.as_secs_f64() };
    if !idle.commands.is_empty() {
        eprintln!("xtask: {:<25} sends on its own, idle: {:.1}/s {:?}", server.name(), idle.per_second, idle.commands);
    }
    Ok(idle)
}

/// What a server sent to Redis on its own while it served nothing: which commands (by name and
/// key), and how many per second over the watch. The rate is taken there, not from the
/// probe's fraction of a second, which a periodic command (the cluster map read every second)
/// falls into or not.
#[derive(Debug, Default)]
struct IdleBackground {
    commands: BTreeSet<BackgroundCommand>,
    per_second: f64,
}

/// The local ports of `server`'s connections to each of `redis`'s primaries, in
/// [`RedisNodes::primaries`]' order: how `MONITOR` lines are told to be from this server.
fn redis_ports(redis: &RedisNodes, server: &ServerProcess) -> Result<Vec<BTreeSet<u16>>> {
    redis
        .primaries()
        .iter()
        .map(|node| {
            servers::redis_connection_ports(server.pid(), node.port())
                .with_context(|| format!("finding the redis connections of {} to port {}", server.name(), node.port()))
        })
        .collect()
}

/// The commands the row's server (server `index`) sent to Redis over [`PROBE_REQUESTS`]
/// sequential requests (MONITOR, its own connections only, on each primary of a cluster; what
/// it also sends while idle counted apart; none for a server without Redis), and the
/// statuses: all 200 for a valid row, all 401 for a flood. The same seeded sequence of
/// requests is sent twice and the second pass is counted, so every token it sends was
/// verified moments before: with the near cache on, every counted request is a hit.
fn count_round_trips(
    bench: &Bench,
    index: usize,
    server: &mut ServerProcess,
    background: &IdleBackground,
    row: &Row,
    tokens: &[String],
) -> Result<RoundTrips> {
    server.ensure_alive()?;
    let expected = if matches!(row.load, Load::Wrk { valid: true }) { 200 } else { 401 };
    let check = |statuses: &std::collections::BTreeMap<u16, u64>| {
        if statuses.keys().any(|status| *status != expected) {
            bail!("{}: expected {expected} for every request, got (status: count) {statuses:?}", row.title);
        }
        Ok(())
    };
    check(
        &probe::verify_requests(server.port(), tokens, PROBE_REQUESTS)
            .with_context(|| format!("{}: sending {PROBE_REQUESTS} requests one by one", row.title))?,
    )?;
    let watched = match bench.redis_of(index) {
        Some(redis) => Some((redis_ports(redis, server)?, redis.monitor()?)),
        None => None,
    };
    let started = Instant::now();
    let statuses = probe::verify_requests(server.port(), tokens, PROBE_REQUESTS)
        .with_context(|| format!("{}: sending {PROBE_REQUESTS} requests one by one", row.title))?;
    let seconds = started.elapsed().as_secs_f64();
    let commands = match watched {
        Some((ports, monitors)) => {
            redis_stats::count_commands_on_nodes(&monitors.finish()?, &ports, &background.commands)
        }
        None => CommandCounts::default(),
    };
    check(&statuses)?;
    let trips = RoundTrips {
        requests: PROBE_REQUESTS,
        seconds,
        statuses,
        commands,
        background_per_second: background.per_second,
        background_names: background.commands.iter().map(|(name, _)| name.clone()).collect(),
    };
    eprintln!(
        "xtask: {:<25} {:.3} redis commands sent per request {:?}, run by scripts {:?}, background {:?}",
        row.key,
        trips.sent_per_request(),
        trips.commands.sent,
        trips.commands.in_scripts,
        trips.commands.background,
    );
    Ok(trips)
}

/// The revocation-propagation row: a second tessera (near cache on, on the same Redis) beside
/// the near-cache-on server, [`Plan::revocation_tokens`] tokens revoked on the first and
/// polled on both (see [`revocation`]). After the rounds, so its extra sessions and its second
/// instance change nothing the other rows measured.
fn measure_revocation(
    bench: &Bench,
    binaries: &Binaries,
    url: &str,
    internal_key: &str,
    servers: &mut [ServerProcess],
    logs: &Path,
    registry: &Path,
) -> Result<report::Revocation> {
    let instance_a = &mut servers[TESSERA_NEAR_ON];
    instance_a.ensure_alive()?;
    let taken: Vec<u16> = std::iter::once(bench.redis_port).chain(servers.iter().map(ServerProcess::port)).collect();
    let port = process::free_port(&taken, false)?;
    let mut command =
        tessera_command(&binaries.tessera, port, TesseraStore::Redis { url, near_cache: true }, internal_key);
    let mut instance_b = ServerProcess::start("tessera-redis-near-on-b", &mut command, port, logs, registry)?;
    let tokens = bench.plan.revocation_tokens;
    eprintln!("xtask: revoking {tokens} tokens on one tessera instance, polling both until they refuse them");
    let revocation = revocation::measure(servers[TESSERA_NEAR_ON].port(), port, internal_key, tokens)?;
    servers[TESSERA_NEAR_ON].ensure_alive()?;
    instance_b.ensure_alive()?;
    eprintln!(
        "xtask: revocation propagation p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} still accepted at the deadline",
        revocation.percentile_ms(50.0).unwrap_or(f64::NAN),
        revocation.percentile_ms(99.0).unwrap_or(f64::NAN),
        revocation.percentile_ms(100.0).unwrap_or(f64::NAN),
        revocation.not_refused
    );
    Ok(revocation)
}

/// One wrk run on `server`, with the server's and `redis`'s CPU (every node of a cluster) and
/// the Redis commands (a cluster's primaries, added up) around it.
fn measure_wrk(
    bench: &Bench,
    redis: &RedisNodes,
    server: &mut ServerProcess,
    row: &Row,
    script: &Path,
) -> Result<Round> {
    server.ensure_alive()?;
    let near_before = near_cache_counts(bench, server)?;
    let calls_before = redis.command_calls()?;
    let redis_before = redis.cpu_ticks()?;
    let server_before = servers::cpu_ticks(server.pid())?;
    let report = load::run_wrk(&bench.wrk, server.port(), script, bench.plan.seconds)
        .with_context(|| format!("{}: wrk against {}", row.title, server.name()))?;
    let server_after = servers::cpu_ticks(server.pid())?;
    let redis_after = redis.cpu_ticks()?;
    let calls_after = redis.command_calls()?;
    let near_after = near_cache_counts(bench, server)?;
    server.ensure_alive()?;
    if report.requests == 0 {
        bail!("{}: wrk completed no request", row.title);
    }
    if report.socket_errors.connect > 0 {
        bail!("{}: wrk could not connect {} times", row.title, report.socket_errors.connect);
    }
    match row.load {
        Load::Wrk { valid: true } if report.non_2xx > 0 => bail!(
            "{}: {} of {} responses were not 2xx under load; every seeded token must verify (see target/bench/logs/{}.log)",
            row.title,
            report.non_2xx,
            report.requests,
            server.name()
        ),
        Load::Wrk { valid: false } if report.non_2xx < report.requests => bail!(
            "{}: {} of {} responses were 2xx; every token of a flood must be refused",
            row.title,
            report.requests - report.non_2xx,
            report.requests
        ),
        _ => {}
    }
    if report.socket_errors.total() > 0 {
        eprintln!("xtask: {}: wrk saw socket errors {:?}", row.title, report.socket_errors);
    }
    Ok(Round {
        requests: report.requests,
        requests_per_second: report.requests_per_second,
        p50_ms: Some(report.p50_ms),
        p99_ms: Some(report.p99_ms),
        non_2xx: report.non_2xx,
        socket_errors: report.socket_errors.total(),
        executed_commands: redis_stats::calls_between(&calls_before, &calls_after),
        server_cpu_ms_per_1k: Some(cpu_ms_per_1k(server_after - server_before, bench.clock_ticks, report.requests)),
        redis_cpu_ms_per_1k: cpu_ms_per_1k(redis_after - redis_before, bench.clock_ticks, report.requests),
        ratio_to_ceiling: None,
        near_cache: near_before.zip(near_after).map(|(before, after)| after.since(before)),
    })
}

/// The near cache's hit and miss counters of a tessera on Redis (standalone or cluster), from
/// its `/metrics`; `None` for the other servers.
fn near_cache_counts(bench: &Bench, server: &ServerProcess) -> Result<Option<NearCacheCounts>> {
    if !["tessera-redis", "tessera-cluster"].iter().any(|prefix| server.name().starts_with(prefix)) {
        return Ok(None);
    }
    let text = probe::metrics(server.port(), &bench.internal_key).with_context(|| server.name().to_owned())?;
    let counter = |event: &str| {
        let name = format!("tessera_cache_events_total{{event=\"{event}\"}}");
        probe::metric(&text, &name).with_context(|| format!("{}: no {name} in /metrics", server.name()))
    };
    Ok(Some(NearCacheCounts { hits: counter("near_hits")?, misses: counter("near_misses")? }))
}

/// One redis-benchmark GET run against the benchmark's Redis.
fn measure_redis_benchmark(bench: &Bench, pipeline: u32) -> Result<Round> {
    let calls_before = bench.redis.command_calls()?;
    let redis_before = servers::cpu_ticks(bench.redis_pid)?;
    let report =
        load::run_redis_benchmark(&bench.redis_benchmark, bench.redis_port, pipeline, REDIS_BENCHMARK_REQUESTS)?;
    let redis_after = servers::cpu_ticks(bench.redis_pid)?;
    let calls_after = bench.redis.command_calls()?;
    Ok(Round {
        requests: REDIS_BENCHMARK_REQUESTS,
        requests_per_second: report.requests_per_second,
        p50_ms: report.p50_ms,
        p99_ms: report.p99_ms,
        executed_commands: redis_stats::calls_between(&calls_before, &calls_after),
        redis_cpu_ms_per_1k: cpu_ms_per_1k(redis_after - redis_before, bench.clock_ticks, REDIS_BENCHMARK_REQUESTS),
        ..Round::default()
    })
}

/// CPU milliseconds per 1,000 requests from a tick count.
fn cpu_ms_per_1k(ticks: u64, ticks_per_second: f64, requests: u64) -> f64 {
    report::per(ticks, requests) * 1_000.0 / ticks_per_second * 1_000.0
}

/// The machine and tools, for the report.
fn machine(bench: &Bench) -> Machine {
    let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    let memory_kib: Option<f64> = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok());
    let first_line = |command: &mut Command| {
        command
            .output()
            .map(|output| {
                let text =
                    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
                text.lines().next().unwrap_or_default().trim().to_owned()
            })
            .unwrap_or_default()
    };
    Machine {
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model: redis_stats::info_field(&cpuinfo.replace('\t', ""), "model name")
            .map(|model| model.trim().to_owned())
            .unwrap_or_else(|| "unknown CPU".to_owned()),
        memory: memory_kib.map_or("unknown".to_owned(), |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0)),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        date: first_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        redis_version: bench.redis.version().unwrap_or_default(),
        wrk_version: first_line(Command::new(&bench.wrk).arg("-v")).split(" [").next().unwrap_or_default().to_owned(),
    }
}

/// `docs/BENCHMARKS.md`: the machine, how to reproduce, what each row is, then the run.
fn benchmarks_doc(report: &Report, markdown: &str) -> String {
    let machine = &report.machine;
    format!(
        "# Benchmarks\n\n\
         Written by `cargo xtask bench` after a full run (`--quick` leaves this file alone); re-run it \
         after a change to the verify path. Every number of the run, per round, is in \
         `target/bench/latest.json`.\n\n\
         ## The machine\n\n\
         - {cores} cores (`nproc`), {cpu}, {memory} of memory, Linux {kernel}\n\
         - run on {date}, redis-server {redis}, {wrk}; the whole run took {wall:.0} s\n\
         - wrk, the servers and Redis share these cores, so each row is a fraction of what the machine \
         can do with everything on it, and the ratios matter more than the absolute numbers\n\n\
         ## How to reproduce\n\n\
         ```sh\n\
         cargo xtask ci              # once, on a fresh clone\n\
         cargo xtask bench           # full run (5 rounds × 10 s per row): prints the table, rewrites this file\n\
         cargo xtask bench --quick   # 3 rounds × 3 s: prints the table, writes target/bench/ only\n\
         ```\n\n\
         It builds the release binaries, installs `wrk` and `redis-server` when they are missing (as \
         root, with apt-get), starts a private Redis and a private six-node Redis Cluster (three \
         primaries, each with a replica), both without persistence, on free loopback ports, seeds \
         {users} users with one token each into each through Tessera's own code, and stops everything \
         it started.\n\n\
         ## The rows\n\n\
         - **ceiling**: `bench-ceiling` (crates/bench), a bare hyper 1 server with tessera's connection \
         settings answering every request with 200 and tessera's headers (`x-auth-user-id`, \
         `x-request-id`): the HTTP limit of this machine.\n\
         - **naive port, fred defaults, pool 1, 2, 4, 8** and **naive port, 1 s command timeout, pool \
         4**: `bench-naive`, hyper + a fred pool doing what the original design does, written as a \
         good engineer would: GET `token:{{t}}`, decode `user_id` alone into a serde-derived struct, \
         LRANGE `token_list:{{uid}}`, scan it; the same response headers as the ceiling and tessera. \
         The first four run with fred's defaults (no command timeout) and a pool of 1, 2, 4 and 8 \
         connections (`--pool-size`), the pool size an engineer tuning the port would pick by \
         measurement; the fifth with `--command-timeout-ms 1000` at pool size 4 (fred's per-command \
         timeout has a cost of its own, seen beside the defaults' pool-4 row); all keep an endless \
         reconnect policy, which costs nothing on a healthy connection. The budgets are taken against \
         the fastest of the five in the same run, named under the table and marked in it.\n\
         - **tessera, Redis, near cache off** and **near cache on** (`TESSERA_NEAR_CACHE=off|on`), and \
         **tessera, embedded store** (seeded with its own tokens through `POST /internal/sessions`).\n\
         - **naive port on fred's cluster client, fred defaults, pool 4**, **tessera, cluster, near \
         cache off** and **near cache on**: the same requests on the Redis Cluster, with its own tokens \
         for the same users. The naive row is `bench-naive` given the cluster's `redis-cluster://` URL, \
         which fred's `Config::from_url` turns into fred's cluster client, at pool size 4 (which \
         standalone pool size is fastest is only known after the rounds); tessera is configured as its \
         standalone rows but for `REDIS_URL`, and routes each key itself with one fred pool per \
         primary. The cluster budget divides tessera's near-cache-off req/s by this naive row's, round \
         by round; it is not among the standalone naive rows the other budgets pick from.\n\
         - **floods**: tessera on Redis (near cache off: a real flood's tokens are never repeated, \
         while wrk repeats 10,000 of them, which a cache would absorb) with random well-formed unknown \
         tokens, and with malformed ones (a `*`, or 8 characters) that are refused before any I/O; \
         every answer is 401.\n\
         - **redis-benchmark GET**, pipeline 1 and 16, on the standalone Redis: the Redis limit.\n\
         - **revocation propagation**: a second tessera with the near cache on beside the first, on the \
         same Redis; for each of {revocation_tokens} fresh tokens, verified on both, revoked with \
         `POST /api/logout` on one, the time from the logout's answer until both answer 401 (polled \
         back to back, 2 s deadline): p50, p99, max.\n\n\
         Redis commands per request are counted with MONITOR on the row's server's own connections \
         over 1,000 sequential requests that repeat a seeded sequence sent just before (so with the \
         near cache on every counted request is a hit); commands a server sends while idle (the near \
         cache's heartbeat, the cluster map read) are shown apart, per second over a watch while the \
         server serves nothing (1 s; 2.5 s on the cluster). On the cluster rows MONITOR runs on each \
         primary, with the server's own connections to that primary, and the counts are added up; their \
         Redis CPU is that of all six nodes.\n\n\
         {markdown}",
        cores = machine.cores,
        cpu = machine.cpu_model,
        memory = machine.memory,
        kernel = machine.kernel,
        date = machine.date,
        redis = machine.redis_version,
        wrk = machine.wrk_version,
        wall = report.wall_seconds,
        users = report::thousands(report.setup.users as f64),
        revocation_tokens = report.setup.revocation_tokens,
    )
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Stops one of the benchmark's Redis topologies (by its name) on every way out of `run`.
struct StopOnDrop(&'static str);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let name = self.0;
        if let Err(error) = redis::stop_if_owned(name, std::process::id()) {
            eprintln!("xtask: stopping redis {name} failed: {error:#}");
        }
    }
}
