//! The load generators and what they print: `wrk` (its Lua script, a random seeded token per
//! request, and the parsing of its `--latency` report) and `redis-benchmark` (its CSV line).
//! Every run is bounded: wrk by its duration, redis-benchmark by its request count, and both
//! by a deadline on top.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::process;

/// wrk threads and connections: what the issue measures at.
pub(super) const WRK_THREADS: u32 = 2;
pub(super) const CONNECTIONS: u32 = 64;
/// Slack on top of a run's own length before it is killed.
const DEADLINE_SLACK: Duration = Duration::from_secs(60);

/// Starts the line the script's `done()` prints: the run's numbers as JSON.
const REPORT_MARKER: &str = "xtask-wrk-report ";

/// Writes the wrk script that sends `GET /auth/verify` with a token picked at random (seeded:
/// 42, plus the thread's number) from `tokens_file`. The requests are formatted once, when
/// each thread starts, so the script costs wrk little per request; `done()` prints the
/// numbers xtask reads as one JSON line after [`REPORT_MARKER`].
pub(super) fn write_wrk_script(script: &Path, tokens_file: &Path) -> Result<()> {
    let mut text =
        String::from("-- Written by `cargo xtask bench`: GET /auth/verify, a random seeded token per request.\n");
    writeln!(text, "local tokens_file = {}", lua_string(&tokens_file.to_string_lossy())).ok();
    writeln!(text, "local report_marker = {}", lua_string(REPORT_MARKER)).ok();
    text.push_str(
        r#"local requests = {}
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  math.randomseed(42 + (thread_number or 0))
  for token in io.lines(tokens_file) do
    if token ~= "" then
      requests[#requests + 1] = wrk.format("GET", "/auth/verify", { ["Authorization"] = "Bearer " .. token })
    end
  end
  if #requests == 0 then
    error("no tokens in " .. tokens_file)
  end
end

function request()
  return requests[math.random(#requests)]
end

"#,
    );
    text.push_str(DONE_HOOK);
    std::fs::write(script, text).with_context(|| format!("cannot write {}", script.display()))
}

/// The scripts' `done()`: the numbers xtask reads, as one JSON line after `report_marker`
/// (wrk's own report is for people).
const DONE_HOOK: &str = r#"
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '\n%s{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non_2xx":%d,' ..
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
    report_marker, summary.requests, summary.duration,
    math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
    errors.status, errors.connect, errors.read, errors.write, errors.timeout))
end
"#;

/// Writes the wrk script that issues a session per request (`POST /internal/sessions`, a new
/// user each time: the thread's number and a counter), with the same `done()` report.
pub(super) fn write_issue_script(script: &Path, internal_key: &str) -> Result<()> {
    let mut text =
        String::from("-- Written by `cargo xtask bench`: POST /internal/sessions, a new user per request.\n");
    writeln!(text, "local internal_key = {}", lua_string(internal_key)).ok();
    writeln!(text, "local report_marker = {}", lua_string(REPORT_MARKER)).ok();
    text.push_str(
        r#"local threads = 0
local issued = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function request()
  issued = issued + 1
  local user = (thread_number or 0) * 1000000000 + issued
  local body = '{"user_id": ' .. user .. ', "metadata": {"purpose": "durability benchmark"}}'
  return wrk.format("POST", "/internal/sessions",
    { ["X-Internal-Key"] = internal_key, ["Content-Type"] = "application/json" }, body)
end
"#,
    );
    text.push_str(DONE_HOOK);
    std::fs::write(script, text).with_context(|| format!("cannot write {}", script.display()))
}

/// A Lua string literal of `text`.
fn lua_string(text: &str) -> String {
    let mut literal = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                literal.push('\\');
                literal.push(c);
            }
            '\n' => literal.push_str("\\n"),
            other => literal.push(other),
        }
    }
    literal.push('"');
    literal
}

/// What one wrk run reported.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct WrkReport {
    pub(super) requests: u64,
    pub(super) requests_per_second: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    /// Responses that were neither 2xx nor 3xx.
    pub(super) non_2xx: u64,
    pub(super) socket_errors: SocketErrors,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub(super) struct SocketErrors {
    pub(super) connect: u64,
    pub(super) read: u64,
    pub(super) write: u64,
    pub(super) timeout: u64,
}

/// The JSON line of the script's `done()`: wrk's own counters, times in microseconds.
#[derive(Debug, Deserialize)]
struct DoneLine {
    requests: u64,
    duration_us: u64,
    p50_us: u64,
    p99_us: u64,
    non_2xx: u64,
    socket_errors: SocketErrors,
}

impl SocketErrors {
    pub(super) fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }
}

/// `wrk -t2 -c64 -dSECONDSs --latency -s SCRIPT http://127.0.0.1:PORT/auth/verify`.
pub(super) fn run_wrk(wrk: &Path, port: u16, script: &Path, seconds: u64) -> Result<WrkReport> {
    run_wrk_path(wrk, port, script, seconds, "/auth/verify")
}

/// [`run_wrk`] on another path (the script decides what each request is).
pub(super) fn run_wrk_path(wrk: &Path, port: u16, script: &Path, seconds: u64, path: &str) -> Result<WrkReport> {
    let mut command = Command::new(wrk);
    command
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}{path}"));
    let output = process::output_within(&mut command, Duration::from_secs(seconds) + DEADLINE_SLACK)?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("`{}` failed with {}: {}", process::describe(&command), output.status, process::combined_output(&output));
    }
    parse_wrk(&text).with_context(|| {
        format!("cannot read the report of `{}`:\n{}", process::describe(&command), process::combined_output(&output))
    })
}

/// Reads the JSON line the script's `done()` printed among wrk's output.
pub(super) fn parse_wrk(text: &str) -> Result<WrkReport> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix(REPORT_MARKER))
        .context("no report line from the script's done() (was the script given with -s?)")?;
    let done: DoneLine = serde_json::from_str(line).with_context(|| format!("bad report line {line:?}"))?;
    if done.duration_us == 0 {
        bail!("wrk reports a run of 0 µs");
    }
    let micros_to_ms = |micros: u64| micros as f64 / 1_000.0;
    Ok(WrkReport {
        requests: done.requests,
        requests_per_second: done.requests as f64 / (done.duration_us as f64 / 1_000_000.0),
        p50_ms: micros_to_ms(done.p50_us),
        p99_ms: micros_to_ms(done.p99_us),
        non_2xx: done.non_2xx,
        socket_errors: done.socket_errors,
    })
}

/// What one redis-benchmark run reported.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RedisBenchmarkReport {
    pub(super) requests_per_second: f64,
    pub(super) p50_ms: Option<f64>,
    pub(super) p99_ms: Option<f64>,
}

/// `redis-benchmark -h 127.0.0.1 -p PORT -t get -n REQUESTS -P PIPELINE --csv` (the CSV of
/// Redis 7 carries p50 and p99 besides requests per second).
pub(super) fn run_redis_benchmark(
    redis_benchmark: &Path,
    port: u16,
    pipeline: u32,
    requests: u64,
) -> Result<RedisBenchmarkReport> {
    let mut command = Command::new(redis_benchmark);
    command
        .args(["-h", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-t", "get", "-n"])
        .arg(requests.to_string())
        .arg("-P")
        .arg(pipeline.to_string())
        .arg("--csv");
    let output = process::output_within(&mut command, DEADLINE_SLACK)?;
    if !output.status.success() {
        bail!("`{}` failed with {}: {}", process::describe(&command), output.status, process::combined_output(&output));
    }
    parse_redis_benchmark_csv(&String::from_utf8_lossy(&output.stdout)).with_context(|| {
        format!("cannot read the output of `{}`:\n{}", process::describe(&command), process::combined_output(&output))
    })
}

/// The header line names the columns (`"test","rps",...,"p50_latency_ms",...`); the `GET`
/// line holds the values. Older versions print `rps` alone: the percentiles are then absent.
pub(super) fn parse_redis_benchmark_csv(text: &str) -> Result<RedisBenchmarkReport> {
    let rows: Vec<Vec<String>> = text
        .lines()
        .map(|line| line.split(',').map(|cell| cell.trim().trim_matches('"').to_owned()).collect())
        .collect();
    let header = rows.iter().find(|row| row.first().is_some_and(|cell| cell == "test")).context("no CSV header")?;
    let values = rows.iter().find(|row| row.first().is_some_and(|cell| cell == "GET")).context("no GET line")?;
    let column = |name: &str| -> Option<f64> {
        let index = header.iter().position(|cell| cell == name)?;
        values.get(index)?.parse().ok()
    };
    Ok(RedisBenchmarkReport {
        requests_per_second: column("rps").context("no rps value")?,
        p50_ms: column("p50_latency_ms"),
        p99_ms: column("p99_latency_ms"),
    })
}
