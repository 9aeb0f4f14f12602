//! The benchmark's parsers and arithmetic on real samples of what wrk, redis-benchmark, Redis
//! and `/proc` print, so a format change is caught here rather than as a wrong table.

use std::collections::BTreeMap;

use super::load::{self, SocketErrors};
use super::probe;
use super::redis_stats::{self, CommandCounts, MonitoredCommand};
use super::report::{self, Budget, Load, Relation, Report, Round, RoundTrips, Row, Setup};
use super::servers;

const WRK_SAMPLE: &str = "\
Running 3s test @ http://127.0.0.1:40000/auth/verify
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
";

#[test]
fn wrk_report_is_read() {
    let report = load::parse_wrk(WRK_SAMPLE).expect("the sample parses");
    assert_eq!(report.requests, 114_676);
    assert!((report.requests_per_second - 38_208.29).abs() < 1e-6);
    assert!((report.p50_ms - 0.512).abs() < 1e-9, "{}", report.p50_ms);
    assert!((report.p99_ms - 4.12).abs() < 1e-9, "{}", report.p99_ms);
    assert_eq!(report.non_2xx, 114_676);
    assert_eq!(report.socket_errors, SocketErrors { connect: 0, read: 3, write: 0, timeout: 1 });
    assert_eq!(report.socket_errors.total(), 4);
}

#[test]
fn a_clean_wrk_report_has_no_errors() {
    let clean: String = WRK_SAMPLE
        .lines()
        .filter(|line| !line.contains("Socket errors") && !line.contains("Non-2xx"))
        .map(|line| format!("{line}\n"))
        .collect();
    let report = load::parse_wrk(&clean).expect("the sample parses");
    assert_eq!(report.non_2xx, 0);
    assert_eq!(report.socket_errors.total(), 0);
}

#[test]
fn a_wrk_report_without_latency_distribution_is_refused() {
    let without: String = WRK_SAMPLE
        .lines()
        .filter(|line| !line.contains('%') || line.contains("Stdev"))
        .map(|line| format!("{line}\n"))
        .collect();
    let error = load::parse_wrk(&without).expect_err("no percentiles");
    assert!(error.to_string().contains("50%"), "{error}");
}

#[test]
fn wrk_durations_become_milliseconds() {
    let cases = [("512.00us", 0.512), ("1.23ms", 1.23), ("2.00s", 2_000.0), ("1.50m", 90_000.0)];
    for (text, expected) in cases {
        let parsed = load::parse_duration_ms(text).expect(text);
        assert!((parsed - expected).abs() < 1e-9, "{text}: {parsed}");
    }
    assert!(load::parse_duration_ms("12").is_err());
    assert!(load::parse_duration_ms("12xs").is_err());
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
                command: "evalsha".to_owned(),
                first_argument: Some("abc".to_owned()),
            }),
        ),
        (
            "1795661552.708775 [0 lua] \"get\" \"token:x\"",
            Some(MonitoredCommand {
                from_script: true,
                command: "get".to_owned(),
                first_argument: Some("token:x".to_owned()),
            }),
        ),
        (
            "1795661552.717340 [0 unix:/tmp/redis.sock] \"set\" \"k\" \"a b\\\"c\"",
            Some(MonitoredCommand {
                from_script: false,
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
    assert_eq!(servers::parse_vm_hwm(status), Some(18_432));
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
fn the_picker_is_seeded_and_in_range() {
    let picks = |seed| {
        let mut picker = probe::SplitMix64(seed);
        (0..100).map(|_| picker.below(7)).collect::<Vec<_>>()
    };
    assert_eq!(picks(42), picks(42));
    assert_ne!(picks(42), picks(43));
    assert!(picks(42).iter().all(|pick| *pick < 7));
}

#[test]
fn status_lines_are_read() {
    assert_eq!(probe::parse_status_line("HTTP/1.1 401 Unauthorized\r\n"), Some(401));
    assert_eq!(probe::parse_status_line("HTTP/1.1 200 OK"), Some(200));
    assert_eq!(probe::parse_status_line("garbage 200"), None);
}

#[test]
fn medians_and_numbers() {
    assert_eq!(report::median([3.0, 1.0, 2.0].into_iter()), Some(2.0));
    assert_eq!(report::median([4.0, 1.0, 2.0, 3.0].into_iter()), Some(2.5));
    assert_eq!(report::median(std::iter::empty()), None);
    assert_eq!(report::thousands(1_234_567.4), "1,234,567");
    assert_eq!(report::thousands(999.6), "1,000");
    assert_eq!(report::thousands(12.0), "12");
    assert_eq!(report::number(1.5), "1.5");
    assert_eq!(report::number(2.0), "2");
    assert_eq!(report::number(f64::NAN), "null");
    assert_eq!(report::string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

#[test]
fn budgets_compare_as_stated() {
    let budget = |measured, threshold, relation| Budget {
        name: "x",
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
    let trips = |sent: &[(&str, u64)]| {
        let counted =
            |commands: &[(&str, u64)]| commands.iter().map(|(name, count)| ((*name).to_owned(), *count)).collect();
        let scripted: &[(&str, u64)] =
            if sent.iter().any(|(name, _)| *name == "evalsha") { &[("get", 1_000), ("lpos", 1_000)] } else { &[] };
        RoundTrips {
            requests: 1_000,
            statuses: BTreeMap::from([(200, 1_000)]),
            commands: CommandCounts { sent: counted(sent), in_scripts: counted(scripted) },
        }
    };
    let row = |key, rates: [(f64, f64); 2], sent: &[(&str, u64)], rss_kib| {
        let mut row = Row::new(key, key, Load::Wrk { valid: true });
        row.rounds = rates.iter().map(|(rps, p99)| round(*rps, *p99)).collect();
        row.round_trips = Some(trips(sent));
        row.peak_rss_kib = Some(rss_kib);
        row
    };
    let mut rows = vec![
        row("ceiling", [(40_000.0, 2.0), (42_000.0, 2.2)], &[], 4_000),
        row("naive", [(10_000.0, 9.0), (11_000.0, 9.0)], &[("get", 1_000), ("lrange", 1_000)], 6_000),
        row("tessera-redis", [(15_000.0, 5.0), (16_500.0, 6.0)], &[("evalsha", 1_000)], 20_000),
        row("tessera-embedded", [(30_000.0, 3.0), (31_000.0, 3.0)], &[], 70_000),
    ];
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
            users: 10_000,
            connections: 64,
            wrk_threads: 2,
            probe_requests: 1_000,
            redis_benchmark_requests: 200_000,
        },
        machine: Default::default(),
        rows,
        toolkit: Some("| comparison | ... |".to_owned()),
        wall_seconds: 90.0,
    };
    let budgets = report.budgets();
    let met: Vec<bool> = budgets.iter().map(Budget::met).collect();
    // 1.5× naive; 1 command sent; 0.74 of the ceiling; p99 5.5 ms ≤ 2 × 2.1 + 2 = 6.2 ms; 68 MiB.
    assert_eq!(met, [true, true, true, true, false], "{budgets:?}");
    assert!((budgets[0].measured.unwrap_or_default() - 1.5).abs() < 1e-9);
    assert!((budgets[3].threshold - 6.2).abs() < 1e-9);
    let markdown = report.markdown();
    for needle in [
        "| tessera-redis | 15,750 (15,000–16,500)",
        "1.00 (evalsha → get, lpos)",
        "2.00 (get, lrange)",
        "MISSED",
        "Toolkit micro-benchmark",
    ] {
        assert!(markdown.contains(needle), "{needle:?} not in\n{markdown}");
    }
    let json = report.json();
    for needle in ["\"key\": \"naive\"", "\"commands_sent\": {\"evalsha\": 1000}", "\"met\": false"] {
        assert!(json.contains(needle), "{needle:?} not in\n{json}");
    }
}
