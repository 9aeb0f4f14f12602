//! What the benchmark's Redis says about the load: commands executed (`INFO commandstats`,
//! which also counts the commands a Lua script runs), the commands clients actually sent
//! (`MONITOR`, which tells a client's commands from a script's: the round trips), and the
//! redis-server pid (for its CPU time and peak RSS).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process;

const CLI_TIMEOUT: Duration = Duration::from_secs(10);
const MONITOR_TIMEOUT: Duration = Duration::from_secs(10);

/// `redis-cli` pointed at the benchmark's Redis.
#[derive(Debug, Clone)]
pub(super) struct RedisCli {
    cli: PathBuf,
    port: u16,
}

impl RedisCli {
    pub(super) fn new(cli: &Path, port: u16) -> RedisCli {
        RedisCli { cli: cli.to_path_buf(), port }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.cli);
        command.args(["-h", "127.0.0.1", "-p"]).arg(self.port.to_string());
        command
    }

    /// `redis-cli ARGS...`: its stdout.
    pub(super) fn run(&self, args: &[&str]) -> Result<String> {
        let mut command = self.command();
        command.args(args);
        let output = process::output_within(&mut command, CLI_TIMEOUT)?;
        if !output.status.success() {
            bail!(
                "`{}` failed with {}: {}",
                process::describe(&command),
                output.status,
                process::combined_output(&output)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Calls of each command so far (`INFO commandstats`), without the `info` calls that ask.
    pub(super) fn command_calls(&self) -> Result<BTreeMap<String, u64>> {
        Ok(parse_commandstats(&self.run(&["info", "commandstats"])?))
    }

    /// The redis-server's pid (`INFO server`).
    pub(super) fn pid(&self) -> Result<u32> {
        let text = self.run(&["info", "server"])?;
        info_field(&text, "process_id").and_then(|pid| pid.parse().ok()).context("INFO server has no process_id")
    }

    /// `redis-server --version`'s `v=` for the report, from `INFO server`.
    pub(super) fn version(&self) -> Result<String> {
        let text = self.run(&["info", "server"])?;
        info_field(&text, "redis_version").map(str::to_owned).context("INFO server has no redis_version")
    }

    /// Starts counting the commands clients send (`MONITOR`); returns once Redis confirmed.
    pub(super) fn monitor(&self) -> Result<Monitor> {
        let marker = format!("xtask-bench-marker-{}", std::process::id());
        let mut command = self.command();
        command.arg("monitor").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = command.spawn().context("cannot start `redis-cli monitor`")?;
        let stdout = child.stdout.take().context("`redis-cli monitor` has no stdout")?;
        let (sender, receiver) = mpsc::channel();
        let expected = marker.clone();
        thread::spawn(move || {
            let mut counts = CommandCounts::default();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.trim() == "OK" {
                    sender.send(MonitorEvent::Started).ok();
                    continue;
                }
                let Some(seen) = parse_monitor_line(&line) else { continue };
                if seen.command == "echo" && seen.first_argument.as_deref() == Some(expected.as_str()) {
                    sender.send(MonitorEvent::Finished(counts)).ok();
                    return;
                }
                let bucket = if seen.from_script { &mut counts.in_scripts } else { &mut counts.sent };
                *bucket.entry(seen.command).or_insert(0) += 1;
            }
        });
        let monitor = Monitor { cli: self.clone(), child, events: receiver, marker };
        match monitor.events.recv_timeout(MONITOR_TIMEOUT) {
            Ok(MonitorEvent::Started) => Ok(monitor),
            _ => bail!("`redis-cli monitor` did not start within {} s", MONITOR_TIMEOUT.as_secs()),
        }
    }
}

/// Commands counted by `MONITOR`: those clients sent (each a round trip, or part of a
/// pipeline) and those Lua scripts ran.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct CommandCounts {
    pub(super) sent: BTreeMap<String, u64>,
    pub(super) in_scripts: BTreeMap<String, u64>,
}

enum MonitorEvent {
    Started,
    Finished(CommandCounts),
}

/// A running `redis-cli monitor`; dropping it stops it.
#[derive(Debug)]
pub(super) struct Monitor {
    cli: RedisCli,
    child: Child,
    events: mpsc::Receiver<MonitorEvent>,
    marker: String,
}

impl std::fmt::Debug for MonitorEvent {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            MonitorEvent::Started => "Started",
            MonitorEvent::Finished(_) => "Finished",
        })
    }
}

impl Monitor {
    /// Everything counted since the start: sends a marker command and waits until the monitor
    /// has seen it, so no command sent before is missed.
    pub(super) fn finish(mut self) -> Result<CommandCounts> {
        self.cli.run(&["echo", &self.marker])?;
        let counts = match self.events.recv_timeout(MONITOR_TIMEOUT) {
            Ok(MonitorEvent::Finished(counts)) => counts,
            _ => bail!("`redis-cli monitor` did not see its end marker within {} s", MONITOR_TIMEOUT.as_secs()),
        };
        self.stop();
        Ok(counts)
    }

    fn stop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `cmdstat_get:calls=12,usec=...` lines → `{"get": 12}`, without `info`.
pub(super) fn parse_commandstats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields.split(',').find_map(|field| field.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_owned(), calls))
        })
        .filter(|(name, _)| name != "info")
        .collect()
}

/// Calls made between two [`parse_commandstats`] readings, per command (zeros left out).
pub(super) fn calls_between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(name, calls)| (name.clone(), calls.saturating_sub(before.get(name).copied().unwrap_or(0))))
        .filter(|(_, calls)| *calls > 0)
        .collect()
}

/// One command as `MONITOR` shows it: `1700000000.123456 [0 127.0.0.1:50000] "get" "key"`, or
/// `[0 lua]` for a command a script ran.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct MonitoredCommand {
    pub(super) from_script: bool,
    /// Lower case, as Redis shows it.
    pub(super) command: String,
    pub(super) first_argument: Option<String>,
}

pub(super) fn parse_monitor_line(line: &str) -> Option<MonitoredCommand> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    let source = line[open + 1..close].split_whitespace().nth(1)?;
    let mut words = quoted_words(&line[close + 1..]).into_iter();
    let command = words.next()?.to_ascii_lowercase();
    Some(MonitoredCommand { from_script: source == "lua", command, first_argument: words.next() })
}

/// The `"..."` words of a MONITOR line, with `\"` and `\\` unescaped (other escapes kept).
fn quoted_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some(escaped @ ('"' | '\\')) => word.push(escaped),
                    Some(other) => {
                        word.push('\\');
                        word.push(other);
                    }
                    None => break,
                },
                other => word.push(other),
            }
        }
        words.push(word);
    }
    words
}

/// `name:value` from INFO text.
pub(super) fn info_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
}
