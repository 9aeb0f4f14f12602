//! The load generators and what they print: `wrk` (its Lua script, a random seeded token per
//! request, and the parsing of its `--latency` report) and `redis-benchmark` (its CSV line).
//! Every run is bounded: wrk by its duration, redis-benchmark by its request count, and both
//! by a deadline on top.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process;

/// wrk threads and connections: what the issue measures at.
pub(super) const WRK_THREADS: u32 = 2;
pub(super) const CONNECTIONS: u32 = 64;
/// Slack on top of a run's own length before it is killed.
const DEADLINE_SLACK: Duration = Duration::from_secs(60);

/// Writes the wrk script that sends `GET /auth/verify` with a token picked at random (seeded:
/// 42, plus the thread's number) from `tokens_file`. The requests are formatted once, when
/// each thread starts, so the script costs wrk little per request.
pub(super) fn write_wrk_script(script: &Path, tokens_file: &Path) -> Result<()> {
    let mut text =
        String::from("-- Written by `cargo xtask bench`: GET /auth/verify, a random seeded token per request.\n");
    writeln!(text, "local tokens_file = {}", lua_string(&tokens_file.to_string_lossy())).ok();
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct SocketErrors {
    pub(super) connect: u64,
    pub(super) read: u64,
    pub(super) write: u64,
    pub(super) timeout: u64,
}

impl SocketErrors {
    pub(super) fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }
}

/// `wrk -t2 -c64 -dSECONDSs --latency -s SCRIPT http://127.0.0.1:PORT/auth/verify`.
pub(super) fn run_wrk(wrk: &Path, port: u16, script: &Path, seconds: u64) -> Result<WrkReport> {
    let mut command = Command::new(wrk);
    command
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/auth/verify"));
    let output = process::output_within(&mut command, Duration::from_secs(seconds) + DEADLINE_SLACK)?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("`{}` failed with {}: {}", process::describe(&command), output.status, process::combined_output(&output));
    }
    parse_wrk(&text).with_context(|| {
        format!("cannot read the report of `{}`:\n{}", process::describe(&command), process::combined_output(&output))
    })
}

/// Reads wrk's report: the request count, Requests/sec, the 50% and 99% lines of the
/// `Latency Distribution` block, the non-2xx/3xx count and the socket errors (both absent when
/// there were none).
pub(super) fn parse_wrk(text: &str) -> Result<WrkReport> {
    let mut requests = None;
    let mut requests_per_second = None;
    let mut p50_ms = None;
    let mut p99_ms = None;
    let mut non_2xx = 0;
    let mut socket_errors = SocketErrors::default();
    let mut in_distribution = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Latency Distribution") {
            in_distribution = true;
            continue;
        }
        if in_distribution {
            if let Some((percent, value)) = line.split_once('%') {
                match percent.trim() {
                    "50" => p50_ms = Some(parse_duration_ms(value.trim())?),
                    "99" => p99_ms = Some(parse_duration_ms(value.trim())?),
                    _ => {}
                }
                continue;
            }
            in_distribution = false;
        }
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            requests_per_second = Some(rest.trim().parse::<f64>().with_context(|| format!("bad line {line:?}"))?);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest.trim().parse().with_context(|| format!("bad line {line:?}"))?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            socket_errors = parse_socket_errors(rest).with_context(|| format!("bad line {line:?}"))?;
        } else if line.contains(" requests in ") {
            let count = line.split_whitespace().next().unwrap_or_default();
            requests = Some(count.parse::<u64>().with_context(|| format!("bad line {line:?}"))?);
        }
    }
    Ok(WrkReport {
        requests: requests.context("no `N requests in` line")?,
        requests_per_second: requests_per_second.context("no `Requests/sec:` line")?,
        p50_ms: p50_ms.context("no 50% line in the latency distribution (was --latency given?)")?,
        p99_ms: p99_ms.context("no 99% line in the latency distribution")?,
        non_2xx,
        socket_errors,
    })
}

/// `512.00us`, `1.23ms`, `2.00s`, `1.50m` → milliseconds.
pub(super) fn parse_duration_ms(text: &str) -> Result<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).with_context(|| format!("no unit in {text:?}"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.trim().parse().with_context(|| format!("bad number in {text:?}"))?;
    let factor = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => bail!("unknown unit in {text:?}"),
    };
    Ok(value * factor)
}

/// ` connect 0, read 12, write 0, timeout 3`
fn parse_socket_errors(text: &str) -> Result<SocketErrors> {
    let mut errors = SocketErrors::default();
    for part in text.split(',') {
        let mut words = part.split_whitespace();
        let (Some(kind), Some(count)) = (words.next(), words.next()) else { continue };
        let count: u64 = count.parse()?;
        match kind {
            "connect" => errors.connect = count,
            "read" => errors.read = count,
            "write" => errors.write = count,
            "timeout" => errors.timeout = count,
            _ => {}
        }
    }
    Ok(errors)
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
