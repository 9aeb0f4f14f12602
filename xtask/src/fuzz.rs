//! `cargo xtask fuzz`, also the last step of `cargo xtask ci`: property-based fuzzing of the HTTP
//! API from its OpenAPI document. It builds `tessera`, starts a private standalone Redis and a
//! `tessera` on it (both owned by this run, on free loopback ports), and runs schemathesis
//! against the document that server serves at `/openapi.json`: no answer may be a 5xx, and
//! every answer must match the document (status, body schema, headers, content type).
//!
//! Schemathesis and everything it pulls in are pinned in `xtask/schemathesis/requirements.txt`
//! and installed with pip into a private virtual environment, `target/xtask/venv`, made once and
//! reused until that file changes. Its settings are `xtask/schemathesis/schemathesis.toml`; `xtask/schemathesis/hooks.py` gives
//! every request the internal key and a live bearer token. Tessera's log is
//! `target/xtask/fuzz/tessera.log`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::bench::{self, TesseraStore, servers};
use crate::install;
use crate::process;
use crate::redis::{self, Topology};
use crate::test;
use crate::venv;
use crate::workspace;

/// The private Redis of a fuzzing run, in `target/redis/fuzz-standalone/`.
const FUZZ_TOPOLOGY: &str = "fuzz-standalone";
/// The internal key of the `tessera` under test, which listens on loopback for this run only.
const INTERNAL_KEY: &str = "xtask-fuzz-internal-key-0123456789";

/// `cargo xtask fuzz`
pub(crate) fn command(args: &[String]) -> Result<ExitCode> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask fuzz` takes no arguments, got `{extra}`");
    }
    run().map(process::exit_code)
}

/// Does the whole run and returns schemathesis's exit status; `ci` calls this too.
pub(crate) fn run() -> Result<ExitStatus> {
    let started = Instant::now();
    let config_dir = workspace::root().join("xtask").join("schemathesis");
    let schemathesis = ensure_schemathesis(&config_dir)?;
    let tools = install::ensure_redis()?;
    let tessera = test::build_tessera()?;
    let dir = workspace::target_dir().join("xtask").join("fuzz");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    // Dropped last, after the guards below have stopped what they guard.
    let registry = dir.join("servers.pids");
    let _watchdog = process::Watchdog::start(Some(&registry), &[FUZZ_TOPOLOGY]);
    let url = redis::start(&tools, Topology::Standalone, FUZZ_TOPOLOGY, Some(std::process::id()))?;
    let _stop_redis = StopRedisOnDrop;
    servers::reset_registry(&registry)?;
    let port = process::free_port(&[bench::port_of(&url)?], false)?;
    let mut command =
        bench::tessera_command(&tessera, port, TesseraStore::Redis { url: &url, near_cache: true }, INTERNAL_KEY);
    let mut server = servers::ServerProcess::start("tessera", &mut command, port, &dir, &registry)?;

    let base_url = format!("http://127.0.0.1:{port}");
    let mut fuzz = Command::new(&schemathesis);
    fuzz.current_dir(&dir)
        .arg("--config-file")
        .arg(config_dir.join("schemathesis.toml"))
        .args(["run", &format!("{base_url}/openapi.json")])
        .env("SCHEMATHESIS_HOOKS", config_dir.join("hooks.py"))
        .env("TESSERA_FUZZ_URL", &base_url)
        .env("TESSERA_FUZZ_INTERNAL_KEY", INTERNAL_KEY);
    eprintln!("xtask: {}", process::describe(&fuzz));
    let status = process::status_of(&mut fuzz)?;
    // A crash is a finding too, even one schemathesis saw only as a dropped connection.
    server.ensure_alive().context("tessera did not survive the fuzzing")?;
    eprintln!(
        "xtask: fuzzing took {:.1} s in all; tessera's log is {}",
        started.elapsed().as_secs_f64(),
        dir.join("tessera.log").display()
    );
    Ok(status)
}

/// The schemathesis program of the private virtual environment `target/xtask/venv`, installed
/// first when the environment is missing or was installed from other requirements.
fn ensure_schemathesis(config_dir: &Path) -> Result<PathBuf> {
    let venv = venv::ensure("venv", &config_dir.join("requirements.txt"), "schemathesis")?;
    Ok(venv.join("bin").join("schemathesis"))
}

/// Stops this run's Redis however the run ends.
struct StopRedisOnDrop;

impl Drop for StopRedisOnDrop {
    fn drop(&mut self) {
        if let Err(error) = redis::stop_if_owned(FUZZ_TOPOLOGY, std::process::id()) {
            eprintln!("xtask: stopping redis {FUZZ_TOPOLOGY} failed: {error:#}");
        }
    }
}

#[cfg(test)]
mod tests;
