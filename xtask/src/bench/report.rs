//! The benchmark's results and how they are told: per row and round what was measured, the
//! medians over rounds, the markdown table, the budgets the issue sets (checked, reported, never
//! a failure), and the JSON of every number (serde_json).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use self::json::{BudgetJson, ReportJson, RevocationJson, RowJson};

use super::durability::DurabilityReport;
use super::redis_stats::CommandCounts;

mod json;

/// The keys of the rows the budgets read.
pub(super) const CEILING: &str = "ceiling";
/// The naive port with fred's defaults, one row per pool size (`bench-naive --pool-size`).
pub(super) const NAIVE_POOL_1: &str = "naive-defaults-pool-1";
pub(super) const NAIVE_POOL_2: &str = "naive-defaults-pool-2";
pub(super) const NAIVE_POOL_4: &str = "naive-defaults-pool-4";
pub(super) const NAIVE_POOL_8: &str = "naive-defaults-pool-8";
/// The naive port with a 1 s command timeout.
pub(super) const NAIVE_TIMEOUT: &str = "naive-timeout";
/// Every naive row: the budgets are taken against the fastest of them in the run
/// ([`Report::fastest_naive`]).
pub(super) const NAIVE_ROWS: [&str; 5] = [NAIVE_POOL_1, NAIVE_POOL_2, NAIVE_POOL_4, NAIVE_POOL_8, NAIVE_TIMEOUT];
pub(super) const TESSERA_NEAR_OFF: &str = "tessera-redis-near-off";
pub(super) const TESSERA_NEAR_ON: &str = "tessera-redis-near-on";
pub(super) const TESSERA_EMBEDDED: &str = "tessera-embedded";
/// The naive port on fred's cluster client, on the Redis Cluster: the cluster budget's
/// reference, and not one of [`NAIVE_ROWS`] (no standalone reference).
pub(super) const NAIVE_CLUSTER: &str = "naive-fred-cluster-pool-4";
/// Tessera on the Redis Cluster (its own router, one fred pool per primary).
pub(super) const TESSERA_CLUSTER_NEAR_OFF: &str = "tessera-cluster-near-off";
pub(super) const TESSERA_CLUSTER_NEAR_ON: &str = "tessera-cluster-near-on";
/// The rows on the Redis Cluster.
const CLUSTER_ROWS: [&str; 3] = [NAIVE_CLUSTER, TESSERA_CLUSTER_NEAR_OFF, TESSERA_CLUSTER_NEAR_ON];

/// How a row loads its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Load {
    /// wrk against an HTTP server; `valid`: every response must be 2xx, else every one
    /// must be refused.
    Wrk { valid: bool },
    /// redis-benchmark GET with this pipeline depth, against the benchmark's Redis.
    RedisBenchmark { pipeline: u32 },
}

/// One row of the table.
#[derive(Debug, Clone)]
pub(super) struct Row {
    /// Short stable name, used in the JSON and for the budgets.
    pub(super) key: &'static str,
    pub(super) title: &'static str,
    pub(super) load: Load,
    pub(super) rounds: Vec<Round>,
    /// Commands sent to Redis over a fixed count of sequential requests (wrk rows).
    pub(super) round_trips: Option<RoundTrips>,
    /// VmHWM of the server process (Redis for redis-benchmark rows) after the row's last round.
    pub(super) peak_rss_kib: Option<u64>,
}

/// One run of a row.
#[derive(Debug, Clone, Default)]
pub(super) struct Round {
    pub(super) requests: u64,
    pub(super) requests_per_second: f64,
    pub(super) p50_ms: Option<f64>,
    pub(super) p99_ms: Option<f64>,
    /// Non-2xx/3xx responses (the floods expect every one).
    pub(super) non_2xx: u64,
    pub(super) socket_errors: u64,
    /// Commands Redis executed during the run (`INFO commandstats`, including those Lua
    /// scripts ran) per completed request; requests still in flight when wrk stopped make it
    /// slightly high.
    pub(super) executed_commands: BTreeMap<String, u64>,
    /// CPU (user + system) of the server process, ms per 1,000 requests (wrk rows).
    pub(super) server_cpu_ms_per_1k: Option<f64>,
    /// CPU of redis-server, ms per 1,000 requests.
    pub(super) redis_cpu_ms_per_1k: f64,
    /// This round's req/s over the same round's ceiling req/s.
    pub(super) ratio_to_ceiling: Option<f64>,
    /// The near cache's hits and misses during the run (tessera on Redis).
    pub(super) near_cache: Option<NearCacheCounts>,
}

/// Near-cache lookups that hit and that missed (`tessera_cache_events_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct NearCacheCounts {
    pub(super) hits: u64,
    pub(super) misses: u64,
}

impl NearCacheCounts {
    /// The lookups counted since `before`.
    pub(super) fn since(self, before: NearCacheCounts) -> NearCacheCounts {
        NearCacheCounts {
            hits: self.hits.saturating_sub(before.hits),
            misses: self.misses.saturating_sub(before.misses),
        }
    }

    fn lookups(self) -> u64 {
        self.hits + self.misses
    }
}

impl Round {
    pub(super) fn executed_commands_per_request(&self) -> f64 {
        per(self.executed_commands.values().sum(), self.requests)
    }
}

/// The commands the row's server sent to Redis (MONITOR, its own connections only) over
/// `requests` sequential requests, each with a token the same sequence had sent just before
/// (so, with the near cache on, each is a hit), and the statuses those requests got.
#[derive(Debug, Clone)]
pub(super) struct RoundTrips {
    pub(super) requests: u64,
    /// How long the counted requests took.
    pub(super) seconds: f64,
    pub(super) statuses: BTreeMap<u16, u64>,
    pub(super) commands: CommandCounts,
    /// Commands per second the server sent on its own while idle (not per request), and their names.
    pub(super) background_per_second: f64,
    pub(super) background_names: BTreeSet<String>,
}

impl RoundTrips {
    pub(super) fn sent_per_request(&self) -> f64 {
        per(self.commands.sent.values().sum(), self.requests)
    }
}

/// The revocation-propagation measurement: two tessera instances with the near cache on, on
/// the same Redis; per token, the time from the return of the revoking request (on instance A)
/// until both instances answer 401 for it.
#[derive(Debug, Clone, Default)]
pub(super) struct Revocation {
    pub(super) tokens: u64,
    /// Milliseconds, one per token; a token still accepted at the deadline counts with the
    /// time the row gave up on it (a lower bound), and in `not_refused`.
    pub(super) samples_ms: Vec<f64>,
    pub(super) not_refused: u64,
    pub(super) deadline_ms: f64,
}

impl Revocation {
    /// The nearest-rank percentile `percent` of the samples; `None` without samples.
    pub(super) fn percentile_ms(&self, percent: f64) -> Option<f64> {
        percentile(&self.samples_ms, percent)
    }
}

/// Nearest-rank percentile: the smallest sample at or above `percent` of them.
pub(super) fn percentile(samples: &[f64], percent: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|value| value.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The machine and tools a run measured on.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Machine {
    pub(super) cores: usize,
    pub(super) cpu_model: String,
    pub(super) memory: String,
    pub(super) kernel: String,
    pub(super) date: String,
    pub(super) redis_version: String,
    pub(super) wrk_version: String,
}

/// How a run was set up.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Setup {
    /// At the report's top level, not in its `setup`.
    #[serde(skip)]
    pub(super) quick: bool,
    pub(super) rounds: usize,
    #[serde(rename = "seconds_per_row")]
    pub(super) seconds: u64,
    /// The discarded warm-up run before each measured run of a wrk row.
    #[serde(rename = "warmup_seconds_per_row")]
    pub(super) warmup_seconds: u64,
    pub(super) users: u64,
    pub(super) connections: u32,
    pub(super) wrk_threads: u32,
    #[serde(rename = "round_trip_probe_requests")]
    pub(super) probe_requests: u64,
    pub(super) redis_benchmark_requests: u64,
    pub(super) revocation_tokens: u64,
}

/// A whole run.
#[derive(Debug, Clone)]
pub(super) struct Report {
    pub(super) setup: Setup,
    pub(super) machine: Machine,
    pub(super) rows: Vec<Row>,
    /// `target/bench/toolkit.md`, the toolkit micro-benchmark's table.
    pub(super) toolkit: Option<String>,
    /// Absent when the run stopped before it (never in a finished run).
    pub(super) revocation: Option<Revocation>,
    /// The embedded store's durability section (absent in reports built by tests).
    pub(super) durability: Option<DurabilityReport>,
    pub(super) wall_seconds: f64,
}

/// A budget of the issue, checked against this run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Budget {
    pub(super) name: String,
    pub(super) measured: Option<f64>,
    pub(super) threshold: f64,
    /// How measured and threshold compare when the budget is met.
    pub(super) relation: Relation,
    pub(super) unit: &'static str,
    /// How the threshold was derived, when it depends on the run.
    pub(super) derivation: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Relation {
    AtLeast,
    AtMost,
    /// Equal, to within half a percent.
    Equal,
}

impl Budget {
    pub(super) fn met(&self) -> bool {
        let Some(measured) = self.measured else { return false };
        match self.relation {
            Relation::AtLeast => measured >= self.threshold,
            Relation::AtMost => measured <= self.threshold,
            Relation::Equal => (measured - self.threshold).abs() <= self.threshold.abs() * 0.005,
        }
    }
}

impl Row {
    pub(super) fn new(key: &'static str, title: &'static str, load: Load) -> Row {
        Row { key, title, load, rounds: Vec::new(), round_trips: None, peak_rss_kib: None }
    }

    pub(super) fn median_rps(&self) -> Option<f64> {
        median(self.rounds.iter().map(|round| round.requests_per_second))
    }

    pub(super) fn median_p50_ms(&self) -> Option<f64> {
        median(self.rounds.iter().filter_map(|round| round.p50_ms))
    }

    pub(super) fn median_p99_ms(&self) -> Option<f64> {
        median(self.rounds.iter().filter_map(|round| round.p99_ms))
    }

    /// The near cache's lookups over all rounds; `None` when the row's server made none.
    pub(super) fn near_cache_total(&self) -> Option<NearCacheCounts> {
        let total =
            self.rounds.iter().filter_map(|round| round.near_cache).fold(NearCacheCounts::default(), |total, round| {
                NearCacheCounts { hits: total.hits + round.hits, misses: total.misses + round.misses }
            });
        (total.lookups() > 0).then_some(total)
    }

    pub(super) fn median_ratio_to_ceiling(&self) -> Option<f64> {
        median(self.rounds.iter().filter_map(|round| round.ratio_to_ceiling))
    }

    fn median_server_cpu(&self) -> Option<f64> {
        median(self.rounds.iter().filter_map(|round| round.server_cpu_ms_per_1k))
    }

    fn median_redis_cpu(&self) -> Option<f64> {
        median(self.rounds.iter().map(|round| round.redis_cpu_ms_per_1k))
    }

    /// Commands per request for the table: sent by clients (MONITOR probe) for wrk rows,
    /// executed (commandstats) for redis-benchmark rows.
    pub(super) fn commands_per_request(&self) -> Option<f64> {
        match self.load {
            Load::Wrk { .. } => self.round_trips.as_ref().map(RoundTrips::sent_per_request),
            Load::RedisBenchmark { .. } => median(self.rounds.iter().map(Round::executed_commands_per_request)),
        }
    }

    /// `1.00 (evalsha → get, lpos)`: per request, with the commands named (those a script
    /// ran after the arrow).
    fn commands_cell(&self) -> String {
        let Some(per_request) = self.commands_per_request() else { return "—".to_owned() };
        let (sent, in_scripts): (Vec<String>, Vec<String>) = match (&self.load, &self.round_trips) {
            (Load::Wrk { .. }, Some(trips)) => {
                (names(&trips.commands.sent, trips.requests), names(&trips.commands.in_scripts, trips.requests))
            }
            _ => {
                let mut total = BTreeMap::new();
                let mut requests = 0;
                for round in &self.rounds {
                    requests += round.requests;
                    for (name, calls) in &round.executed_commands {
                        *total.entry(name.clone()).or_insert(0) += calls;
                    }
                }
                (names(&total, requests), Vec::new())
            }
        };
        let background = match &self.round_trips {
            Some(trips) if trips.background_per_second > 0.0 => {
                let names: Vec<&str> = trips.background_names.iter().map(String::as_str).collect();
                format!(" + {:.1}/s background ({})", trips.background_per_second, names.join(", "))
            }
            _ => String::new(),
        };
        if sent.is_empty() {
            return format!("{per_request:.2}{background}");
        }
        let scripts = if in_scripts.is_empty() { String::new() } else { format!(" → {}", in_scripts.join(", ")) };
        format!("{per_request:.2} ({}{scripts}){background}", sent.join(", "))
    }

    fn cpu_cell(&self) -> String {
        let redis = self.median_redis_cpu();
        match (self.load, self.median_server_cpu(), redis) {
            (Load::Wrk { .. }, Some(server), Some(redis)) => format!("{server:.1} + {redis:.1}"),
            (Load::RedisBenchmark { .. }, _, Some(redis)) => format!("{redis:.1} (Redis)"),
            _ => "—".to_owned(),
        }
    }
}

/// Command names called at least once per 100 requests, most called first.
fn names(calls: &BTreeMap<String, u64>, requests: u64) -> Vec<String> {
    let mut frequent: Vec<(&String, &u64)> =
        calls.iter().filter(|(_, count)| **count * 100 >= requests.max(1)).collect();
    frequent.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    frequent.into_iter().map(|(name, _)| name.clone()).collect()
}

impl Report {
    pub(super) fn row(&self, key: &str) -> Option<&Row> {
        self.rows.iter().find(|row| row.key == key)
    }

    /// The fastest of the naive rows ([`NAIVE_ROWS`]) by median req/s: the budgets and their
    /// "÷ naive" ratios are taken against it, whichever pool size or timeout it ran with.
    pub(super) fn fastest_naive(&self) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|row| NAIVE_ROWS.contains(&row.key))
            .filter_map(|row| Some((row, row.median_rps()?)))
            .max_by(|(_, a), (_, b)| a.total_cmp(b))
            .map(|(row, _)| row)
    }

    /// Tessera on the cluster, near cache on, over tessera on standalone Redis, near cache on:
    /// the median of per-round req/s ratios. Told for information, with no budget.
    pub(super) fn cluster_near_on_over_standalone(&self) -> Option<f64> {
        median_ratio_by_round(self.row(TESSERA_CLUSTER_NEAR_ON), self.row(TESSERA_NEAR_ON))
    }

    /// The budgets, measured on this run.
    pub(super) fn budgets(&self) -> Vec<Budget> {
        let naive = self.fastest_naive();
        let naive_name = naive.map_or("no naive row measured", |row| row.title);
        let near_off = self.row(TESSERA_NEAR_OFF);
        let near_on = self.row(TESSERA_NEAR_ON);
        let embedded = self.row(TESSERA_EMBEDDED);
        let ceiling = self.row(CEILING);
        let over_naive = |row: Option<&Row>| median_ratio_by_round(row, naive);
        let ceiling_p99 = ceiling.and_then(Row::median_p99_ms);
        let p99_threshold = ceiling_p99.map_or(f64::NAN, |p99| 2.0 * p99 + 2.0);
        let p99_derivation = ceiling_p99.map(|p99| format!("2 × ceiling p99 ({p99:.2} ms) + 2 ms"));
        let peak_rss_mib = [near_off, near_on, embedded]
            .into_iter()
            .flatten()
            .filter_map(|row| row.peak_rss_kib)
            .max()
            .map(|kib| kib as f64 / 1024.0);
        let ratio = |name: String, measured, threshold| Budget {
            name,
            measured,
            threshold,
            relation: Relation::AtLeast,
            unit: "×",
            derivation: None,
        };
        vec![
            ratio(
                format!(
                    "tessera/Redis, near cache on, req/s ÷ the fastest naive row's req/s ({naive_name}; \
                     median of per-round ratios)"
                ),
                over_naive(near_on),
                2.0,
            ),
            ratio(
                "tessera/Redis, near cache on, req/s ÷ ceiling req/s (median of per-round ratios)".to_owned(),
                near_on.and_then(Row::median_ratio_to_ceiling),
                0.75,
            ),
            Budget {
                name: "Redis commands sent per verification served from the near cache (near cache on)".to_owned(),
                measured: near_on.and_then(Row::commands_per_request),
                threshold: 0.0,
                relation: Relation::Equal,
                unit: "",
                derivation: None,
            },
            ratio(
                format!(
                    "tessera/Redis, near cache off, req/s ÷ the fastest naive row's req/s ({naive_name}; \
                     median of per-round ratios)"
                ),
                over_naive(near_off),
                1.0,
            ),
            // One round trip: a token's first verification is one EVALSHA; once its user is
            // known, GET and LPOS are sent together, which costs less
            // (docs/PERFORMANCE.md#known-token-pair). The round trip itself is asserted by
            // `integration::auth_api::a_verification_is_one_round_trip_however_it_is_sent`.
            Budget {
                name: "Redis commands sent per valid verification (near cache off, standalone), in one round trip"
                    .to_owned(),
                measured: near_off.and_then(Row::commands_per_request),
                threshold: 2.0,
                relation: Relation::AtMost,
                unit: "",
                derivation: None,
            },
            ratio(
                "tessera/embedded req/s ÷ ceiling req/s (median of per-round ratios)".to_owned(),
                embedded.and_then(Row::median_ratio_to_ceiling),
                0.75,
            ),
            Budget {
                name: "revocation propagation across two instances (near cache on), p99".to_owned(),
                measured: self.revocation.as_ref().and_then(|revocation| revocation.percentile_ms(99.0)),
                threshold: 50.0,
                relation: Relation::AtMost,
                unit: " ms",
                derivation: None,
            },
            Budget {
                name: "p99 of tessera/Redis, near cache off".to_owned(),
                measured: near_off.and_then(Row::median_p99_ms),
                threshold: p99_threshold,
                relation: Relation::AtMost,
                unit: " ms",
                derivation: p99_derivation.clone(),
            },
            Budget {
                name: "p99 of tessera/Redis, near cache on".to_owned(),
                measured: near_on.and_then(Row::median_p99_ms),
                threshold: p99_threshold,
                relation: Relation::AtMost,
                unit: " ms",
                derivation: p99_derivation,
            },
            Budget {
                name: "restart of the embedded store with 1 million sessions until /readyz (scaled to the sessions loaded)"
                    .to_owned(),
                measured: self.durability.as_ref().map(|durability| durability.restart_ms),
                threshold: self.durability.as_ref().map_or(5_000.0, |durability| {
                    5_000.0 * durability.sessions as f64 / 1_000_000.0
                }),
                relation: Relation::AtMost,
                unit: " ms",
                derivation: None,
            },
            Budget {
                name: "resident memory of the embedded store loaded from disk ÷ the same sessions in memory only"
                    .to_owned(),
                measured: self.durability.as_ref().map(DurabilityReport::rss_ratio),
                threshold: 2.0,
                relation: Relation::AtMost,
                unit: "×",
                derivation: None,
            },
            Budget {
                name: "peak RSS of tessera under the load (the largest of Redis near cache off, on, and embedded)"
                    .to_owned(),
                measured: peak_rss_mib,
                threshold: 64.0,
                relation: Relation::AtMost,
                unit: " MiB",
                derivation: None,
            },
            ratio(
                "tessera/cluster, near cache off, req/s ÷ the naive port on fred's cluster client req/s \
                 (median of per-round ratios)"
                    .to_owned(),
                median_ratio_by_round(self.row(TESSERA_CLUSTER_NEAR_OFF), self.row(NAIVE_CLUSTER)),
                1.0,
            ),
        ]
    }

    /// The table, the budgets and the toolkit section, as markdown.
    pub(super) fn markdown(&self) -> String {
        let setup = &self.setup;
        let mut text = String::new();
        writeln!(
            text,
            "## HTTP: `GET /auth/verify` under load\n\n\
             {} run: {} rounds × {} s per row, the rows interleaved (each round runs every row once, in \
             table order), each wrk row measured right after a discarded {} s warm-up with the same \
             load on the same server (so each row is measured under continuous traffic: the near \
             cache as full as that traffic keeps it, its misses counted below); wrk -t{} -c{}, a \
             random token per request (seeded) from {} users, one token each, ~200-byte metadata.\n",
            if setup.quick { "Quick (`--quick`)" } else { "Full" },
            setup.rounds,
            setup.seconds,
            setup.warmup_seconds,
            setup.wrk_threads,
            setup.connections,
            thousands(setup.users as f64),
        )
        .ok();
        text.push_str(
            "| row | req/s median (min–max) | p50 | p99 | × ceiling | Redis cmds/req | CPU ms per 1k req (server + Redis) | peak RSS MiB |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        let fastest_naive = self.fastest_naive();
        for row in &self.rows {
            let title = match fastest_naive {
                Some(fastest) if fastest.key == row.key => format!("{} (fastest naive)", row.title),
                _ => row.title.to_owned(),
            };
            let spread = {
                let rates: Vec<f64> = row.rounds.iter().map(|round| round.requests_per_second).collect();
                let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
                let max = rates.iter().copied().fold(0.0, f64::max);
                match row.median_rps() {
                    Some(median) => format!("{} ({}–{})", thousands(median), thousands(min), thousands(max)),
                    None => "—".to_owned(),
                }
            };
            writeln!(
                text,
                "| {title} | {spread} | {} | {} | {} | {} | {} | {} |",
                milliseconds(row.median_p50_ms()),
                milliseconds(row.median_p99_ms()),
                row.median_ratio_to_ceiling().map_or("—".to_owned(), |ratio| format!("{ratio:.2}")),
                row.commands_cell(),
                row.cpu_cell(),
                row.peak_rss_kib.map_or("—".to_owned(), |kib| format!("{:.1}", kib as f64 / 1024.0)),
            )
            .ok();
        }
        text.push_str(
            "\np50, p99: medians over the rounds of wrk's percentiles (redis-benchmark's for its rows). \
             × ceiling: median over the rounds of the row's req/s ÷ the same round's ceiling req/s. \
             Redis cmds/req: the commands the row's server sent to Redis per request (its own connections \
             only), counted with MONITOR over ",
        );
        writeln!(
            text,
            "{} sequential requests that repeat a sequence sent just before, so every token was verified \
             moments earlier (with the near cache on, each request is a hit); after `→`: the commands a \
             Lua script ran inside Redis; `background`: what the server's connections send on their own \
             (e.g. the near cache's heartbeat, the cluster map read), per second over a watch while it \
             served nothing (1 s; 2.5 s on the cluster), not counted per request; for the redis-benchmark \
             rows, commands executed per request. CPU: user + system time of the server process and of \
             redis-server per 1,000 requests (median over rounds; wrk shares the machine). \
             Peak RSS: VmHWM of the server process (redis-server for its rows) after its last round. \
             The flood rows expect 401 for every request.\n",
            thousands(setup.probe_requests as f64)
        )
        .ok();
        if let Some(naive) = fastest_naive {
            writeln!(
                text,
                "The naive rows are `bench-naive` (hyper + fred, GET + serde + LRANGE) at the pool sizes and \
                 settings their titles name. The fastest of them in this run, by median req/s, is **{}** \
                 ({} req/s): the budgets below that divide by a naive row divide by this one.\n",
                naive.title,
                naive.median_rps().map_or("—".to_owned(), thousands),
            )
            .ok();
        }
        if self.rows.iter().any(|row| CLUSTER_ROWS.contains(&row.key)) {
            text.push_str(
                "The cluster rows run on a private six-node Redis Cluster (three primaries, each with a \
                 replica) beside the standalone Redis, seeded with the same users (tokens of its own). The \
                 naive port on fred's cluster client is the cluster budget's reference only; it is not one \
                 of the naive rows above. Their Redis cmds/req are counted with MONITOR on each primary \
                 (the server's own connections to it) and added up; their Redis CPU is that of all six \
                 nodes.\n\n",
            );
        }
        if let Some(ratio) = self.cluster_near_on_over_standalone() {
            writeln!(
                text,
                "Informational, no budget: tessera/cluster, near cache on, req/s ÷ tessera/Redis standalone, \
                 near cache on, req/s = **{ratio:.2}×** (median of per-round ratios).\n"
            )
            .ok();
        }
        for row in &self.rows {
            let Some(near) = row.near_cache_total() else { continue };
            writeln!(
                text,
                "Near cache, {}: {} lookups in the measured windows (all rounds; a verification looks up \
                 `token:{{t}}` and `token_list:{{uid}}`), {} misses ({:.2} %), each a read from Redis.\n",
                row.title,
                thousands(near.lookups() as f64),
                thousands(near.misses as f64),
                near.misses as f64 * 100.0 / near.lookups() as f64,
            )
            .ok();
        }
        if let Some(revocation) = &self.revocation {
            writeln!(
                text,
                "### Revocation propagation across two instances\n\n\
                 Two tessera instances with the near cache on, on the same Redis. For each of {} fresh \
                 tokens: verified on both (so both cache it), revoked with `POST /api/logout` on \
                 instance A, then `GET /auth/verify` polled on both, one request after another, until \
                 both answer 401 (deadline {:.0} ms); the time runs from the return of the logout.\n\n\
                 | tokens | p50 | p99 | max | still accepted at the deadline |\n|---|---|---|---|---|\n\
                 | {} | {} | {} | {} | {} |\n",
                thousands(revocation.tokens as f64),
                revocation.deadline_ms,
                thousands(revocation.tokens as f64),
                milliseconds(revocation.percentile_ms(50.0)),
                milliseconds(revocation.percentile_ms(99.0)),
                milliseconds(revocation.percentile_ms(100.0)),
                revocation.not_refused,
            )
            .ok();
        }
        text.push_str("### Budgets\n\n| budget | measured | threshold | |\n|---|---|---|---|\n");
        for budget in self.budgets() {
            let measured = budget.measured.map_or("—".to_owned(), |value| format!("{value:.2}{}", budget.unit));
            let sign = match budget.relation {
                Relation::AtLeast => "≥",
                Relation::AtMost => "≤",
                Relation::Equal => "=",
            };
            let threshold = match &budget.derivation {
                Some(derivation) => format!("{sign} {derivation} = {:.2}{}", budget.threshold, budget.unit),
                None => format!("{sign} {:.2}{}", budget.threshold, budget.unit),
            };
            writeln!(
                text,
                "| {} | {measured} | {threshold} | {} |",
                budget.name,
                if budget.met() { "met" } else { "MISSED" }
            )
            .ok();
        }
        text.push_str("\nA missed budget is reported, not a failure: the run measured what it measured.\n");
        if let Some(durability) = &self.durability {
            text.push_str(&durability.markdown());
        }
        if let Some(toolkit) = &self.toolkit {
            writeln!(
                text,
                "\n## Toolkit micro-benchmark (`cargo bench -p cache-toolkit --bench toolkit`)\n\n{}",
                toolkit.trim()
            )
            .ok();
        }
        text
    }

    /// Every number of the run, per row and per round.
    pub(super) fn json(&self) -> String {
        let budgets = self.budgets();
        let report = ReportJson {
            quick: self.setup.quick,
            wall_seconds: self.wall_seconds,
            setup: &self.setup,
            machine: &self.machine,
            rows: self.rows.iter().map(RowJson::of).collect(),
            fastest_naive: self.fastest_naive().map(|row| row.key),
            cluster_near_on_over_standalone_near_on: self.cluster_near_on_over_standalone(),
            revocation: self.revocation.as_ref().map(RevocationJson::of),
            budgets: budgets.iter().map(BudgetJson::of).collect(),
            durability: self.durability.as_ref(),
        };
        let mut text = serde_json::to_string_pretty(&report)
            .unwrap_or_else(|_| unreachable!("the report's types have string keys and finite-or-null numbers"));
        text.push('\n');
        text
    }
}

/// The median over rounds of `row`'s req/s ÷ `reference`'s req/s in the same round; `None`
/// when either row is absent or has no rounds.
fn median_ratio_by_round(row: Option<&Row>, reference: Option<&Row>) -> Option<f64> {
    let (row, reference) = row.zip(reference)?;
    median(
        row.rounds
            .iter()
            .zip(&reference.rounds)
            .map(|(row, reference)| row.requests_per_second / reference.requests_per_second),
    )
}

/// The median; `None` for no values.
pub(super) fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut sorted: Vec<f64> = values.filter(|value| value.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) { (sorted[middle - 1] + sorted[middle]) / 2.0 } else { sorted[middle] })
}

/// `numerator / denominator`, 0 for no denominator.
pub(super) fn per(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 { 0.0 } else { numerator as f64 / denominator as f64 }
}

/// `45,123` (rounded to a whole number).
pub(super) fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "—".to_owned();
    }
    let digits = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value < 0.0 { format!("-{grouped}") } else { grouped }
}

fn milliseconds(value: Option<f64>) -> String {
    value.map_or("—".to_owned(), |ms| format!("{ms:.2} ms"))
}
