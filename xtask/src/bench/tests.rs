//! The benchmark's parsers and arithmetic on real samples of what wrk, redis-benchmark, Redis
//! and `/proc` print, so a format change is caught here rather than as a wrong table.

use std::collections::{BTreeMap, BTreeSet};

use super::durability::{DurabilityReport, IssueRow};
use super::load::{self, SocketErrors};
use super::probe;
use super::redis_stats::{self, CommandCounts, MonitoredCommand};
use super::report::{self, Budget, Load, NearCacheCounts, Relation, Report, Revocation, Round, RoundTrips, Row, Setup};
use super::revocation;
use super::servers;
use super::soak;

const WRK_SAMPLE: &str = r#"Running 3s test @ http://127.0.0.1:40000/auth/verify
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.71ms  834.19us  17.20ms   87.62%
    Req/Sec    19.20k     1.20k   21.73k    70.00%
  Latency Distribution
     50%  512.00us
     75%    1.89ms
     90%    2.47ms
     99%    4.12ms
  114676 requests in 3.00s, 14.87MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 114676
Requests/sec:  38208.29
Transfer/sec:      4.95MB

xtask-wrk-report {"requests":114676,"duration_us":3001391,"p50_us":512,"p99_us":4120,"non_2xx":114676,"socket_errors":{"connect":0,"read":3,"write":0,"timeout":1}}
"#;

/// [`WRK_SAMPLE`] with no error of any kind.
fn clean_wrk_sample() -> String {
    WRK_SAMPLE
        .replace(r#""non_2xx":114676"#, r#""non_2xx":0"#)
        .replace(r#""read":3,"write":0,"timeout":1"#, r#""read":0,"write":0,"timeout":0"#)
}

#[test]
fn wrk_report_is_read_from_the_done_line() {
    let report = load::parse_wrk(WRK_SAMPLE).expect("the sample parses");
    assert_eq!(report.requests, 114_676);
    assert!((report.requests_per_second - 114_676.0 / 3.001_391).abs() < 1e-6, "{}", report.requests_per_second);
    assert!((report.p50_ms - 0.512).abs() < 1e-9, "{}", report.p50_ms);
    assert!((report.p99_ms - 4.12).abs() < 1e-9, "{}", report.p99_ms);
    assert_eq!(report.non_2xx, 114_676);
    assert_eq!(report.socket_errors, SocketErrors { connect: 0, read: 3, write: 0, timeout: 1 });
    assert_eq!(report.socket_errors.total(), 4);
    let clean = load::parse_wrk(&clean_wrk_sample()).expect("the sample parses");
    assert_eq!((clean.non_2xx, clean.socket_errors.total()), (0, 0));
}

#[test]
fn a_wrk_run_without_the_done_line_or_with_a_bad_one_is_refused() {
    let human_only: String = WRK_SAMPLE.lines().filter(|line| !line.starts_with("xtask-wrk-report")).collect();
    let error = load::parse_wrk(&human_only).expect_err("no done line");
    assert!(error.to_string().contains("done()"), "{error}");
    assert!(load::parse_wrk(&WRK_SAMPLE.replace(r#""p99_us":4120,"#, "")).is_err(), "a field missing");
    assert!(load::parse_wrk(&WRK_SAMPLE.replace("3001391", "0")).is_err(), "a run of no time");
}

#[test]
fn the_wrk_script_reports_through_done() {
    let dir = std::env::temp_dir().join(format!("xtask-wrk-script-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let script = dir.join("verify.lua");
    load::write_wrk_script(&script, &dir.join("tokens.txt")).expect("the script is written");
    let text = std::fs::read_to_string(&script).expect("the script is readable");
    std::fs::remove_dir_all(&dir).ok();
    assert!(text.contains("function done(summary, latency, requests)"), "{text}");
    assert!(text.contains(r#"local report_marker = "xtask-wrk-report ""#), "{text}");
    for field in ["requests", "duration_us", "p50_us", "p99_us", "non_2xx", "socket_errors"] {
        assert!(text.contains(&format!(r#""{field}":"#)), "{field} is not printed: {text}");
    }
}

#[test]
fn redis_benchmark_csv_is_read() {
    let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                \"GET\",\"69930.07\",\"0.392\",\"0.096\",\"0.343\",\"0.647\",\"1.079\",\"3.103\"\n";
    let report = load::parse_redis_benchmark_csv(text).expect("the sample parses");
    assert!((report.requests_per_second - 69_930.07).abs() < 1e-6);
    assert_eq!(report.p50_ms, Some(0.343));
    assert_eq!(report.p99_ms, Some(1.079));
    let old = "\"test\",\"rps\"\n\"GET\",\"1000.5\"\n";
    let report = load::parse_redis_benchmark_csv(old).expect("the old format parses");
    assert_eq!((report.requests_per_second, report.p50_ms, report.p99_ms), (1000.5, None, None));
}

#[test]
fn commandstats_deltas_leave_out_info() {
    let before = redis_stats::parse_commandstats(
        "# Commandstats\r\ncmdstat_get:calls=10,usec=30,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n\
         cmdstat_info:calls=4,usec=118,usec_per_call=29.50,rejected_calls=0,failed_calls=0\r\n",
    );
    assert_eq!(before, BTreeMap::from([("get".to_owned(), 10)]));
    let after = redis_stats::parse_commandstats(
        "cmdstat_get:calls=25,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0\n\
         cmdstat_evalsha:calls=5,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0\n\
         cmdstat_info:calls=6,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0\n",
    );
    let delta = redis_stats::calls_between(&before, &after);
    assert_eq!(delta, BTreeMap::from([("evalsha".to_owned(), 5), ("get".to_owned(), 15)]));
}

#[test]
fn monitor_lines_tell_clients_from_scripts() {
    let cases = [
        (
            "1795661552.708727 [0 127.0.0.1:44478] \"EVALSHA\" \"abc\" \"2\" \"token:x\"",
            Some(MonitoredCommand {
                from_script: false,
                client_port: Some(44_478),
                command: "evalsha".to_owned(),
                first_argument: Some("abc".to_owned()),
            }),
        ),
        (
            "1795661552.708775 [0 lua] \"get\" \"token:x\"",
            Some(MonitoredCommand {
                from_script: true,
                client_port: None,
                command: "get".to_owned(),
                first_argument: Some("token:x".to_owned()),
            }),
        ),
        (
            "1795661552.717340 [0 unix:/tmp/redis.sock] \"set\" \"k\" \"a b\\\"c\"",
            Some(MonitoredCommand {
                from_script: false,
                client_port: None,
                command: "set".to_owned(),
                first_argument: Some("k".to_owned()),
            }),
        ),
        ("OK", None),
    ];
    for (line, expected) in cases {
        assert_eq!(redis_stats::parse_monitor_line(line), expected, "for {line:?}");
    }
}

#[test]
fn info_fields_are_found() {
    let text = "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\n";
    assert_eq!(redis_stats::info_field(text, "process_id"), Some("4242"));
    assert_eq!(redis_stats::info_field(text, "redis_version"), Some("7.0.15"));
    assert_eq!(redis_stats::info_field(text, "redis"), None);
}

#[test]
fn proc_stat_and_status_are_read() {
    let stat = "4242 (tokio (runtime) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 37 0 0 20 0 3 0 100 0 0";
    assert_eq!(servers::parse_cpu_ticks(stat), Some(187));
    assert_eq!(servers::parse_cpu_ticks("garbage"), None);
    let status = "Name:\ttessera\nVmPeak:\t  100000 kB\nVmHWM:\t   18432 kB\nVmRSS:\t   12000 kB\n";
    assert_eq!(servers::parse_status_kib(status, "VmHWM:"), Some(18_432));
    assert_eq!(servers::parse_status_kib(status, "VmRSS:"), Some(12_000));
    assert_eq!(servers::parse_status_kib(status, "VmSwap:"), None);
}

#[test]
fn metrics_are_read_by_name_and_labels() {
    let text = "# HELP tessera_embedded_keys Keys.\n# TYPE tessera_embedded_keys gauge\ntessera_embedded_keys 20000\n\
                tessera_embedded_keys_other 3\ntessera_embedded_expiry_index_entries 19998\n\
                tessera_cache_events_total{event=\"near_hits\"} 41\ntessera_cache_events_total{event=\"near_misses\"} 2\n";
    assert_eq!(probe::metric(text, "tessera_embedded_keys"), Some(20_000));
    assert_eq!(probe::metric(text, "tessera_embedded_expiry_index_entries"), Some(19_998));
    assert_eq!(probe::metric(text, "tessera_http_connections_open"), None);
    assert_eq!(probe::metric(text, r#"tessera_cache_events_total{event="near_misses"}"#), Some(2));
    assert_eq!(probe::metric(text, "tessera_cache_events_total"), None, "a labelled metric needs its labels");
}

#[test]
fn the_soak_fails_on_errors_a_growing_index_or_growing_memory() {
    let clean = load::parse_wrk(&clean_wrk_sample()).expect("the sample parses");
    let sample = |at_seconds, rss_kib, expiry_index| soak::Sample { at_seconds, rss_kib, keys: 20_000, expiry_index };
    let flat = [sample(5.0, 40_000, 20_000), sample(10.0, 44_000, 20_000), sample(15.0, 43_000, 19_990)];
    assert_eq!(soak::problems(&clean, &flat), Vec::<String>::new());
    let markdown = soak::markdown(15, &clean, &flat);
    assert!(markdown.contains("| RSS | 39.1 MiB | 42.0 MiB | 43.0 MiB |"), "{markdown}");
    assert!(markdown.contains("| expiry-index entries | 20000 | 19990 | 20000 |"), "{markdown}");

    let failing = load::parse_wrk(WRK_SAMPLE).expect("the sample parses");
    assert_eq!(soak::problems(&failing, &flat).len(), 1, "non-2xx answers and socket errors");
    let growing_index = [sample(5.0, 40_000, 20_000), sample(10.0, 40_000, 35_000)];
    assert!(soak::problems(&clean, &growing_index)[0].contains("35000 entries for 20000 keys"));
    let growing_memory = [sample(5.0, 40_000, 20_000), sample(10.0, 60_000, 20_000)];
    assert!(soak::problems(&clean, &growing_memory)[0].contains("RSS grew 50 %"));
    assert!(soak::problems(&clean, &flat[..1])[0].contains("at least 15 s"), "one sample shows no trend");
}

#[test]
fn tokens_look_like_tessera_tokens_or_are_malformed() {
    assert_eq!(probe::base64url(b""), "");
    assert_eq!(probe::base64url(b"f"), "Zg");
    assert_eq!(probe::base64url(b"fo"), "Zm8");
    assert_eq!(probe::base64url(b"foo"), "Zm9v");
    assert_eq!(probe::base64url(&[0xfb, 0xff, 0xbf]), "-_-_");
    let unknown = probe::unknown_tokens(50).expect("urandom");
    assert_eq!(unknown.len(), 50);
    let base64url =
        |token: &String| token.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    assert!(unknown.iter().all(|token| token.len() == 43 && base64url(token)), "{unknown:?}");
    let malformed = probe::malformed_tokens(50).expect("urandom");
    assert!(malformed.iter().all(|token| token.contains('*') || token.len() < 16), "{malformed:?}");
    assert!(malformed.iter().any(|token| token.contains('*')) && malformed.iter().any(|token| token.len() == 8));
}

#[test]
fn medians_and_numbers() {
    assert_eq!(report::median([3.0, 1.0, 2.0].into_iter()), Some(2.0));
    assert_eq!(report::median([4.0, 1.0, 2.0, 3.0].into_iter()), Some(2.5));
    assert_eq!(report::median(std::iter::empty()), None);
    assert_eq!(report::thousands(1_234_567.4), "1,234,567");
    assert_eq!(report::thousands(999.6), "1,000");
    assert_eq!(report::thousands(12.0), "12");
}

#[test]
fn budgets_compare_as_stated() {
    let budget = |measured, threshold, relation| Budget {
        name: "x".to_owned(),
        measured: Some(measured),
        threshold,
        relation,
        unit: "",
        derivation: None,
    };
    assert!(budget(1.3, 1.3, Relation::AtLeast).met());
    assert!(!budget(1.29, 1.3, Relation::AtLeast).met());
    assert!(budget(64.0, 64.0, Relation::AtMost).met());
    assert!(!budget(64.1, 64.0, Relation::AtMost).met());
    assert!(budget(1.0, 1.0, Relation::Equal).met());
    assert!(!budget(2.0, 1.0, Relation::Equal).met());
    assert!(!Budget { measured: None, ..budget(1.0, 1.0, Relation::Equal) }.met());
}

/// A two-round report with made-up numbers: the budgets and the table follow from them.
#[test]
fn the_report_checks_the_budgets_and_names_every_row() {
    let round = |rps: f64, p99: f64| Round {
        requests: 1_000,
        requests_per_second: rps,
        p50_ms: Some(p99 / 4.0),
        p99_ms: Some(p99),
        executed_commands: BTreeMap::from([("get".to_owned(), 1_000)]),
        server_cpu_ms_per_1k: Some(40.0),
        redis_cpu_ms_per_1k: 10.0,
        ..Round::default()
    };
    let trips = |sent: &[(&str, u64)], heartbeats: u64| {
        let counted =
            |commands: &[(&str, u64)]| commands.iter().map(|(name, count)| ((*name).to_owned(), *count)).collect();
        let scripted: &[(&str, u64)] =
            if sent.iter().any(|(name, _)| *name == "evalsha") { &[("get", 1_000), ("lpos", 1_000)] } else { &[] };
        let background = if heartbeats > 0 { counted(&[("pexpire", heartbeats)]) } else { BTreeMap::new() };
        RoundTrips {
            requests: 1_000,
            seconds: 0.5,
            statuses: BTreeMap::from([(200, 1_000)]),
            commands: CommandCounts { sent: counted(sent), in_scripts: counted(scripted), background },
            background_per_second: heartbeats as f64 / 0.5,
            background_names: if heartbeats > 0 { BTreeSet::from(["pexpire".to_owned()]) } else { BTreeSet::new() },
        }
    };
    let row = |key, rates: [(f64, f64); 2], sent: &[(&str, u64)], heartbeats, rss_kib| {
        let mut row = Row::new(key, key, Load::Wrk { valid: true });
        row.rounds = rates.iter().map(|(rps, p99)| round(*rps, *p99)).collect();
        row.round_trips = Some(trips(sent, heartbeats));
        row.peak_rss_kib = Some(rss_kib);
        row
    };
    let naive_commands = &[("get", 1_000), ("lrange", 1_000)];
    let cluster_commands = &[("get", 1_000), ("lpos", 1_000)];
    let mut rows = vec![
        row(report::CEILING, [(40_000.0, 2.0), (42_000.0, 2.2)], &[], 0, 4_000),
        row(report::NAIVE_POOL_4, [(10_000.0, 9.0), (11_000.0, 9.0)], naive_commands, 0, 6_000),
        row(report::NAIVE_TIMEOUT, [(8_000.0, 9.0), (9_500.0, 9.0)], naive_commands, 0, 6_000),
        row(report::TESSERA_NEAR_OFF, [(15_000.0, 5.0), (16_500.0, 6.0)], &[("evalsha", 1_000)], 0, 20_000),
        row(report::TESSERA_NEAR_ON, [(32_000.0, 3.0), (33_000.0, 7.0)], &[], 2, 30_000),
        row(report::TESSERA_EMBEDDED, [(30_000.0, 3.0), (31_000.0, 3.0)], &[], 0, 70_000),
        // Faster than every standalone naive row, yet no standalone reference.
        row(report::NAIVE_CLUSTER, [(11_000.0, 9.0), (13_000.0, 9.0)], naive_commands, 0, 100_000),
        row(report::TESSERA_CLUSTER_NEAR_OFF, [(16_500.0, 6.0), (15_600.0, 6.0)], cluster_commands, 0, 100_000),
        row(report::TESSERA_CLUSTER_NEAR_ON, [(28_000.0, 4.0), (30_000.0, 4.0)], &[], 4, 100_000),
    ];
    rows[4].rounds[0].near_cache = Some(NearCacheCounts { hits: 63_000, misses: 1_000 });
    rows[4].rounds[1].near_cache = Some(NearCacheCounts { hits: 66_000, misses: 0 });
    rows[8].rounds[0].near_cache = Some(NearCacheCounts { hits: 55_000, misses: 1_000 });
    for index in 0..2 {
        let ceiling = rows[0].rounds[index].requests_per_second;
        for row in &mut rows {
            row.rounds[index].ratio_to_ceiling = Some(row.rounds[index].requests_per_second / ceiling);
        }
    }
    let report = Report {
        setup: Setup {
            quick: true,
            rounds: 2,
            seconds: 3,
            warmup_seconds: 1,
            users: 10_000,
            connections: 64,
            wrk_threads: 2,
            probe_requests: 1_000,
            redis_benchmark_requests: 200_000,
            revocation_tokens: 100,
        },
        machine: Default::default(),
        rows,
        toolkit: Some("| comparison | ... |".to_owned()),
        revocation: Some(Revocation {
            tokens: 100,
            samples_ms: (1..=100).map(|sample| f64::from(sample) / 2.0).collect(),
            not_refused: 0,
            deadline_ms: 2_000.0,
        }),
        durability: Some(DurabilityReport {
            issue: vec![
                IssueRow { policy: "memory only", requests_per_second: 30_000.0, p99_ms: 4.0, non_2xx: 0 },
                IssueRow { policy: "everysec", requests_per_second: 24_000.0, p99_ms: 5.0, non_2xx: 0 },
                IssueRow { policy: "always", requests_per_second: 6_000.0, p99_ms: 21.0, non_2xx: 0 },
            ],
            sessions: 1_000_000,
            journal_bytes_per_session: 412.0,
            restart_ms: 3_100.0,
            rss_kib_durable: 600_000,
            rss_kib_memory: 400_000,
        }),
        wall_seconds: 90.0,
    };
    assert_eq!(report.fastest_naive().map(|row| row.key), Some(report::NAIVE_POOL_4));
    let budgets = report.budgets();
    let met: Vec<bool> = budgets.iter().map(Budget::met).collect();
    // Near cache on: 3.1× the fastest naive row, 0.79 of the ceiling, 0 commands per hit. Near
    // cache off: 1.5× naive, 1 command. Embedded: 0.74 of the ceiling. Revocation p99 49.5 ms.
    // p99 5.5 ms and 5 ms ≤ 2 × 2.1 + 2 = 6.2 ms. A restart with 1 million sessions in 3.1 s,
    // 1.5× the memory. RSS 68 MiB (the cluster rows' 98 MiB is not tessera's budget). Cluster,
    // near cache off: 16,500 ÷ 11,000 and 15,600 ÷ 13,000, so 1.35× the naive cluster row.
    assert_eq!(met, [true, true, true, true, true, false, true, true, true, true, true, false, true], "{budgets:#?}");
    let measured = |index: usize| budgets[index].measured.unwrap_or(f64::NAN);
    assert!((measured(0) - 3.1).abs() < 1e-9, "{}", measured(0));
    assert!(budgets[0].name.contains(report::NAIVE_POOL_4), "{}", budgets[0].name);
    assert!((measured(2) - 0.0).abs() < 1e-12);
    assert!((measured(3) - 1.5).abs() < 1e-9);
    assert!((measured(6) - 49.5).abs() < 1e-9);
    assert!((budgets[7].threshold - 6.2).abs() < 1e-9);
    assert!((measured(11) - 68.359_375).abs() < 1e-9, "{}", measured(11));
    assert!((measured(12) - 1.35).abs() < 1e-9, "{}", measured(12));
    assert!(budgets[12].name.starts_with("tessera/cluster, near cache off"), "{}", budgets[12].name);
    let markdown = report.markdown();
    for needle in [
        "| tessera-redis-near-off | 15,750 (15,000–16,500)",
        "| naive-defaults-pool-4 (fastest naive) | 10,500 (10,000–11,000)",
        "| naive-timeout | 8,750 (8,000–9,500)",
        "The fastest of them in this run, by median req/s, is **naive-defaults-pool-4** (10,500 req/s)",
        "1.00 (evalsha → get, lpos)",
        "2.00 (get, lrange)",
        "0.00 + 4.0/s background (pexpire)",
        "| 100 | 25.00 ms | 49.50 ms | 50.00 ms | 0 |",
        "MISSED",
        "Toolkit micro-benchmark",
        "after a discarded 1 s warm-up",
        "Near cache, tessera-redis-near-on: 130,000 lookups in the measured windows",
        "1,000 misses (0.77 %)",
        "## Durability of the embedded store",
        "| always | 6000 | 21.00 ms | 0 |",
        "everysec issues at 0.80× memory only, always at 0.25× everysec.",
        "412 journal bytes per session",
        "1.50× (budget ≤ 2×)",
        "| naive-fred-cluster-pool-4 | 12,000 (11,000–13,000)",
        "| tessera-cluster-near-off | 16,050 (15,600–16,500)",
        "2.00 (get, lpos)",
        "The cluster rows run on a private six-node Redis Cluster",
        "Near cache, tessera-cluster-near-on: 56,000 lookups",
        // 28,000 ÷ 32,000 and 30,000 ÷ 33,000: 0.875 and 0.909.
        "tessera/Redis standalone, near cache on, req/s = **0.89×** (median of per-round ratios)",
        "| tessera/cluster, near cache off, req/s ÷ the naive port on fred's cluster client req/s \
         (median of per-round ratios) | 1.35× | ≥ 1.00× | met |",
    ] {
        assert!(markdown.contains(needle), "{needle:?} not in\n{markdown}");
    }
    let json: serde_json::Value = serde_json::from_str(&report.json()).expect("the report's JSON parses");
    let rows = json["rows"].as_array().expect("rows");
    assert!(rows.iter().any(|row| row["key"] == "naive-timeout"), "{json}");
    let probes: Vec<&serde_json::Value> = rows.iter().map(|row| &row["round_trip_probe"]).collect();
    assert!(probes.iter().any(|probe| probe["commands_sent"] == serde_json::json!({"evalsha": 1000})), "{json}");
    assert!(probes.iter().any(|probe| probe["background_commands"] == serde_json::json!({"pexpire": 2})), "{json}");
    assert_eq!(json["fastest_naive"], "naive-defaults-pool-4");
    let informational = json["cluster_near_on_over_standalone_near_on"].as_f64().unwrap_or(f64::NAN);
    assert!((informational - (28.0 / 32.0 + 30.0 / 33.0) / 2.0).abs() < 1e-9, "{json}");
    assert!(rows.iter().any(|row| row["key"] == report::TESSERA_CLUSTER_NEAR_OFF), "{json}");
    assert_eq!(json["revocation"]["p99_ms"], 49.5);
    let near_on = rows.iter().find(|row| row["key"] == report::TESSERA_NEAR_ON).expect("the near-on row");
    assert_eq!(near_on["rounds"][0]["near_cache_misses"], 1_000, "{json}");
    assert!(!markdown.contains("Near cache, tessera-redis-near-off"), "{markdown}");
    assert!(json["budgets"].as_array().expect("budgets").iter().any(|budget| budget["met"] == false), "{json}");
}

/// The budgets divide by the fastest naive row of the run by median req/s, whichever pool size
/// or setting it ran with: each naive row in turn is made the fastest, while every other naive
/// row has the fastest single round (so neither the first row, nor a fixed one, nor the best
/// round would pass), and a faster row that is not naive is never the reference.
#[test]
fn budgets_are_taken_against_the_fastest_naive_row() {
    let row = |key, rps: [f64; 2]| {
        let mut row = Row::new(key, key, Load::Wrk { valid: true });
        row.rounds = rps.iter().map(|rps| Round { requests_per_second: *rps, ..Round::default() }).collect();
        row
    };
    for fastest in report::NAIVE_ROWS {
        let mut rows: Vec<Row> = report::NAIVE_ROWS
            .into_iter()
            .map(|key| row(key, if key == fastest { [10_000.0, 10_000.0] } else { [12_000.0, 6_000.0] }))
            .collect();
        rows.push(row(report::TESSERA_NEAR_ON, [20_000.0, 30_000.0]));
        let report = bare_report(rows);
        assert_eq!(report.fastest_naive().map(|row| row.key), Some(fastest));
        let budgets = report.budgets();
        // 20,000 ÷ 10,000 and 30,000 ÷ 10,000; against another naive row it would be 3.33.
        assert_eq!(budgets[0].measured, Some(2.5), "fastest {fastest}: {budgets:#?}");
        assert!(budgets[0].met());
        assert!(budgets[0].name.contains(fastest), "{}", budgets[0].name);
        let markdown = report.markdown();
        assert!(markdown.contains(&format!("| {fastest} (fastest naive) |")), "{markdown}");
        assert!(markdown.contains(&format!("is **{fastest}** (10,000 req/s)")), "{markdown}");
        assert_eq!(markdown.matches("(fastest naive)").count(), 1, "{markdown}");
        let json: serde_json::Value = serde_json::from_str(&report.json()).expect("the report's JSON parses");
        assert_eq!(json["fastest_naive"], fastest);
        // No revocation measured: its budget is missed, not met by default.
        let revocation = budgets.iter().find(|budget| budget.name.contains("revocation"));
        assert!(revocation.is_some_and(|budget| budget.measured.is_none() && !budget.met()), "{budgets:#?}");
    }
    let unmeasured = Row::new(report::NAIVE_POOL_1, report::NAIVE_POOL_1, Load::Wrk { valid: true });
    assert!(bare_report(vec![unmeasured]).fastest_naive().is_none(), "a naive row without rounds is no reference");
}

/// The cluster budget divides tessera on the cluster, near cache off, by the naive port on
/// fred's cluster client, round by round: here that row is the fastest naive row of all, and
/// tessera misses against it while it would meet the budget against any other row (the
/// standalone naive rows, the standalone tessera, its own median over the naive row's median).
#[test]
fn the_cluster_budget_divides_by_the_naive_port_on_freds_cluster_client() {
    let row = |key, rps: [f64; 2]| {
        let mut row = Row::new(key, key, Load::Wrk { valid: true });
        row.rounds = rps.iter().map(|rps| Round { requests_per_second: *rps, ..Round::default() }).collect();
        row
    };
    let cluster_budget = |report: &Report| {
        let budgets = report.budgets();
        let found = budgets.iter().find(|budget| budget.name.starts_with("tessera/cluster, near cache off")).cloned();
        assert_eq!(budgets.last(), found.as_ref(), "the cluster budget comes after the standalone ones");
        found.expect("the cluster budget")
    };
    let rows = |naive_cluster: [f64; 2], cluster_near_off: [f64; 2]| {
        let mut rows: Vec<Row> = report::NAIVE_ROWS.into_iter().map(|key| row(key, [10_000.0, 10_000.0])).collect();
        rows.extend([
            row(report::TESSERA_NEAR_OFF, [9_000.0, 9_000.0]),
            row(report::TESSERA_NEAR_ON, [50_000.0, 50_000.0]),
            row(report::NAIVE_CLUSTER, naive_cluster),
            row(report::TESSERA_CLUSTER_NEAR_OFF, cluster_near_off),
            row(report::TESSERA_CLUSTER_NEAR_ON, [40_000.0, 40_000.0]),
        ]);
        rows
    };

    // 18,000 ÷ 20,000 and 24,000 ÷ 24,000: 0.95, missed. Against the standalone naive rows it
    // would be 2.1, against the standalone tessera 2.33, as a ratio of medians 0.955.
    let report = bare_report(rows([20_000.0, 24_000.0], [18_000.0, 24_000.0]));
    let budget = cluster_budget(&report);
    assert!((budget.measured.unwrap_or(f64::NAN) - 0.95).abs() < 1e-12, "{budget:#?}");
    assert_eq!((budget.threshold, budget.relation), (1.0, Relation::AtLeast));
    assert!(!budget.met(), "{budget:#?}");
    let fastest = report.fastest_naive().map(|row| row.key);
    assert!(fastest.is_some_and(|key| report::NAIVE_ROWS.contains(&key)), "no cluster row is a naive row: {fastest:?}");
    assert_eq!(report.cluster_near_on_over_standalone(), Some(0.8));

    // 12,000 ÷ 8,000 and 12,000 ÷ 12,000: 1.25, met (a ratio of medians would say 1.2).
    let budget = cluster_budget(&bare_report(rows([8_000.0, 12_000.0], [12_000.0, 12_000.0])));
    assert_eq!(budget.measured, Some(1.25), "{budget:#?}");
    assert!(budget.met(), "{budget:#?}");

    // Without the naive cluster row there is nothing to divide by: missed, not met by default.
    let mut without_reference = rows([8_000.0, 12_000.0], [12_000.0, 12_000.0]);
    without_reference.retain(|row| row.key != report::NAIVE_CLUSTER);
    let budget = cluster_budget(&bare_report(without_reference));
    assert!(budget.measured.is_none() && !budget.met(), "{budget:#?}");
}

/// Every wrk row on a cluster server loads the tokens seeded in the cluster, and only those;
/// a round runs fourteen wrk rows.
#[test]
fn the_cluster_rows_load_the_cluster_and_its_tokens() {
    let dir = std::env::temp_dir().join(format!("xtask-bench-rows-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    for file in [
        super::REDIS_TOKENS,
        super::CLUSTER_TOKENS,
        super::EMBEDDED_TOKENS,
        super::UNKNOWN_TOKENS,
        super::MALFORMED_TOKENS,
    ] {
        std::fs::write(dir.join(file), "token\n").expect("a token file");
    }
    let planned = super::plan_rows(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let planned = planned.expect("the rows are planned");
    let cluster_rows = [report::NAIVE_CLUSTER, report::TESSERA_CLUSTER_NEAR_OFF, report::TESSERA_CLUSTER_NEAR_ON];
    let mut wrk_rows = 0;
    let mut servers = std::collections::BTreeSet::new();
    for (row, driver) in &planned {
        let super::Driver::Wrk { server, script, .. } = driver else { continue };
        wrk_rows += 1;
        servers.insert(*server);
        let on_cluster = super::redis_use(*server) == super::RedisUse::Cluster;
        assert_eq!(on_cluster, cluster_rows.contains(&row.key), "{}", row.key);
        assert_eq!(script.ends_with("verify-cluster.lua"), on_cluster, "{}: {}", row.key, script.display());
    }
    assert_eq!(wrk_rows, 14);
    assert_eq!(servers, (0..super::SERVERS).collect::<std::collections::BTreeSet<usize>>(), "every server has a row");
    assert_eq!(planned.iter().filter(|(row, _)| cluster_rows.contains(&row.key)).count(), 3);
    assert_eq!(super::redis_use(super::CEILING), super::RedisUse::None);
    assert_eq!(super::redis_use(super::TESSERA_EMBEDDED), super::RedisUse::None);
    assert_eq!(super::redis_use(super::TESSERA_NEAR_ON), super::RedisUse::Standalone);
    assert_eq!(super::redis_use(super::NAIVE_CLUSTER_SERVER.server), super::RedisUse::Cluster);
}

/// Every naive server `cargo xtask bench` starts is one of the naive rows the budgets compare,
/// at the index it is started at, and fred's defaults run at pool sizes 1, 2, 4 and 8.
#[test]
fn the_naive_servers_are_the_naive_rows() {
    let keys: Vec<&str> = super::NAIVE_SERVERS.iter().map(|naive| naive.key).collect();
    assert_eq!(keys, report::NAIVE_ROWS);
    for (offset, naive) in super::NAIVE_SERVERS.iter().enumerate() {
        assert_eq!(naive.server, super::CEILING + 1 + offset, "{}", naive.key);
        assert!(naive.title.ends_with(&format!("pool {}", naive.pool_size)), "{}", naive.title);
    }
    let defaults: Vec<usize> = super::NAIVE_SERVERS
        .iter()
        .filter(|naive| naive.command_timeout_ms.is_none())
        .map(|naive| naive.pool_size)
        .collect();
    assert_eq!(defaults, [1, 2, 4, 8]);
    assert_eq!(super::NAIVE_SERVERS.last().map(|naive| naive.server + 1), Some(super::TESSERA_NEAR_OFF));
    let cluster = super::NAIVE_CLUSTER_SERVER;
    assert!(!report::NAIVE_ROWS.contains(&cluster.key), "the cluster's naive row is no standalone reference");
    assert_eq!((cluster.server, cluster.key), (super::NAIVE_CLUSTER, report::NAIVE_CLUSTER));
    assert!(cluster.title.ends_with(&format!("pool {}", cluster.pool_size)), "{}", cluster.title);
    assert!(cluster.title.contains("fred's cluster client"), "{}", cluster.title);
}

/// A report of `rows` alone, as a quick run's numbers would be told.
fn bare_report(rows: Vec<Row>) -> Report {
    Report {
        setup: Setup {
            quick: true,
            rounds: 2,
            seconds: 3,
            warmup_seconds: 1,
            users: 1,
            connections: 1,
            wrk_threads: 1,
            probe_requests: 1,
            redis_benchmark_requests: 1,
            revocation_tokens: 0,
        },
        machine: Default::default(),
        rows,
        toolkit: None,
        revocation: None,
        durability: None,
        wall_seconds: 1.0,
    }
}

#[test]
fn percentiles_are_nearest_rank() {
    let samples: Vec<f64> = (1..=200).map(f64::from).collect();
    assert_eq!(report::percentile(&samples, 50.0), Some(100.0));
    assert_eq!(report::percentile(&samples, 99.0), Some(198.0));
    assert_eq!(report::percentile(&samples, 100.0), Some(200.0));
    assert_eq!(report::percentile(&[7.0], 99.0), Some(7.0));
    assert_eq!(report::percentile(&[3.0, 1.0, 2.0], 0.0), Some(1.0));
    assert_eq!(report::percentile(&[], 50.0), None);
}

/// Only the server's own connections count; what it sends while idle (same command, same key)
/// is background; script commands count whoever ran them.
#[test]
fn monitored_commands_are_told_apart_by_connection_and_idleness() {
    let lines = [
        "1.0 [0 127.0.0.1:5001] \"pexpire\" \"tessera:near:canary:x:0\" \"2000\"",
        "1.1 [0 127.0.0.1:5001] \"evalsha\" \"abc\" \"2\" \"token:a\"",
        "1.2 [0 lua] \"get\" \"token:a\"",
        "1.3 [0 127.0.0.1:6001] \"pexpire\" \"tessera:near:canary:y:0\" \"2000\"",
        "1.4 [0 127.0.0.1:5002] \"get\" \"token:b\"",
        "1.5 [0 127.0.0.1:5002] \"pexpire\" \"token:b\" \"10\"",
        "1.6 [0 127.0.0.1:7000] \"echo\" \"marker\"",
    ];
    let seen: Vec<MonitoredCommand> = lines.iter().filter_map(|line| redis_stats::parse_monitor_line(line)).collect();
    assert_eq!(seen.len(), lines.len());
    let ports = std::collections::BTreeSet::from([5001, 5002]);
    let idle = redis_stats::background_commands(&seen[..1], &ports);
    assert_eq!(idle.len(), 1);
    let counts = redis_stats::count_commands(&seen, &ports, &idle);
    let map = |pairs: &[(&str, u64)]| pairs.iter().map(|(name, count)| ((*name).to_owned(), *count)).collect();
    assert_eq!(counts.sent, map(&[("evalsha", 1), ("get", 1), ("pexpire", 1)]));
    assert_eq!(counts.in_scripts, map(&[("get", 1)]));
    assert_eq!(counts.background, map(&[("pexpire", 1)]));
    // Another server's idle connections only: nothing of theirs is background for this one.
    assert!(redis_stats::background_commands(&seen[3..4], &ports).is_empty());
}

/// On a cluster each primary is read with the server's own connections to it: a local port the
/// server uses towards one node may be another client's towards another node.
#[test]
fn commands_on_several_nodes_are_counted_node_by_node() {
    let parse = |lines: &[&str]| -> Vec<MonitoredCommand> {
        lines.iter().filter_map(|line| redis_stats::parse_monitor_line(line)).collect()
    };
    let node_a = parse(&["1.0 [0 127.0.0.1:5001] \"get\" \"token:a\"", "1.1 [0 127.0.0.1:6001] \"get\" \"token:b\""]);
    let node_b = parse(&[
        "1.0 [0 127.0.0.1:6001] \"lpos\" \"token_list:1\" \"a\"",
        "1.1 [0 127.0.0.1:7001] \"lpos\" \"token_list:2\" \"b\"",
        "1.2 [0 127.0.0.1:6001] \"pexpire\" \"tessera:near:canary:b:0\" \"2000\"",
    ]);
    let ports = [std::collections::BTreeSet::from([5001]), std::collections::BTreeSet::from([6001])];
    let idle = redis_stats::background_commands_on_nodes(&[Vec::new(), node_b[2..].to_vec()], &ports);
    assert_eq!(idle.len(), 1);
    let counts = redis_stats::count_commands_on_nodes(&[node_a, node_b], &ports, &idle);
    let map = |pairs: &[(&str, u64)]| pairs.iter().map(|(name, count)| ((*name).to_owned(), *count)).collect();
    assert_eq!(counts.sent, map(&[("get", 1), ("lpos", 1)]), "port 6001 on node A is another client");
    assert_eq!(counts.background, map(&[("pexpire", 1)]));
    assert!(counts.in_scripts.is_empty());
}

#[test]
fn cluster_nodes_are_read_with_their_roles() {
    let text = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n\
                67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@40002,node-b master - 0 1426238316232 2 connected 5461-10922\n\
                292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@40003 master - 0 1426238318243 3 connected 10923-16383\n\
                6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@40005 slave 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 5 connected\n\
                824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:30006@40006 slave 292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 0 0 6 connected\n\
                a4fe116063bc5fcf9f4ffd895bc17aee7731ac30 127.0.0.1:30004@40004 slave,fail e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 0 4 disconnected\n\
                garbage\n";
    let node = |port, primary| redis_stats::ClusterNode { port, primary };
    assert_eq!(
        redis_stats::parse_cluster_nodes(text),
        [node(30_001, true), node(30_002, true), node(30_003, true), node(30_005, false), node(30_006, false)]
    );
}

#[test]
fn the_cluster_url_names_its_first_node() {
    let url = "redis-cluster://127.0.0.1:40001?node=127.0.0.1:40002&node=127.0.0.1:40003";
    assert_eq!(super::cluster_seed_port(url).expect("a port"), 40_001);
    assert_eq!(super::cluster_seed_port("redis-cluster://127.0.0.1:40001").expect("a port"), 40_001);
    assert!(super::cluster_seed_port("redis-cluster://127.0.0.1?node=127.0.0.1:40002").is_err());
}

#[test]
fn proc_net_tcp_lines_are_read() {
    let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
       0: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0000 20 4 30 10 -1\n\
       1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 17 1\n\
       garbage\n";
    assert_eq!(
        servers::parse_proc_net_tcp(text),
        [
            servers::TcpSocket { local_port: 50_000, remote_port: 8_080, inode: 424_242 },
            servers::TcpSocket { local_port: 80, remote_port: 0, inode: 17 },
        ]
    );
}

#[test]
fn the_issued_token_is_read_from_the_json_answer() {
    let body = r#"{"token":"tsr_abc-_9","token_type":"Bearer","expires_in":3600,"session_id":"s1"}"#;
    assert_eq!(revocation::json_string_field(body, "token").as_deref(), Some("tsr_abc-_9"));
    assert_eq!(revocation::json_string_field(body, "session_id").as_deref(), Some("s1"));
    assert_eq!(revocation::json_string_field("{\"token\" : \"x\"}", "token").as_deref(), Some("x"));
    assert_eq!(revocation::json_string_field(body, "expires_in"), None);
    assert_eq!(revocation::json_string_field(r#"{"token":"a\"b"}"#, "token").as_deref(), Some("a\"b"));
    assert_eq!(revocation::json_string_field("not json", "token"), None);
    assert_eq!(revocation::json_string_field(r#"{"token_type":"Bearer"}"#, "token"), None);
}
