//! `cargo xtask bench [--quick]`: starts a private standalone Redis (no persistence) owned by
//! this run, runs the release-mode benchmarks against it, and stops it however the run ends.
//! Results are printed as markdown tables of ratios measured in the same run and written under
//! `target/bench/`.

use std::process::{ExitCode, ExitStatus};

use anyhow::{Result, bail};

use crate::install;
use crate::process;
use crate::redis::{self, Topology};
use crate::workspace;

const BENCH_TOPOLOGY: &str = "bench-standalone";

/// `cargo xtask bench [--quick]`
pub(crate) fn command(args: &[String]) -> Result<ExitCode> {
    let quick = match args {
        [] => false,
        [flag] if flag == "--quick" => true,
        _ => bail!("usage: cargo xtask bench [--quick]"),
    };
    run(quick).map(process::exit_code)
}

fn run(quick: bool) -> Result<ExitStatus> {
    let tools = install::ensure_redis()?;
    let url = redis::start(&tools, Topology::Standalone, BENCH_TOPOLOGY, Some(std::process::id()))?;
    let _stop = StopOnDrop;
    let mut bench = workspace::cargo();
    bench
        .args(["bench", "--package", "cache-toolkit", "--bench", "toolkit"])
        .env("TESSERA_BENCH_REDIS_URL", &url)
        .env("TESSERA_BENCH_QUICK", if quick { "1" } else { "0" });
    eprintln!("xtask: {}", process::describe(&bench));
    process::status_of(&mut bench)
}

/// Stops the benchmark's Redis on every way out of `run`.
struct StopOnDrop;

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Err(error) = redis::stop_if_owned(BENCH_TOPOLOGY, std::process::id()) {
            eprintln!("xtask: stopping redis {BENCH_TOPOLOGY} failed: {error:#}");
        }
    }
}
