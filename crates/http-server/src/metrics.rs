//! [`HttpMetrics`]: requests by route and status, verify outcomes, and the cache's own counters,
//! rendered as Prometheus text for `GET /metrics`.

use std::{collections::BTreeMap, fmt::Write, sync::Mutex};

use cache_toolkit::{LATENCY_BUCKETS_SECONDS, MetricsSnapshot};

use crate::middleware::VerifyOutcome;

#[derive(Debug, Default)]
pub(crate) struct HttpMetrics {
    /// Route labels and outcome labels are `'static` and bounded, so the maps stay small. The
    /// std mutex is held only to bump a counter, never across an `.await`.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    outcomes: Mutex<BTreeMap<&'static str, u64>>,
}

impl HttpMetrics {
    pub(crate) fn record(&self, route: &'static str, status: u16, outcome: Option<VerifyOutcome>) {
        let mut requests = self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *requests.entry((route, status)).or_default() += 1;
        drop(requests);
        if let Some(outcome) = outcome {
            let mut outcomes = self.outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *outcomes.entry(outcome.label()).or_default() += 1;
        }
    }

    pub(crate) fn render(&self, cache: &MetricsSnapshot) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP tessera_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE tessera_http_requests_total counter\n");
        let requests = self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for ((route, status), count) in requests {
            let _ = writeln!(out, "tessera_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}");
        }
        out.push_str("# HELP tessera_auth_outcomes_total Outcomes of the auth check.\n");
        out.push_str("# TYPE tessera_auth_outcomes_total counter\n");
        let outcomes = self.outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for (outcome, count) in outcomes {
            let _ = writeln!(out, "tessera_auth_outcomes_total{{outcome=\"{outcome}\"}} {count}");
        }
        render_cache(&mut out, cache);
        out
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
}
