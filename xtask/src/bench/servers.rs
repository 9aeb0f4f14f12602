//! The processes the HTTP benchmark (and `cargo xtask fuzz`) starts and must stop again: the servers under test (each on
//! a free loopback port, its output in a log under `target/bench/logs/`, stopped on drop —
//! SIGTERM, then SIGKILL), what `/proc` says about a process (CPU time, peak RSS), and a
//! watchdog that stops those servers and the benchmark's Redis when xtask itself is killed and
//! no `Drop` runs.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dev_support::signal::{self, Signal};

use super::probe::HttpClient;
use crate::process;

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const TERM_TIMEOUT: Duration = Duration::from_secs(10);

/// A server under test, running as a child of xtask; dropping it stops it.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `command` (which must make the server listen on 127.0.0.1:`port`) with its output
    /// in `logs/<name>.log`, records its pid in `registry` for the watchdog, and waits until it
    /// answers HTTP.
    pub(crate) fn start(
        name: &'static str,
        command: &mut Command,
        port: u16,
        logs: &Path,
        registry: &Path,
    ) -> Result<ServerProcess> {
        let log = logs.join(format!("{name}.log"));
        let file = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone().with_context(|| format!("cannot share {}", log.display()))?)
            .stderr(file);
        let child =
            command.spawn().with_context(|| format!("cannot start {name}: `{}`", crate::process::describe(command)))?;
        let mut server = ServerProcess { name, child, port, log };
        server.register(registry)?;
        server.wait_ready()?;
        Ok(server)
    }

    pub(super) fn name(&self) -> &'static str {
        self.name
    }

    pub(super) fn port(&self) -> u16 {
        self.port
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error naming the server and quoting its log when it has exited.
    pub(crate) fn ensure_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                bail!("{} exited ({status}); see {}{}", self.name, self.log.display(), process::log_tail(&self.log))
            }
            Err(error) => Err(error).with_context(|| format!("cannot check on {}", self.name)),
        }
    }

    /// `pid exe` in the registry, for the watchdog, which only signals a pid that still runs
    /// the same executable.
    fn register(&self, registry: &Path) -> Result<()> {
        let exe = fs::read_link(format!("/proc/{}/exe", self.pid()))
            .with_context(|| format!("cannot read the executable of {} (pid {})", self.name, self.pid()))?;
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(registry)
            .and_then(|mut file| writeln!(file, "{} {}", self.pid(), exe.display()))
            .with_context(|| format!("cannot append to {}", registry.display()))
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.ensure_alive()?;
            let answered = HttpClient::connect(self.port).and_then(|mut client| client.get("/healthz", None));
            match answered {
                Ok(_) => return Ok(()),
                Err(error) if Instant::now() >= deadline => {
                    return Err(error).context(format!(
                        "{} did not answer HTTP on 127.0.0.1:{} within {} s; see {}{}",
                        self.name,
                        self.port,
                        READY_TIMEOUT.as_secs(),
                        self.log.display(),
                        process::log_tail(&self.log)
                    ));
                }
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl ServerProcess {
    /// SIGTERM, then waits (at most `timeout`) for an exit with status 0: a clean stop.
    pub(super) fn terminate(&mut self, timeout: Duration) -> Result<()> {
        signal::send(self.pid(), Signal::Terminate).with_context(|| format!("cannot signal {}", self.name))?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().with_context(|| format!("waiting for {}", self.name))? {
                if !status.success() {
                    bail!("{} exited with {status} after SIGTERM{}", self.name, process::log_tail(&self.log));
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{} did not exit within {} s of SIGTERM", self.name, timeout.as_secs());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        signal::send(self.pid(), Signal::Terminate).ok();
        let deadline = Instant::now() + TERM_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!("xtask: {} ignored SIGTERM for {} s; killing it", self.name, TERM_TIMEOUT.as_secs());
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Clock ticks per second, the unit of CPU times in `/proc/<pid>/stat`.
pub(super) fn clock_ticks_per_second() -> Result<f64> {
    let output = Command::new("getconf").arg("CLK_TCK").output().context("cannot run `getconf CLK_TCK`")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|ticks| *ticks > 0.0)
        .with_context(|| format!("`getconf CLK_TCK` said {text:?}"))
}

/// User plus system CPU time of process `pid` so far, in clock ticks.
pub(super) fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_cpu_ticks(&text).with_context(|| format!("unexpected {path}: {text:?}"))
}

/// utime + stime from a `/proc/<pid>/stat` line: fields 14 and 15, counted after the command
/// name in parentheses (which may itself hold spaces and parentheses).
pub(super) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so utime (14) is index 11, stime (15) 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Peak resident set size of process `pid` (`VmHWM`), in KiB.
pub(super) fn peak_rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resident set size of process `pid` now (`VmRSS`), in KiB.
pub(super) fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_status_kib(&text, field).with_context(|| format!("no {field} in {path}"))
}

/// The KiB of a `/proc/<pid>/status` line such as `VmHWM:\t   18432 kB`.
pub(super) fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The local ports of process `pid`'s TCP connections to 127.0.0.1:`redis_port` (its
/// sockets in `/proc/<pid>/fd`, looked up in `/proc/<pid>/net/tcp` and `tcp6`): how `MONITOR`
/// lines (`[0 127.0.0.1:PORT]`) are told to be from this server rather than another.
pub(super) fn redis_connection_ports(pid: u32, redis_port: u16) -> Result<BTreeSet<u16>> {
    let fd_dir = format!("/proc/{pid}/fd");
    let mut inodes = BTreeSet::new();
    for entry in fs::read_dir(&fd_dir).with_context(|| format!("cannot list {fd_dir}"))? {
        let Ok(target) = entry.and_then(|entry| fs::read_link(entry.path())) else { continue };
        let target = target.to_string_lossy();
        if let Some(inode) = target.strip_prefix("socket:[").and_then(|rest| rest.strip_suffix(']')) {
            inodes.extend(inode.parse::<u64>().ok());
        }
    }
    let mut ports = BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        let path = format!("/proc/{pid}/net/{table}");
        let Ok(text) = fs::read_to_string(&path) else { continue };
        ports.extend(
            parse_proc_net_tcp(&text)
                .into_iter()
                .filter(|socket| socket.remote_port == redis_port && inodes.contains(&socket.inode))
                .map(|socket| socket.local_port),
        );
    }
    if ports.is_empty() {
        bail!("process {pid} has no connection to redis on port {redis_port}");
    }
    Ok(ports)
}

/// One line of `/proc/net/tcp`: the ports (hex after the address) and the socket's inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TcpSocket {
    pub(super) local_port: u16,
    pub(super) remote_port: u16,
    pub(super) inode: u64,
}

/// `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
/// ...` lines (the header and anything unreadable are skipped).
pub(super) fn parse_proc_net_tcp(text: &str) -> Vec<TcpSocket> {
    let port = |address: &str| u16::from_str_radix(address.rsplit_once(':')?.1, 16).ok();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some(TcpSocket {
                local_port: port(fields.get(1)?)?,
                remote_port: port(fields.get(2)?)?,
                inode: fields.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// Stops what a registry left by an earlier, killed run still names (each pid only while it
/// runs the recorded executable), then empties it.
pub(crate) fn reset_registry(registry: &Path) -> Result<()> {
    if let Ok(text) = fs::read_to_string(registry) {
        for line in text.lines() {
            let Some((pid, exe)) = line.split_once(' ') else { continue };
            let running = fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|path| path == Path::new(exe));
            if running {
                eprintln!("xtask: stopping {exe} (pid {pid}), left running by an earlier benchmark");
                if let Ok(pid) = pid.parse() {
                    signal::send(pid, Signal::Terminate).ok();
                }
            }
        }
    }
    fs::write(registry, "").with_context(|| format!("cannot write {}", registry.display()))
}
