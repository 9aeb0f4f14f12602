//! What the benchmark's Redis says about the load: commands executed (`INFO commandstats`,
//! which also counts the commands a Lua script runs), the commands clients actually sent
//! (`MONITOR`, which tells a client's commands from a script's: the round trips), and the
//! redis-server pid (for its CPU time and peak RSS). A Redis Cluster is watched node by node
//! ([`RedisNodes`]): commands on each primary (the nodes clients send commands to), CPU time
//! on every node, replicas too.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::servers;
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

    pub(super) fn port(&self) -> u16 {
        self.port
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
            let mut seen_commands = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.trim() == "OK" {
                    sender.send(MonitorEvent::Started).ok();
                    continue;
                }
                let Some(seen) = parse_monitor_line(&line) else { continue };
                if seen.command == "echo" && seen.first_argument.as_deref() == Some(expected.as_str()) {
                    sender.send(MonitorEvent::Finished(seen_commands)).ok();
                    return;
                }
                seen_commands.push(seen);
            }
        });
        let monitor = Monitor { cli: self.clone(), child, events: receiver, marker };
        match monitor.events.recv_timeout(MONITOR_TIMEOUT) {
            Ok(MonitorEvent::Started) => Ok(monitor),
            _ => bail!("`redis-cli monitor` did not start within {} s", MONITOR_TIMEOUT.as_secs()),
        }
    }
}

/// The redis-servers of one topology the rows load: the nodes clients send commands to (the
/// standalone server; a cluster's primaries), whose commands are counted and watched, and the
/// pid of every redis-server in it (a cluster's replicas too), whose CPU time the load costs.
#[derive(Debug, Clone)]
pub(super) struct RedisNodes {
    primaries: Vec<RedisCli>,
    pids: Vec<u32>,
}

impl RedisNodes {
    /// The standalone server behind `cli`, running as `pid`.
    pub(super) fn standalone(cli: RedisCli, pid: u32) -> RedisNodes {
        RedisNodes { primaries: vec![cli], pids: vec![pid] }
    }

    /// Every node of the cluster `seed_port` is a node of, as its `CLUSTER NODES` lists them.
    pub(super) fn cluster(cli: &Path, seed_port: u16) -> Result<RedisNodes> {
        let view = RedisCli::new(cli, seed_port).run(&["cluster", "nodes"])?;
        let nodes = parse_cluster_nodes(&view);
        let mut primaries = Vec::new();
        let mut pids = Vec::new();
        for node in nodes {
            let node_cli = RedisCli::new(cli, node.port);
            pids.push(node_cli.pid()?);
            if node.primary {
                primaries.push(node_cli);
            }
        }
        if primaries.is_empty() {
            bail!("CLUSTER NODES on port {seed_port} names no primary:\n{}", view.trim());
        }
        Ok(RedisNodes { primaries, pids })
    }

    /// The nodes clients send commands to, in a fixed order.
    pub(super) fn primaries(&self) -> &[RedisCli] {
        &self.primaries
    }

    /// Calls of each command so far, added up over the primaries (`INFO commandstats`, without
    /// `info`); a replica's are left out, since it runs again what its primary ran.
    pub(super) fn command_calls(&self) -> Result<BTreeMap<String, u64>> {
        let mut total = BTreeMap::new();
        for primary in &self.primaries {
            for (name, calls) in primary.command_calls()? {
                *total.entry(name).or_insert(0) += calls;
            }
        }
        Ok(total)
    }

    /// User plus system CPU time of every redis-server of the topology so far, in clock ticks.
    pub(super) fn cpu_ticks(&self) -> Result<u64> {
        let mut total = 0;
        for pid in &self.pids {
            total += servers::cpu_ticks(*pid)?;
        }
        Ok(total)
    }

    /// `MONITOR` on every primary; returns once each confirmed.
    pub(super) fn monitor(&self) -> Result<Monitors> {
        let monitors = self.primaries.iter().map(RedisCli::monitor).collect::<Result<Vec<Monitor>>>()?;
        Ok(Monitors { monitors })
    }
}

/// A node as `CLUSTER NODES` lists it: its client port, and whether it is a primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ClusterNode {
    pub(super) port: u16,
    pub(super) primary: bool,
}

/// `<id> <ip:port@bus[,hostname]> <flags> ...` lines (flags such as `myself,master` or
/// `slave`); a line without a readable port is skipped, a failed node (`fail`) too.
pub(super) fn parse_cluster_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags: Vec<&str> = fields.next()?.split(',').collect();
            if flags.contains(&"fail") || flags.contains(&"noaddr") {
                return None;
            }
            let client_address = address.split(['@', ',']).next()?;
            let port = client_address.rsplit_once(':')?.1.parse().ok()?;
            Some(ClusterNode { port, primary: flags.contains(&"master") })
        })
        .collect()
}

/// Commands counted by `MONITOR` for one server: those its connections sent for the requests
/// (each a round trip, or part of a pipeline), those Lua scripts ran, and those its
/// connections send on their own, requests or not (timers such as the near cache's
/// heartbeat), which are not a cost of a request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct CommandCounts {
    pub(super) sent: BTreeMap<String, u64>,
    pub(super) in_scripts: BTreeMap<String, u64>,
    pub(super) background: BTreeMap<String, u64>,
}

/// A command a server sends on its own: its name and first argument (the key), exactly.
pub(super) type BackgroundCommand = (String, Option<String>);

/// Sorts what `MONITOR` saw: commands from other clients (ports not in `server_ports`) are
/// left out; those from the server's connections go to `background` when the same command
/// on the same key was seen from it while it served nothing, else to `sent`. Commands run by
/// scripts (`[0 lua]`, which names no client) all count: an idle server runs no script.
pub(super) fn count_commands(
    seen: &[MonitoredCommand],
    server_ports: &BTreeSet<u16>,
    background: &BTreeSet<BackgroundCommand>,
) -> CommandCounts {
    let mut counts = CommandCounts::default();
    for command in seen {
        let bucket = if command.from_script {
            &mut counts.in_scripts
        } else if !command.client_port.is_some_and(|port| server_ports.contains(&port)) {
            continue;
        } else if background.contains(&(command.command.clone(), command.first_argument.clone())) {
            &mut counts.background
        } else {
            &mut counts.sent
        };
        *bucket.entry(command.command.clone()).or_insert(0) += 1;
    }
    counts
}

/// What the server's connections (`server_ports`) sent while it served nothing: its
/// background commands, by name and key.
pub(super) fn background_commands(
    seen: &[MonitoredCommand],
    server_ports: &BTreeSet<u16>,
) -> BTreeSet<BackgroundCommand> {
    seen.iter()
        .filter(|command| !command.from_script && command.client_port.is_some_and(|port| server_ports.contains(&port)))
        .map(|command| (command.command.clone(), command.first_argument.clone()))
        .collect()
}

/// [`count_commands`] over several nodes, each watched by its own `MONITOR`: `seen[i]` is what
/// node `i` saw and `server_ports[i]` the server's own connections to node `i` (a local port
/// may be reused towards another node, so each node is read with its own ports), added up.
pub(super) fn count_commands_on_nodes(
    seen: &[Vec<MonitoredCommand>],
    server_ports: &[BTreeSet<u16>],
    background: &BTreeSet<BackgroundCommand>,
) -> CommandCounts {
    let mut total = CommandCounts::default();
    for (seen, ports) in seen.iter().zip(server_ports) {
        let node = count_commands(seen, ports, background);
        for (sum, calls_by_name) in [
            (&mut total.sent, node.sent),
            (&mut total.in_scripts, node.in_scripts),
            (&mut total.background, node.background),
        ] {
            for (name, calls) in calls_by_name {
                *sum.entry(name).or_insert(0) += calls;
            }
        }
    }
    total
}

/// [`background_commands`] over several nodes (as [`count_commands_on_nodes`] reads them): what
/// the server sent on its own to any of them.
pub(super) fn background_commands_on_nodes(
    seen: &[Vec<MonitoredCommand>],
    server_ports: &[BTreeSet<u16>],
) -> BTreeSet<BackgroundCommand> {
    seen.iter().zip(server_ports).flat_map(|(seen, ports)| background_commands(seen, ports)).collect()
}

enum MonitorEvent {
    Started,
    Finished(Vec<MonitoredCommand>),
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
    /// Every command seen since the start: sends a marker command and waits until the monitor
    /// has seen it, so no command sent before is missed.
    pub(super) fn finish(mut self) -> Result<Vec<MonitoredCommand>> {
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

/// A `MONITOR` on each of a topology's primaries ([`RedisNodes::monitor`]).
#[derive(Debug)]
pub(super) struct Monitors {
    monitors: Vec<Monitor>,
}

impl Monitors {
    /// What each primary saw since the start, in [`RedisNodes::primaries`]' order (see
    /// [`Monitor::finish`]).
    pub(super) fn finish(self) -> Result<Vec<Vec<MonitoredCommand>>> {
        self.monitors.into_iter().map(Monitor::finish).collect()
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MonitoredCommand {
    pub(super) from_script: bool,
    /// The client's port (`127.0.0.1:50000`); none for a script or a unix socket.
    pub(super) client_port: Option<u16>,
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
    let client_port = source.rsplit_once(':').and_then(|(_, port)| port.parse().ok());
    Some(MonitoredCommand { from_script: source == "lua", client_port, command, first_argument: words.next() })
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
