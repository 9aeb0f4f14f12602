//! `cargo xtask test`: builds the `tessera` binary, makes sure `nginx` and `caddy` are
//! installed (the forward-auth tests run their own), `promtool` (the alerting rules' tests) and
//! the FastAPI example's private Python environment, starts private Redis topologies (standalone, 6-node
//! cluster, sentinel) that belong to this run, runs `cargo test` against them with their URLs in
//! the environment, and stops them again however the run ends.

use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus};

use anyhow::{Context, Result, bail};
use dev_support::env;

use crate::install::{self, RedisTools};
use crate::process;
use crate::redis::{self, Topology};
use crate::venv;
use crate::workspace;

/// The topologies of a test run, in `target/redis/<name>`, apart from those of `redis up`.
const TEST_TOPOLOGIES: [(Topology, &str); 3] = [
    (Topology::Standalone, "test-standalone"),
    (Topology::Cluster, "test-cluster"),
    (Topology::Sentinel, "test-sentinel"),
];

/// `cargo xtask test [ARGS...]`
pub(crate) fn command(args: &[String]) -> Result<ExitCode> {
    run(args).map(process::exit_code)
}

/// Does the whole run and returns `cargo test`'s exit status; `ci` calls this too.
pub(crate) fn run(args: &[String]) -> Result<ExitStatus> {
    let tools = install::ensure_redis()?;
    let nginx = install::ensure_tool("nginx", "nginx")?;
    let caddy = install::ensure_tool("caddy", "caddy")?;
    let promtool = install::ensure_tool("promtool", "prometheus")?;
    let fastapi = venv::ensure(
        "venv-fastapi",
        &workspace::root().join("examples").join("fastapi").join("requirements.txt"),
        "uvicorn",
    )?;
    let tessera = build_tessera()?;
    let topologies = TestTopologies::start(&tools)?;

    let mut cargo_test = workspace::cargo();
    cargo_test.arg("test");
    if !selects_packages(args) {
        cargo_test.arg("--workspace");
    }
    cargo_test
        .args(args)
        .env(env::REDIS_URL, topologies.url(Topology::Standalone)?)
        .env(env::REDIS_CLUSTER_URL, topologies.url(Topology::Cluster)?)
        .env(env::REDIS_SENTINEL_URL, topologies.url(Topology::Sentinel)?)
        .env(env::REDIS_SERVER, &tools.server)
        .env(env::TESSERA_BIN, &tessera)
        .env(env::NGINX, &nginx)
        .env(env::CADDY, &caddy)
        .env(env::PROMTOOL, &promtool)
        .env(env::FASTAPI_PYTHON, fastapi.join("bin").join("python"));
    eprintln!("xtask: {}", process::describe(&cargo_test));
    let status = process::status_of(&mut cargo_test);
    drop(topologies);
    status
}

/// `cargo build --bin tessera`, and the path of the binary it made.
pub(crate) fn build_tessera() -> Result<PathBuf> {
    let mut build = workspace::cargo();
    build.args(["build", "--bin", "tessera"]);
    eprintln!("xtask: {}", process::describe(&build));
    let status = process::status_of(&mut build)?;
    if !status.success() {
        bail!("`{}` failed with {status}", process::describe(&build));
    }
    let binary = workspace::target_dir().join("debug").join("tessera");
    if !binary.is_file() {
        bail!("`cargo build --bin tessera` succeeded but made no {}", binary.display());
    }
    Ok(binary)
}

/// Whether `cargo test` args pick packages themselves (`-p`, `--package`), which cargo refuses
/// to combine with `--workspace`. Only args before a `--` are cargo's.
fn selects_packages(args: &[String]) -> bool {
    args.iter().take_while(|arg| *arg != "--").any(|arg| {
        arg == "--package" || arg.starts_with("--package=") || (arg.starts_with("-p") && !arg.starts_with("--"))
    })
}

/// The running test topologies; dropping it stops them all, on success, on error and on panic.
///
/// Being killed (Ctrl-C) skips `Drop`, so a watchdog shell is started first: it ignores SIGINT
/// and, once this xtask is gone, runs `xtask redis reap`, which stops the topologies this run
/// owns (the `OWNER_PID` in their `state.env`) and nothing else.
#[derive(Debug)]
struct TestTopologies {
    urls: Vec<(Topology, String)>,
    _watchdog: process::Watchdog,
}

impl TestTopologies {
    fn start(tools: &RedisTools) -> Result<TestTopologies> {
        let mut topologies = TestTopologies {
            urls: Vec::new(),
            _watchdog: process::Watchdog::start(None, &TEST_TOPOLOGIES.map(|(_, name)| name)),
        };
        for (topology, name) in TEST_TOPOLOGIES {
            eprintln!("xtask: starting redis {name}");
            let url = redis::start(tools, topology, name, Some(std::process::id()))?;
            eprintln!("xtask: redis {name} is up: {url}");
            topologies.urls.push((topology, url));
        }
        Ok(topologies)
    }

    fn url(&self, topology: Topology) -> Result<&str> {
        self.urls
            .iter()
            .find(|(started, _)| *started == topology)
            .map(|(_, url)| url.as_str())
            .with_context(|| format!("no {} topology was started", topology.as_str()))
    }
}

impl Drop for TestTopologies {
    fn drop(&mut self) {
        // Every name this run owns, not only those in `urls`: a start that failed halfway
        // cleans up after itself, but stopping an absent topology costs nothing.
        for (_, name) in TEST_TOPOLOGIES {
            match redis::stop_if_owned(name, std::process::id()) {
                Ok(0) => {}
                Ok(stopped) => eprintln!("xtask: stopped redis {name} ({stopped} processes)"),
                Err(error) => eprintln!("xtask: stopping redis {name} failed: {error:#}"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
