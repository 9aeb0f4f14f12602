//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first that fails: formatting,
//! clippy with warnings denied, the API docs with rustdoc's warnings denied (a broken intra-doc
//! link fails), the whole test suite as `cargo xtask test` runs it, then the API fuzzing of
//! `cargo xtask fuzz`.

use std::process::{ExitCode, ExitStatus};
use std::time::Instant;

use anyhow::{Result, bail};

use crate::fuzz;
use crate::process;
use crate::test;
use crate::workspace;

type Step = (&'static str, fn() -> Result<ExitStatus>);

const STEPS: [Step; 5] = [
    ("cargo fmt --all -- --check", || process::status_of(workspace::cargo().args(["fmt", "--all", "--", "--check"]))),
    ("cargo clippy --workspace --all-targets -- -D warnings", || {
        process::status_of(workspace::cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
    }),
    ("RUSTDOCFLAGS='-D warnings' cargo doc --no-deps --workspace", || {
        process::status_of(workspace::cargo().env("RUSTDOCFLAGS", "-D warnings").args([
            "doc",
            "--no-deps",
            "--workspace",
        ]))
    }),
    ("cargo xtask test", || test::run(&[])),
    ("cargo xtask fuzz", fuzz::run),
];

/// `cargo xtask ci`
pub(crate) fn command(args: &[String]) -> Result<ExitCode> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask ci` takes no arguments, got `{extra}`");
    }
    let started = Instant::now();
    let outcome = run_steps();
    let seconds = started.elapsed().as_secs_f64();
    match &outcome {
        Ok(code) if *code == ExitCode::SUCCESS => println!("==> ci passed in {seconds:.1} s"),
        _ => println!("==> ci failed after {seconds:.1} s"),
    }
    outcome
}

fn run_steps() -> Result<ExitCode> {
    for (index, (title, step)) in STEPS.iter().enumerate() {
        println!("==> [{}/{}] {title}", index + 1, STEPS.len());
        let started = Instant::now();
        let status = step()?;
        let seconds = started.elapsed().as_secs_f64();
        if !status.success() {
            println!("==> `{title}` failed ({status}) after {seconds:.1} s");
            return Ok(process::exit_code(status));
        }
        println!("==> `{title}` passed in {seconds:.1} s");
    }
    Ok(ExitCode::SUCCESS)
}
