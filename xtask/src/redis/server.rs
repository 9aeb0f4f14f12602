//! One `redis-server` process: choosing a free loopback port for it, launching it daemonized
//! with its data, log and pid file in its own directory, waiting until it answers, asking it
//! things with `redis-cli`, and stopping processes by pid file (only when the pid is still a
//! `redis-server`: a pid the system has reused for something else is left alone).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use dev_support::signal::{self, Signal};

use crate::install::RedisTools;
use crate::process;

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const TERM_TIMEOUT: Duration = Duration::from_secs(5);
const KILL_TIMEOUT: Duration = Duration::from_secs(2);

/// One server's port and its directory, which holds `redis.pid`, `redis.log` and its data.
#[derive(Debug, Clone)]
pub(super) struct Server {
    pub(super) port: u16,
    pub(super) dir: PathBuf,
}

impl Server {
    pub(super) fn pid_file(&self) -> PathBuf {
        self.dir.join("redis.pid")
    }

    pub(super) fn log_file(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// `127.0.0.1:PORT`
    pub(super) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Launches a daemonized `redis-server` for `server` with `extra` options and waits until it
/// answers PING and has written its pid file.
pub(super) fn launch(tools: &RedisTools, server: &Server, extra: &[&str]) -> Result<()> {
    let mut command = Command::new(&tools.server);
    command
        .args(["--daemonize", "yes", "--pidfile"])
        .arg(server.pid_file())
        .arg("--logfile")
        .arg(server.log_file())
        .arg("--dir")
        .arg(&server.dir)
        .args(["--bind", "127.0.0.1", "--port"])
        .arg(server.port.to_string())
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        // A master otherwise waits 5 s before its first full sync to a new replica.
        .args(["--repl-diskless-sync-delay", "0"])
        .args(extra);
    run_launcher(tools, server, &mut command)
}

/// Launches a daemonized sentinel for `server`, watching the master at `master_port` under the
/// name `service`, with the short timeouts tests want; waits until it answers PING.
pub(super) fn launch_sentinel(tools: &RedisTools, server: &Server, service: &str, master_port: u16) -> Result<()> {
    let config = server.dir.join("sentinel.conf");
    let text = format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         daemonize yes\n\
         pidfile \"{pid_file}\"\n\
         logfile \"{log_file}\"\n\
         dir \"{dir}\"\n\
         protected-mode no\n\
         sentinel monitor {service} 127.0.0.1 {master_port} 1\n\
         sentinel down-after-milliseconds {service} 2000\n\
         sentinel failover-timeout {service} 10000\n",
        port = server.port,
        pid_file = server.pid_file().display(),
        log_file = server.log_file().display(),
        dir = server.dir.display(),
    );
    fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
    let mut command = Command::new(&tools.server);
    command.arg(&config).arg("--sentinel");
    run_launcher(tools, server, &mut command)
}

/// Runs a daemonizing `redis-server` command (it returns once the server has forked), then
/// waits until the server is ready.
fn run_launcher(tools: &RedisTools, server: &Server, command: &mut Command) -> Result<()> {
    let output = process::output_within(command, READY_TIMEOUT)?;
    if !output.status.success() {
        bail!(
            "`{}` failed with {}: {}{}",
            process::describe(command),
            output.status,
            process::combined_output(&output),
            process::log_tail(&server.log_file())
        );
    }
    wait_for(READY_TIMEOUT, &format!("redis-server on {} to answer PING", server.address()), || {
        let reply = cli(tools, server.port, &["ping"])?;
        if reply.trim() != "PONG" {
            bail!("PING answered `{}`", reply.trim());
        }
        if !server.pid_file().is_file() {
            bail!("no pid file {} yet", server.pid_file().display());
        }
        Ok(())
    })
    .map_err(|error| {
        let log = server.log_file();
        anyhow!("{error:#}\n  see {}{}", log.display(), process::log_tail(&log))
    })
}

/// `redis-cli -h 127.0.0.1 -p PORT ARGS...`: its stdout, or an error with its output.
pub(super) fn cli(tools: &RedisTools, port: u16, args: &[&str]) -> Result<String> {
    let mut command = Command::new(&tools.cli);
    command.args(["-h", "127.0.0.1", "-p"]).arg(port.to_string()).args(args);
    let output = process::output_within(&mut command, READY_TIMEOUT)?;
    if !output.status.success() {
        bail!("`{}` failed with {}: {}", process::describe(&command), output.status, process::combined_output(&output));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Calls `ready` until it succeeds, for at most `timeout`; the error says what did not happen
/// and why it last was not ready.
pub(super) fn wait_for(timeout: Duration, what: &str, mut ready: impl FnMut() -> Result<()>) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match ready() {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                return Err(error).context(format!("waited {} s for {what} in vain", timeout.as_secs()));
            }
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Stops the redis-server processes named by `pid_files`: SIGTERM to all, up to 5 s for them
/// to exit, then SIGKILL for the rest. Returns how many were running.
pub(super) fn stop_all(pid_files: &[PathBuf]) -> Result<usize> {
    let mut running = Vec::new();
    for pid_file in pid_files {
        let Some(pid) = read_pid(pid_file) else {
            continue;
        };
        if is_redis_server(pid) {
            running.push(pid);
        } else if pid_exists(pid) {
            eprintln!("xtask: pid {pid} from {} is no longer a redis-server; leaving it alone", pid_file.display());
        }
    }
    signal(&running, Signal::Terminate);
    if wait_until_gone(&running, TERM_TIMEOUT) {
        return Ok(running.len());
    }
    let stubborn: Vec<u32> = running.iter().copied().filter(|pid| is_redis_server(*pid)).collect();
    eprintln!("xtask: redis-server pids {stubborn:?} ignored SIGTERM for 5 s; sending SIGKILL");
    signal(&stubborn, Signal::Kill);
    if !wait_until_gone(&stubborn, KILL_TIMEOUT) {
        bail!("redis-server pids {stubborn:?} are still running after SIGKILL");
    }
    Ok(running.len())
}

/// Whether every pid file names a running redis-server.
pub(super) fn all_alive(pid_files: &[PathBuf]) -> bool {
    count_alive(pid_files) == pid_files.len()
}

/// How many pid files name a running redis-server.
pub(super) fn count_alive(pid_files: &[PathBuf]) -> usize {
    pid_files.iter().filter_map(|pid_file| read_pid(pid_file)).filter(|pid| is_redis_server(*pid)).count()
}

/// Whether any process (even a zombie) has `pid`.
pub(super) fn pid_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` is a live redis-server. A zombie has an empty command line, so it is not.
fn is_redis_server(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("redis-server"))
}

fn read_pid(pid_file: &Path) -> Option<u32> {
    fs::read_to_string(pid_file).ok()?.trim().parse().ok().filter(|pid| *pid > 1)
}

/// Sends `signal` to each pid; a failure (the process just exited) is ignored, the wait that
/// follows tells.
fn signal(pids: &[u32], signal: Signal) {
    for pid in pids {
        signal::send(*pid, signal).ok();
    }
}

fn wait_until_gone(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !pids.iter().any(|pid| is_redis_server(*pid)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
