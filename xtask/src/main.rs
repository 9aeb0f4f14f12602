//! `cargo xtask`: Tessera's dev commands. This file only parses the command line and dispatches;
//! each command lives in its own module: `redis` (private topologies), `test`, `ci`, `bench`, `fuzz`, and the
//! `tidy` checks that run as plain tests. xtask depends on no Tessera crate.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "xtask is a command-line tool that reports to the terminal"
)]

mod bench;
mod ci;
mod fuzz;
mod install;
mod process;
mod redis;
mod test;
#[cfg(test)]
mod tidy;
mod venv;
mod workspace;

use std::process::ExitCode;

use anyhow::{Result, bail};

const HELP: &str = "\
cargo xtask <command>

commands:
  redis up [--topology standalone|cluster|sentinel]
                  start a private Redis topology (default standalone) on free loopback ports,
                  with its files under target/redis/<topology>/, and print its URL
  redis down [--topology standalone|cluster|sentinel]
                  stop the topologies xtask started (all of them, or the one named)
  redis status    list the topologies xtask started, their URLs and whether they are alive
  test [ARGS...]  build `tessera`, make sure nginx is installed, start a private standalone
                  Redis, a 6-node cluster and a sentinel, run `cargo test --workspace ARGS...`
                  against them, stop them again
  ci              cargo fmt --check, cargo clippy -D warnings, what `test` does, then what
                  `fuzz` does
  fuzz            build `tessera`, start a private Redis and a tessera on it, and fuzz the HTTP
                  API from the OpenAPI document it serves (/openapi.json) with schemathesis,
                  installed (pinned) into target/xtask/venv: fails on any 5xx and on any answer
                  the document does not describe
  bench [--quick] build release, start a private Redis, seed 10,000 users and drive
                  GET /auth/verify with wrk against the ceiling, the naive port and tessera
                  (Redis, embedded, floods) in interleaved rounds, plus redis-benchmark and the
                  toolkit micro-benchmark; prints ratios and budgets, writes target/bench/latest.*
                  and, for a full run, docs/BENCHMARKS.md
  bench --soak [SECONDS]
                  tessera on the embedded store with sliding expiry under full load for SECONDS
                  (default 60): RSS and the store's keys and expiry index sampled every 5 s;
                  fails on errors, a growing expiry index or memory; writes target/bench/soak.md
  help            this text

redis-server, redis-cli, nginx, caddy, promtool and python3 are taken from PATH, then from
/usr/local/sbin, /usr/sbin and /sbin. When one is missing and xtask runs as root where apt-get
exists, it installs the Debian package (redis-server, nginx, caddy, prometheus, python3 and
python3-venv) with no service started, and stops any system service the package started anyway,
so nothing is left on the default port (6379, 80, 9090); otherwise it says what to install.

`test` exports to the tests:
  TESSERA_TEST_REDIS_URL          redis://127.0.0.1:PORT
  TESSERA_TEST_REDIS_CLUSTER_URL  redis-cluster://127.0.0.1:PORT?node=...
  TESSERA_TEST_REDIS_SENTINEL_URL redis-sentinel://127.0.0.1:PORT/0?sentinelServiceName=tessera
  TESSERA_TEST_REDIS_SERVER       absolute path of redis-server, for tests that run their own
  TESSERA_TEST_BIN                absolute path of the freshly built tessera binary
  TESSERA_TEST_NGINX              absolute path of nginx, for the forward-auth tests
  TESSERA_TEST_CADDY              absolute path of caddy, for the forward-auth test through Caddy
  TESSERA_TEST_PROMTOOL           absolute path of promtool, for examples/observability
  TESSERA_TEST_FASTAPI_PYTHON     the python of target/xtask/venv-fastapi (examples/fastapi)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode> {
    let Some((command, rest)) = args.split_first() else {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    };
    match command.as_str() {
        "redis" => redis::command(rest),
        "test" => test::command(rest),
        "ci" => ci::command(rest),
        "bench" => bench::command(rest),
        "fuzz" => fuzz::command(rest),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command `{other}`; `cargo xtask help` lists the commands"),
    }
}
