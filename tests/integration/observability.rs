//! `examples/observability/`: the alerting and recording rules pass `promtool check rules`,
//! their unit tests pass `promtool test rules` (every alert has a series that fires it and one
//! that must not), and every metric name and label value the rules and the dashboard use is one
//! a running tessera's `/metrics` exposes, so a renamed metric fails here, not in production.

use std::{collections::BTreeSet, path::PathBuf, process::Command};

use hyper::{Method, StatusCode};

use tests::{required_env, send, spawn_app};

const METRICS_KEY: &str = "observability-metrics-key-0123456789";

fn observability_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/observability")
}

fn promtool(args: &[&str]) {
    let output = Command::new(required_env("TESSERA_TEST_PROMTOOL"))
        .args(args)
        .current_dir(observability_dir())
        .output()
        .unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {args:?} failed:\n{printed}");
}

#[test]
fn the_rules_are_valid_and_every_alert_passes_its_unit_tests() {
    promtool(&["check", "rules", "tessera-rules.yml"]);
    promtool(&["test", "rules", "tessera-rules.test.yml"]);
}

/// Every `tessera_…` name in `text` (recording rules' own names use `:` and are left out).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("tessera_") {
        let before = rest[..at].chars().next_back();
        let name: String = rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            names.insert(name.clone());
        }
        rest = &rest[at + name.len()..];
    }
    names
}

/// Every `label="value"`, `label!="value"` and each alternative of `label=~"a|b"` in `text`,
/// for the labels whose every value `/metrics` always shows (a `status` is an HTTP code, shown
/// once some request was answered with it).
fn label_values(text: &str) -> BTreeSet<String> {
    let mut pairs = BTreeSet::new();
    for label in ["route", "kind", "event", "cause", "outcome"] {
        for operator in ["=\"", "!=\"", "=~\""] {
            let marker = format!("{label}{operator}");
            for (at, _) in text.match_indices(&marker) {
                let value = &text[at + marker.len()..];
                let value = &value[..value.find('"').unwrap_or(0)];
                for alternative in value.split('|').filter(|alternative| !alternative.is_empty()) {
                    pairs.insert(format!("{label}=\"{alternative}\""));
                }
            }
        }
    }
    pairs
}

#[tokio::test]
async fn every_metric_the_rules_and_the_dashboard_use_is_exposed() {
    let app = spawn_app(&[("TESSERA_STORE", "embedded"), ("TESSERA_METRICS_KEY", METRICS_KEY)]).await;
    let metrics = send(app.address, Method::GET, "/metrics", &[("x-internal-key", METRICS_KEY)], None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let mut exposed = BTreeSet::new();
    for line in metrics.body.lines() {
        let Some(declared) = line.strip_prefix("# TYPE ") else { continue };
        let mut parts = declared.split(' ');
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else { continue };
        exposed.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                exposed.insert(format!("{name}{suffix}"));
            }
        }
    }
    // Unescaped, as Prometheus reads them (the dashboard is JSON: quotes inside strings escaped).
    let rules = std::fs::read_to_string(observability_dir().join("tessera-rules.yml")).unwrap();
    let dashboard =
        std::fs::read_to_string(observability_dir().join("tessera-dashboard.json")).unwrap().replace("\\\"", "\"");
    for (file, text) in [("tessera-rules.yml", &rules), ("tessera-dashboard.json", &dashboard)] {
        let used = metric_names(text);
        assert!(used.len() >= 8, "{file}: only {used:?}");
        for name in &used {
            assert!(exposed.contains(name), "{file} uses {name}, which /metrics does not expose");
        }
        for pair in label_values(text) {
            assert!(metrics.body.contains(&pair), "{file} selects {pair}, which /metrics never shows");
        }
    }
    app.stop().await;
}
