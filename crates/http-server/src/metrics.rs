//! [`HttpMetrics`]: requests by route and status, their durations by route, verify outcomes,
//! open connections (and the cap), connections cut, closed or refused, the primary gate, and
//! the cache's own counters (and the embedded store's sizes), rendered as Prometheus text for
//! `GET /metrics`. `examples/observability/` alerts and graphs on these names.
//!
//! Every counter is a lock-free atomic, the request-duration histogram per route included.
//! Labels come from fieldless enums with an `ALL` list (`RouteName`, [`VerifyOutcome`], and the
//! cache's `CacheErrorKind`, `CacheEvent`, `FlushCause`), so every label is rendered, counted or
//! not; a test here pins the route, outcome and error-kind labels dashboards match on.

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use cache_toolkit::{EmbeddedStats, LATENCY_BUCKETS_SECONDS, MetricsSnapshot, PrimaryPools};

use crate::{middleware::VerifyOutcome, route::RouteName};

/// Status codes counted individually; anything else is counted as `other`.
const STATUSES: [u16; 14] = [200, 201, 204, 400, 401, 404, 405, 408, 413, 415, 431, 500, 503, 0];

/// Upper bounds of the request-duration buckets, in seconds (a verification from memory takes
/// well under a millisecond; one that waits for Redis up to the command timeout).
const DURATION_BUCKETS_SECONDS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// One route's request durations: a count per bucket (the last for `+Inf`) and their sum.
#[derive(Debug, Default)]
struct Durations {
    buckets: [AtomicU64; DURATION_BUCKETS_SECONDS.len() + 1],
    sum_micros: AtomicU64,
}

/// Lock-free counters: one atomic per (route, status) and per outcome, so two requests never
/// wait on each other to be counted.
#[derive(Debug, Default)]
pub(crate) struct HttpMetrics {
    requests: [[AtomicU64; STATUSES.len()]; RouteName::ALL.len()],
    outcomes: [AtomicU64; VerifyOutcome::ALL.len()],
    durations: [Durations; RouteName::ALL.len()],
    open_connections: AtomicU64,
    max_connections: AtomicU64,
    slow_request_heads: AtomicU64,
    idle_connections_closed: AtomicU64,
    connections_refused_per_ip: AtomicU64,
}

impl HttpMetrics {
    pub(crate) fn record(&self, route: RouteName, status: u16, outcome: Option<VerifyOutcome>, took: Duration) {
        let status = STATUSES.iter().position(|counted| *counted == status).unwrap_or(STATUSES.len() - 1);
        self.requests[route as usize][status].fetch_add(1, Ordering::Relaxed);
        let durations = &self.durations[route as usize];
        let seconds = took.as_secs_f64();
        let bucket = DURATION_BUCKETS_SECONDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS_SECONDS.len());
        durations.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        durations.sum_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if let Some(outcome) = outcome {
            self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The connection cap, `TESSERA_MAX_CONNECTIONS`, shown beside the open count.
    pub(crate) fn set_max_connections(&self, max: usize) {
        self.max_connections.store(u64::try_from(max).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection was cut because its request head did not arrive in time.
    pub(crate) fn slow_request_head(&self) {
        self.slow_request_heads.fetch_add(1, Ordering::Relaxed);
    }

    /// An idle keep-alive connection was closed to make room for a new one.
    pub(crate) fn idle_connection_closed(&self) {
        self.idle_connections_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// A new connection was refused: its peer held `TESSERA_MAX_CONNECTIONS_PER_IP`, all busy.
    pub(crate) fn connection_refused_per_ip(&self) {
        self.connections_refused_per_ip.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text; `gate_closed`: whether the store's primary gate holds commands now.
    /// `primary_pools`: a cluster's primaries by the state of their pools.
    pub(crate) fn render(
        &self,
        cache: &MetricsSnapshot,
        embedded: Option<EmbeddedStats>,
        primary_pools: Option<PrimaryPools>,
        gate_closed: bool,
    ) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP tessera_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE tessera_http_requests_total counter\n");
        for (route, counts) in RouteName::ALL.iter().zip(&self.requests) {
            for (status, count) in STATUSES.iter().zip(counts) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let status = if *status == 0 { "other".to_owned() } else { status.to_string() };
                    let route = route.label();
                    let _ =
                        writeln!(out, "tessera_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}");
                }
            }
        }
        out.push_str("# HELP tessera_auth_outcomes_total Outcomes of the auth check.\n");
        out.push_str("# TYPE tessera_auth_outcomes_total counter\n");
        for (outcome, count) in VerifyOutcome::ALL.iter().zip(&self.outcomes) {
            let _ = writeln!(
                out,
                "tessera_auth_outcomes_total{{outcome=\"{}\"}} {}",
                outcome.label(),
                count.load(Ordering::Relaxed)
            );
        }
        self.render_durations(&mut out);
        let _ = writeln!(
            out,
            "# HELP tessera_http_connections_open Open HTTP connections (at most TESSERA_MAX_CONNECTIONS).\n\
             # TYPE tessera_http_connections_open gauge\ntessera_http_connections_open {}\n\
             # HELP tessera_http_connections_max The connection cap, TESSERA_MAX_CONNECTIONS.\n\
             # TYPE tessera_http_connections_max gauge\ntessera_http_connections_max {}\n\
             # HELP tessera_store_primary_gate_closed 1 while Redis commands are held because the primary is \
             changing (a sentinel failover, a READONLY reply), else 0.\n\
             # TYPE tessera_store_primary_gate_closed gauge\ntessera_store_primary_gate_closed {}\n\
             # HELP tessera_http_slow_request_heads_total Connections cut because a request head took longer than \
             TESSERA_HEADER_READ_TIMEOUT_MS.\n# TYPE tessera_http_slow_request_heads_total counter\n\
             tessera_http_slow_request_heads_total {}\n\
             # HELP tessera_http_idle_connections_closed_total Idle keep-alive connections closed to make room for \
             new ones (TESSERA_MAX_CONNECTIONS, TESSERA_MAX_CONNECTIONS_PER_IP).\n\
             # TYPE tessera_http_idle_connections_closed_total counter\n\
             tessera_http_idle_connections_closed_total {}\n\
             # HELP tessera_http_connections_refused_total New connections refused because their peer held \
             TESSERA_MAX_CONNECTIONS_PER_IP busy connections.\n# TYPE tessera_http_connections_refused_total counter\n\
             tessera_http_connections_refused_total {}",
            self.open_connections.load(Ordering::Relaxed),
            self.max_connections.load(Ordering::Relaxed),
            u8::from(gate_closed),
            self.slow_request_heads.load(Ordering::Relaxed),
            self.idle_connections_closed.load(Ordering::Relaxed),
            self.connections_refused_per_ip.load(Ordering::Relaxed),
        );
        render_cache(&mut out, cache);
        if let Some(pools) = primary_pools {
            let _ = writeln!(
                out,
                "# HELP tessera_redis_cluster_primaries Primaries the cluster's slot map names, by the state of the \
                 pool kept for each: connected (every connection up) or connecting (reconnecting with backoff, or \
                 being rebuilt).\n# TYPE tessera_redis_cluster_primaries gauge\n\
                 tessera_redis_cluster_primaries{{state=\"connected\"}} {}\n\
                 tessera_redis_cluster_primaries{{state=\"connecting\"}} {}",
                pools.connected, pools.connecting,
            );
        }
        if let Some(embedded) = embedded {
            let _ = writeln!(
                out,
                "# HELP tessera_embedded_keys Keys the embedded store holds (expired ones not yet swept included).\n\
                 # TYPE tessera_embedded_keys gauge\ntessera_embedded_keys {}\n\
                 # HELP tessera_embedded_expiry_index_entries Entries of the embedded store's expiry index: one per \
                 key with a TTL, whatever its TTL was renewed.\n# TYPE tessera_embedded_expiry_index_entries gauge\n\
                 tessera_embedded_expiry_index_entries {}",
                embedded.keys, embedded.expiry_index,
            );
        }
        out
    }
}

impl HttpMetrics {
    fn render_durations(&self, out: &mut String) {
        out.push_str(
            "# HELP tessera_http_request_duration_seconds Time from a request's head to its answer, by route.\n",
        );
        out.push_str("# TYPE tessera_http_request_duration_seconds histogram\n");
        for route in RouteName::ALL {
            let durations = &self.durations[route as usize];
            let label = route.label();
            let mut cumulative = 0;
            for (index, count) in durations.buckets.iter().enumerate() {
                cumulative += count.load(Ordering::Relaxed);
                let bound = DURATION_BUCKETS_SECONDS.get(index).map_or_else(|| "+Inf".to_owned(), f64::to_string);
                let _ = writeln!(
                    out,
                    "tessera_http_request_duration_seconds_bucket{{route=\"{label}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let sum = durations.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "tessera_http_request_duration_seconds_sum{{route=\"{label}\"}} {sum}");
            let _ = writeln!(out, "tessera_http_request_duration_seconds_count{{route=\"{label}\"}} {cumulative}");
        }
    }
}

fn render_cache(out: &mut String, cache: &MetricsSnapshot) {
    out.push_str("# HELP tessera_store_operation_seconds Latency of cache store operations.\n");
    out.push_str("# TYPE tessera_store_operation_seconds histogram\n");
    let mut cumulative = 0;
    for (bound, count) in LATENCY_BUCKETS_SECONDS.iter().zip(&cache.latency_buckets) {
        cumulative += count;
        let _ = writeln!(out, "tessera_store_operation_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += cache.latency_buckets.last().copied().unwrap_or(0);
    let _ = writeln!(out, "tessera_store_operation_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "tessera_store_operation_seconds_sum {}", cache.latency_sum.as_secs_f64());
    let _ = writeln!(out, "tessera_store_operation_seconds_count {}", cache.operations);
    out.push_str("# HELP tessera_store_errors_total Failed store operations by kind.\n");
    out.push_str("# TYPE tessera_store_errors_total counter\n");
    for (kind, count) in &cache.errors {
        let label = kind.as_str().replace(' ', "_");
        let _ = writeln!(out, "tessera_store_errors_total{{kind=\"{label}\"}} {count}");
    }
    for (name, help, value) in [
        ("tessera_cache_hits_total", "Reads that found their key.", cache.hits),
        ("tessera_cache_misses_total", "Reads whose key was missing.", cache.misses),
        ("tessera_store_slow_operations_total", "Store operations slower than the threshold.", cache.slow_operations),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
    }
    out.push_str("# HELP tessera_cache_events_total Near cache, cache-aside protections and locks, by event.\n");
    out.push_str("# TYPE tessera_cache_events_total counter\n");
    for (event, count) in &cache.events {
        let _ = writeln!(out, "tessera_cache_events_total{{event=\"{}\"}} {count}", event.name());
    }
    out.push_str("# HELP tessera_near_cache_flushes_total Near-cache flushes of a connection's entries, by cause.\n");
    out.push_str("# TYPE tessera_near_cache_flushes_total counter\n");
    for (cause, count) in &cache.flushes {
        let _ = writeln!(out, "tessera_near_cache_flushes_total{{cause=\"{}\"}} {count}", cause.name());
    }
    let _ = writeln!(
        out,
        "# HELP tessera_near_cache_bytes Bytes the near cache holds.\n# TYPE tessera_near_cache_bytes gauge\ntessera_near_cache_bytes {}",
        cache.near_bytes
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cache_toolkit::CacheErrorKind;

    use super::*;

    /// The labels are what dashboards and alerts match on: each route, outcome and error kind
    /// is counted under its own, exactly as written here.
    #[test]
    fn every_route_outcome_and_error_kind_is_counted_under_its_label() {
        let metrics = HttpMetrics::default();
        for route in RouteName::ALL {
            metrics.record(route, 200, None, Duration::from_millis(3));
        }
        for outcome in VerifyOutcome::ALL {
            metrics.record(RouteName::Verify, 401, Some(outcome), Duration::from_micros(300));
        }
        let cache = MetricsSnapshot {
            operations: 0,
            hits: 0,
            misses: 0,
            errors: CacheErrorKind::ALL.iter().zip(1..).map(|(kind, count)| (*kind, count)).collect(),
            slow_operations: 0,
            latency_buckets: Vec::new(),
            latency_sum: Duration::ZERO,
            events: Vec::new(),
            flushes: Vec::new(),
            near_bytes: 0,
        };
        let text = metrics.render(&cache, None, None, false);
        let counted: Vec<&str> = text
            .lines()
            .filter(|line| {
                ["tessera_http_requests_total{", "tessera_auth_outcomes_total{", "tessera_store_errors_total{"]
                    .iter()
                    .any(|name| line.starts_with(name))
            })
            .collect();
        let expected = [
            r#"tessera_http_requests_total{route="healthz",status="200"} 1"#,
            r#"tessera_http_requests_total{route="readyz",status="200"} 1"#,
            r#"tessera_http_requests_total{route="openapi",status="200"} 1"#,
            r#"tessera_http_requests_total{route="auth_verify",status="200"} 1"#,
            r#"tessera_http_requests_total{route="auth_verify",status="401"} 7"#,
            r#"tessera_http_requests_total{route="api_me",status="200"} 1"#,
            r#"tessera_http_requests_total{route="api_logout",status="200"} 1"#,
            r#"tessera_http_requests_total{route="internal_issue_session",status="200"} 1"#,
            r#"tessera_http_requests_total{route="internal_user_sessions",status="200"} 1"#,
            r#"tessera_http_requests_total{route="internal_user_session",status="200"} 1"#,
            r#"tessera_http_requests_total{route="internal_introspect",status="200"} 1"#,
            r#"tessera_http_requests_total{route="metrics",status="200"} 1"#,
            r#"tessera_http_requests_total{route="unknown",status="200"} 1"#,
            r#"tessera_auth_outcomes_total{outcome="public"} 1"#,
            r#"tessera_auth_outcomes_total{outcome="internal"} 1"#,
            r#"tessera_auth_outcomes_total{outcome="internal_refused"} 1"#,
            r#"tessera_auth_outcomes_total{outcome="valid"} 1"#,
            r#"tessera_auth_outcomes_total{outcome="rejected"} 1"#,
            r#"tessera_auth_outcomes_total{outcome="invalid"} 1"#,
            r#"tessera_auth_outcomes_total{outcome="unavailable"} 1"#,
            r#"tessera_store_errors_total{kind="unavailable"} 1"#,
            r#"tessera_store_errors_total{kind="wrong_type"} 2"#,
            r#"tessera_store_errors_total{kind="bad_stored_data"} 3"#,
            r#"tessera_store_errors_total{kind="script_error"} 4"#,
            r#"tessera_store_errors_total{kind="rejected"} 5"#,
            r#"tessera_store_errors_total{kind="invalid_input"} 6"#,
        ];
        assert_eq!(counted, expected);
    }

    #[test]
    fn outcomes_are_listed_once_in_declaration_order() {
        for (index, outcome) in VerifyOutcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, index, "{outcome:?} is out of place in VerifyOutcome::ALL");
        }
    }

    /// A cluster's primaries are shown by the state of their pools; nothing is shown for a
    /// store that is not a cluster Tessera routes itself.
    #[test]
    fn a_clusters_primary_pools_are_shown_by_state() {
        let metrics = HttpMetrics::default();
        let cache = MetricsSnapshot::default();
        let pools = PrimaryPools { connected: 2, connecting: 1 };
        let text = metrics.render(&cache, None, Some(pools), false);
        assert!(text.contains("tessera_redis_cluster_primaries{state=\"connected\"} 2\n"), "{text}");
        assert!(text.contains("tessera_redis_cluster_primaries{state=\"connecting\"} 1\n"), "{text}");
        assert!(!metrics.render(&cache, None, None, false).contains("tessera_redis_cluster_primaries"));
    }
}
