//! The JSON report's shape: serde-derived views of a `Report`'s rows, rounds, probes,
//! revocation and budgets, each with the figures derived from them (medians, percentiles,
//! per-request rates), so `target/bench/report.json` names every number the Markdown shows.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Budget, Load, Machine, Relation, Revocation, Round, RoundTrips, Row, Setup};

/// The JSON report: the run's numbers and what is derived from them.
#[derive(Serialize)]
pub(super) struct ReportJson<'a> {
    pub(super) quick: bool,
    pub(super) wall_seconds: f64,
    pub(super) setup: &'a Setup,
    pub(super) machine: &'a Machine,
    pub(super) rows: Vec<RowJson<'a>>,
    pub(super) fastest_naive: Option<&'static str>,
    /// Tessera on the cluster over tessera on standalone Redis, both near cache on
    /// ([`super::Report::cluster_near_on_over_standalone`]); informational, no budget.
    pub(super) cluster_near_on_over_standalone_near_on: Option<f64>,
    pub(super) revocation: Option<RevocationJson<'a>>,
    pub(super) budgets: Vec<BudgetJson<'a>>,
    pub(super) durability: Option<&'a super::DurabilityReport>,
}

#[derive(Serialize)]
pub(super) struct BudgetJson<'a> {
    name: &'a str,
    measured: Option<f64>,
    threshold: f64,
    relation: Relation,
    met: bool,
}

impl<'a> BudgetJson<'a> {
    pub(super) fn of(budget: &'a Budget) -> Self {
        Self {
            name: &budget.name,
            measured: budget.measured,
            threshold: budget.threshold,
            relation: budget.relation,
            met: budget.met(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct RevocationJson<'a> {
    tokens: u64,
    deadline_ms: f64,
    not_refused: u64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    samples_ms: &'a [f64],
}

impl<'a> RevocationJson<'a> {
    pub(super) fn of(revocation: &'a Revocation) -> Self {
        Self {
            tokens: revocation.tokens,
            deadline_ms: revocation.deadline_ms,
            not_refused: revocation.not_refused,
            p50_ms: revocation.percentile_ms(50.0),
            p99_ms: revocation.percentile_ms(99.0),
            max_ms: revocation.percentile_ms(100.0),
            samples_ms: &revocation.samples_ms,
        }
    }
}

#[derive(Serialize)]
pub(super) struct RowJson<'a> {
    key: &'static str,
    title: &'static str,
    load: &'static str,
    pipeline: Option<u32>,
    requests_per_second_median: Option<f64>,
    p50_ms_median: Option<f64>,
    p99_ms_median: Option<f64>,
    ratio_to_ceiling_median: Option<f64>,
    redis_commands_per_request: Option<f64>,
    server_cpu_ms_per_1k_requests_median: Option<f64>,
    redis_cpu_ms_per_1k_requests_median: Option<f64>,
    peak_rss_kib: Option<u64>,
    round_trip_probe: Option<RoundTripsJson<'a>>,
    rounds: Vec<RoundJson<'a>>,
}

impl<'a> RowJson<'a> {
    pub(super) fn of(row: &'a Row) -> Self {
        let (load, pipeline) = match row.load {
            Load::Wrk { valid: true } => ("wrk, valid tokens", None),
            Load::Wrk { valid: false } => ("wrk, tokens that must be refused", None),
            Load::RedisBenchmark { pipeline } => ("redis-benchmark GET", Some(pipeline)),
        };
        Self {
            key: row.key,
            title: row.title,
            load,
            pipeline,
            requests_per_second_median: row.median_rps(),
            p50_ms_median: row.median_p50_ms(),
            p99_ms_median: row.median_p99_ms(),
            ratio_to_ceiling_median: row.median_ratio_to_ceiling(),
            redis_commands_per_request: row.commands_per_request(),
            server_cpu_ms_per_1k_requests_median: row.median_server_cpu(),
            redis_cpu_ms_per_1k_requests_median: row.median_redis_cpu(),
            peak_rss_kib: row.peak_rss_kib,
            round_trip_probe: row.round_trips.as_ref().map(RoundTripsJson::of),
            rounds: row.rounds.iter().map(RoundJson::of).collect(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct RoundJson<'a> {
    requests: u64,
    requests_per_second: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    non_2xx: u64,
    socket_errors: u64,
    ratio_to_ceiling: Option<f64>,
    redis_commands_executed_per_request: f64,
    redis_commands_executed: &'a BTreeMap<String, u64>,
    server_cpu_ms_per_1k_requests: Option<f64>,
    redis_cpu_ms_per_1k_requests: f64,
    near_cache_hits: Option<u64>,
    near_cache_misses: Option<u64>,
}

impl<'a> RoundJson<'a> {
    pub(super) fn of(round: &'a Round) -> Self {
        Self {
            requests: round.requests,
            requests_per_second: round.requests_per_second,
            p50_ms: round.p50_ms,
            p99_ms: round.p99_ms,
            non_2xx: round.non_2xx,
            socket_errors: round.socket_errors,
            ratio_to_ceiling: round.ratio_to_ceiling,
            redis_commands_executed_per_request: round.executed_commands_per_request(),
            redis_commands_executed: &round.executed_commands,
            server_cpu_ms_per_1k_requests: round.server_cpu_ms_per_1k,
            redis_cpu_ms_per_1k_requests: round.redis_cpu_ms_per_1k,
            near_cache_hits: round.near_cache.map(|near| near.hits),
            near_cache_misses: round.near_cache.map(|near| near.misses),
        }
    }
}

#[derive(Serialize)]
pub(super) struct RoundTripsJson<'a> {
    requests: u64,
    seconds: f64,
    statuses: &'a BTreeMap<u16, u64>,
    commands_sent_per_request: f64,
    commands_sent: &'a BTreeMap<String, u64>,
    commands_run_by_scripts: &'a BTreeMap<String, u64>,
    background_commands: &'a BTreeMap<String, u64>,
    background_commands_per_second: f64,
}

impl<'a> RoundTripsJson<'a> {
    pub(super) fn of(trips: &'a RoundTrips) -> Self {
        Self {
            requests: trips.requests,
            seconds: trips.seconds,
            statuses: &trips.statuses,
            commands_sent_per_request: trips.sent_per_request(),
            commands_sent: &trips.commands.sent,
            commands_run_by_scripts: &trips.commands.in_scripts,
            background_commands: &trips.commands.background,
            background_commands_per_second: trips.background_per_second,
        }
    }
}
