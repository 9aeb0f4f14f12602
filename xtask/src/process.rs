//! Running other programs: to completion within a deadline with their output captured, or
//! sharing the terminal; how a command is named in messages; how a child's exit status
//! becomes xtask's own; and what every command that starts servers shares — free loopback
//! ports (from `dev-support`), the tail of a server's log, and the watchdog that cleans up when xtask is killed.

use std::fs;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Runs `command` with captured stdout and stderr, killing it when it outlives `timeout`.
///
/// The pipes are drained on their own threads, so a chatty command cannot block on a full pipe
/// while we wait for it.
pub(crate) fn output_within(command: &mut Command, timeout: Duration) -> Result<Output> {
    let shown = describe(command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{shown}`"))?;
    let stdout = child.stdout.take().map(|pipe| thread::spawn(move || read_all(pipe)));
    let stderr = child.stderr.take().map(|pipe| thread::spawn(move || read_all(pipe)));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().with_context(|| format!("waiting for `{shown}`"))? {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill().ok();
            child.wait().ok();
            bail!("`{shown}` did not finish within {} s", timeout.as_secs());
        }
        thread::sleep(Duration::from_millis(20));
    };
    let joined =
        |reader: Option<thread::JoinHandle<Vec<u8>>>| reader.and_then(|handle| handle.join().ok()).unwrap_or_default();
    Ok(Output { status, stdout: joined(stdout), stderr: joined(stderr) })
}

/// Runs `command` on the terminal (inherited stdio) and returns its exit status.
pub(crate) fn status_of(command: &mut Command) -> Result<ExitStatus> {
    command.status().with_context(|| format!("cannot run `{}`", describe(command)))
}

/// `program arg arg ...`, for messages; an empty argument shows as `""`.
pub(crate) fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    for arg in command.get_args() {
        let arg = arg.to_string_lossy();
        words.push(if arg.is_empty() { "\"\"".to_owned() } else { arg.into_owned() });
    }
    words.join(" ")
}

/// stdout and stderr of a finished command, trimmed and joined, for an error message.
pub(crate) fn combined_output(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    [stdout.trim(), stderr.trim()].into_iter().filter(|text| !text.is_empty()).collect::<Vec<_>>().join("\n")
}

/// The exit code xtask should end with after a child ended with `status`: the child's own code,
/// or 128 + the signal that killed it, as shells report it.
pub(crate) fn exit_code(status: ExitStatus) -> ExitCode {
    if status.success() {
        return ExitCode::SUCCESS;
    }
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .and_then(|code| u8::try_from(code).ok())
        .filter(|code| *code != 0)
        .unwrap_or(1);
    ExitCode::from(code)
}

fn read_all(mut pipe: impl Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    pipe.read_to_end(&mut bytes).ok();
    bytes
}

/// A loopback port that is free now, not in `taken`, and with its cluster bus port free too
/// when `cluster_bus` (see `dev_support::ports`).
pub(crate) fn free_port(taken: &[u16], cluster_bus: bool) -> Result<u16> {
    dev_support::ports::free_port_avoiding(taken, cluster_bus).context("cannot find a free port on 127.0.0.1")
}

/// The last ten lines of a log, indented, to put in an error; empty when there is no log.
pub(crate) fn log_tail(log: &Path) -> String {
    let Ok(text) = fs::read_to_string(log) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(10)..];
    if tail.is_empty() {
        return String::new();
    }
    format!("; its last lines:\n    {}", tail.join("\n    "))
}

/// Waits (ignoring SIGINT and SIGHUP) while its parent is this xtask; once xtask is gone
/// (killed: `Drop` never ran), stops the servers listed in the registry, if any (`pid exe`
/// lines; a pid is signalled only while it still runs that executable), then the Redis
/// topologies this run owns (`xtask redis reap`). `$$` is the shell itself; field 4 of
/// `/proc/$$/stat` is its current parent, which changes when xtask dies, even before the dead
/// xtask is reaped.
const WATCHDOG_SCRIPT: &str = r#"trap '' INT HUP
owner=$1; xtask=$2; registry=$3; shift 3
while read -r _ _ _ parent _ < /proc/$$/stat && [ "$parent" = "$owner" ]; do sleep 1; done
if [ -n "$registry" ] && [ -f "$registry" ]; then
  while read -r pid exe; do
    if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ]; then kill -TERM "$pid" 2>/dev/null; fi
  done < "$registry"
fi
exec "$xtask" redis reap "$owner" "$@"
"#;

/// The watchdog shell; dropping it ends it (the run cleaned up after itself).
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Option<Child>,
}

impl Watchdog {
    /// Starts the watchdog for the servers in `registry` (none: `None`) and the Redis
    /// `topologies`. Without `sh`, a killed run leaves its processes; that is said once.
    pub(crate) fn start(registry: Option<&Path>, topologies: &[&str]) -> Watchdog {
        let spawned = std::env::current_exe().and_then(|xtask| {
            Command::new("sh")
                .args(["-c", WATCHDOG_SCRIPT, "xtask-watchdog"])
                .arg(std::process::id().to_string())
                .arg(xtask)
                .arg(registry.map(Path::as_os_str).unwrap_or_default())
                .args(topologies)
                .stdin(Stdio::null())
                .spawn()
        });
        match spawned {
            Ok(child) => Watchdog { child: Some(child) },
            Err(error) => {
                let servers =
                    registry.map(|registry| format!("stop its servers (pids in {}) and ", registry.display()));
                eprintln!(
                    "xtask: no watchdog ({error}); if this run is killed, {}run `cargo xtask redis down`",
                    servers.unwrap_or_default()
                );
                Watchdog { child: None }
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}
