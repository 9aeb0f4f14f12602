//! Private Redis topologies on free loopback ports, each under `target/redis/<name>/`:
//! `cargo xtask redis up|down|status`, and the `start`/`stop` that `cargo xtask test` uses.
//!
//! xtask only ever stops processes it started. It knows them by their pid files, which are
//! recorded in the topology's `state.env` *before* each process is launched, so a start that
//! fails halfway, or an xtask that is killed, leaves nothing that `redis down` cannot find.

mod server;
mod state;
mod topology;

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};

pub(crate) use dev_support::Topology;

use crate::install::{self, RedisTools};
use crate::workspace;

/// `standalone`, `cluster` or `sentinel`, as a flag names it.
fn parse_topology(text: &str) -> Result<Topology> {
    Topology::ALL
        .into_iter()
        .find(|topology| topology.as_str() == text)
        .with_context(|| format!("unknown topology `{text}`: expected standalone, cluster or sentinel"))
}

/// `cargo xtask redis ...`
pub(crate) fn command(args: &[String]) -> Result<ExitCode> {
    let Some((subcommand, rest)) = args.split_first() else {
        bail!("`cargo xtask redis` needs a subcommand: up, down or status");
    };
    match subcommand.as_str() {
        "up" => up(topology_flag(rest)?.unwrap_or(Topology::Standalone)),
        "down" => down(topology_flag(rest)?),
        "status" => {
            if let Some(extra) = rest.first() {
                bail!("`redis status` takes no arguments, got `{extra}`");
            }
            status()
        }
        // Internal: what the watchdog of `cargo xtask test` runs when its xtask died.
        "reap" => reap(rest),
        other => bail!("unknown `redis` subcommand `{other}`: expected up, down or status"),
    }
}

/// Starts `topology` in `target/redis/<name>/`, first stopping whatever an earlier start left
/// there, and returns its URL. `owner` is the pid of a `cargo xtask test` that will stop it
/// again. On failure everything already launched is stopped; the logs stay for reading.
pub(crate) fn start(tools: &RedisTools, topology: Topology, name: &str, owner: Option<u32>) -> Result<String> {
    let dir = workspace::redis_dir().join(name);
    if let Some(previous) = state::load(&dir)? {
        if let Some(other) = previous.owner.filter(|pid| *pid != std::process::id())
            && server::pid_exists(other)
        {
            bail!(
                "{} belongs to another `cargo xtask test` (pid {other}) that is still \
                     running; if there is none, run `cargo xtask redis down`",
                dir.display()
            );
        }
        stop(name)?;
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    state::create(&dir, topology, owner)?;

    let mut launcher = topology::Launcher::new(tools, &dir);
    let started = match topology {
        Topology::Standalone => topology::standalone(&mut launcher),
        Topology::Cluster => topology::cluster(&mut launcher),
        Topology::Sentinel => topology::sentinel(&mut launcher),
    }
    .and_then(|url| state::append(&dir, "URL", &url).map(|()| url));
    started.map_err(|error| {
        if let Err(cleanup) = stop(name) {
            eprintln!("xtask: stopping the half-started {name} failed too: {cleanup:#}");
        }
        error.context(format!("starting redis {} `{name}` failed (logs under {})", topology.as_str(), dir.display()))
    })
}

/// Stops every process recorded for topology `name` and forgets it; returns how many were
/// running. The directory with the logs stays until the next start.
pub(crate) fn stop(name: &str) -> Result<usize> {
    let dir = workspace::redis_dir().join(name);
    let Some(state) = state::load(&dir)? else {
        return Ok(0);
    };
    let stopped = server::stop_all(&state.pid_files)?;
    let path = state::path(&dir);
    fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    Ok(stopped)
}

/// Stops topology `name` if the process `owner` started it (its `OWNER_PID`); returns how many
/// processes were running. Another run's topology of the same name is left alone.
pub(crate) fn stop_if_owned(name: &str, owner: u32) -> Result<usize> {
    let state = state::load(&workspace::redis_dir().join(name))?;
    if state.is_some_and(|state| state.owner == Some(owner)) { stop(name) } else { Ok(0) }
}

fn up(topology: Topology) -> Result<ExitCode> {
    let name = topology.as_str();
    let dir = workspace::redis_dir().join(name);
    if let Some(state) = state::load(&dir)? {
        if let Some(url) = state.url.as_deref().filter(|_| server::all_alive(&state.pid_files)) {
            eprintln!("xtask: redis {name} is already running");
            println!("{url}");
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("xtask: redis {name} is only partly running; restarting it");
    }
    let tools = install::ensure_redis()?;
    let started = Instant::now();
    let url = start(&tools, topology, name, None)?;
    eprintln!(
        "xtask: redis {name} is up after {:.1} s, files under {}; `cargo xtask redis down` stops it",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    println!("{url}");
    Ok(ExitCode::SUCCESS)
}

fn down(only: Option<Topology>) -> Result<ExitCode> {
    let mut names = known_names()?;
    if let Some(topology) = only {
        names.retain(|name| name == topology.as_str());
    }
    if names.is_empty() {
        eprintln!("xtask: no redis topology started by xtask is running");
    }
    for name in names {
        let dir = workspace::redis_dir().join(&name);
        let owner = state::load(&dir)?.and_then(|state| state.owner);
        if let Some(owner) = owner.filter(|pid| server::pid_exists(*pid)) {
            eprintln!("xtask: leaving {name}: the `cargo xtask test` running as pid {owner} owns it");
            continue;
        }
        let stopped = stop(&name)?;
        eprintln!("xtask: stopped redis {name} ({stopped} running processes)");
    }
    Ok(ExitCode::SUCCESS)
}

fn status() -> Result<ExitCode> {
    let names = known_names()?;
    if names.is_empty() {
        println!("no redis topology started by xtask is running");
    }
    for name in names {
        let Some(state) = state::load(&workspace::redis_dir().join(&name))? else {
            continue;
        };
        let alive = server::count_alive(&state.pid_files);
        let url = state.url.as_deref().unwrap_or("(start did not finish)");
        let owner = state.owner.map(|pid| format!(", owned by pid {pid}")).unwrap_or_default();
        let topology = state.topology.as_deref().unwrap_or("?");
        let total = state.pid_files.len();
        println!("{name:<16} {topology:<10} {alive}/{total} processes alive{owner}  {url}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `redis reap OWNER NAME...`: stops each named topology that `OWNER` started.
fn reap(args: &[String]) -> Result<ExitCode> {
    let Some((owner, names)) = args.split_first() else {
        bail!("`redis reap` needs an owner pid and topology names");
    };
    let owner: u32 = owner.parse().with_context(|| format!("bad owner pid `{owner}`"))?;
    for name in names {
        let stopped = stop_if_owned(name, owner)?;
        if stopped > 0 {
            eprintln!("xtask: the test run ended; stopped redis {name} ({stopped} processes)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Names of the topology directories that hold a `state.env`, sorted.
fn known_names() -> Result<Vec<String>> {
    let root = workspace::redis_dir();
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).context(format!("cannot list {}", root.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let dir: PathBuf = entry.with_context(|| format!("cannot list {}", root.display()))?.path();
        if state::path(&dir).is_file()
            && let Some(name) = dir.file_name().and_then(|name| name.to_str())
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The `--topology NAME` (or `--topology=NAME`) flag, the only one `up` and `down` take.
fn topology_flag(args: &[String]) -> Result<Option<Topology>> {
    match args {
        [] => Ok(None),
        [flag, value] if flag == "--topology" => parse_topology(value).map(Some),
        [flag] if flag.starts_with("--topology=") => parse_topology(&flag["--topology=".len()..]).map(Some),
        _ => bail!("expected `--topology standalone|cluster|sentinel`, got `{}`", args.join(" ")),
    }
}

#[cfg(test)]
mod tests;
