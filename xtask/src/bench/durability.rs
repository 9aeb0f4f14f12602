//! The embedded store's durability, measured: issue throughput (`POST /internal/sessions`
//! under wrk) in memory only, with `TESSERA_FSYNC=everysec` and with `always`, in the same run;
//! then a data directory loaded with many sessions (1 million; 100,000 with `--quick`): the
//! journal's bytes per session after `tessera data compact`, how long a restart takes until
//! `/readyz` answers, and the resident memory after it against the same sessions held in
//! memory only.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::servers::{self, ServerProcess};
use super::{Binaries, TesseraStore, load, tessera_command};
use crate::process;

/// Sessions a data directory is loaded with.
const SESSIONS: u64 = 1_000_000;
const QUICK_SESSIONS: u64 = 100_000;
/// How long each issue row runs.
const ISSUE_SECONDS: u64 = 8;
const QUICK_ISSUE_SECONDS: u64 = 3;
/// Seeding 1 million sessions over HTTP takes about a minute; this bounds it.
const SEED_TIMEOUT: Duration = Duration::from_secs(600);

/// What the section measured.
#[derive(Clone, Debug, Serialize)]
pub(super) struct DurabilityReport {
    /// `(policy, issues per second, non-2xx answers)`: memory only, everysec, always.
    pub(super) issue: Vec<IssueRow>,
    pub(super) sessions: u64,
    pub(super) journal_bytes_per_session: f64,
    pub(super) restart_ms: f64,
    pub(super) rss_kib_durable: u64,
    pub(super) rss_kib_memory: u64,
}

#[derive(Clone, Debug, Serialize)]
pub(super) struct IssueRow {
    pub(super) policy: &'static str,
    pub(super) requests_per_second: f64,
    pub(super) p99_ms: f64,
    pub(super) non_2xx: u64,
}

impl DurabilityReport {
    pub(super) fn rss_ratio(&self) -> f64 {
        self.rss_kib_durable as f64 / self.rss_kib_memory.max(1) as f64
    }

    fn issue_rps(&self, policy: &str) -> Option<f64> {
        self.issue.iter().find(|row| row.policy == policy).map(|row| row.requests_per_second)
    }

    /// The section of the Markdown report.
    pub(super) fn markdown(&self) -> String {
        let mut text = String::from(
            "\n## Durability of the embedded store\n\n| issue row | issues/s | p99 | non-2xx |\n|---|---|---|---|\n",
        );
        for row in &self.issue {
            text.push_str(&format!(
                "| {} | {:.0} | {:.2} ms | {} |\n",
                row.policy, row.requests_per_second, row.p99_ms, row.non_2xx
            ));
        }
        if let (Some(memory), Some(everysec), Some(always)) =
            (self.issue_rps("memory only"), self.issue_rps("everysec"), self.issue_rps("always"))
        {
            text.push_str(&format!(
                "\neverysec issues at {:.2}× memory only, always at {:.2}× everysec.\n",
                everysec / memory.max(1.0),
                always / everysec.max(1.0)
            ));
        }
        text.push_str(&format!(
            "\nWith {} sessions: {:.0} journal bytes per session after `tessera data compact`; a restart \
             answers `/readyz` after {:.0} ms (budget ≤ 5,000 ms for 1 million); resident memory after it \
             {:.1} MiB against {:.1} MiB for the same sessions in memory only: {:.2}× (budget ≤ 2×).\n",
            self.sessions,
            self.journal_bytes_per_session,
            self.restart_ms,
            self.rss_kib_durable as f64 / 1024.0,
            self.rss_kib_memory as f64 / 1024.0,
            self.rss_ratio()
        ));
        text
    }
}

/// Runs the section; `dir` is `target/bench`.
pub(super) fn measure(
    binaries: &Binaries,
    wrk: &Path,
    internal_key: &str,
    dir: &Path,
    logs: &Path,
    registry: &Path,
    quick: bool,
) -> Result<DurabilityReport> {
    let seconds = if quick { QUICK_ISSUE_SECONDS } else { ISSUE_SECONDS };
    let sessions = if quick { QUICK_SESSIONS } else { SESSIONS };
    let script = dir.join("issue.lua");
    load::write_issue_script(&script, internal_key)?;
    let mut issue = Vec::new();
    for (policy, data_dir, fsync) in [
        ("memory only", None, "everysec"),
        ("everysec", Some(dir.join("data-issue-everysec")), "everysec"),
        ("always", Some(dir.join("data-issue-always")), "always"),
    ] {
        let port = process::free_port(&[], false)?;
        let store = TesseraStore::Embedded { data_dir: data_dir.as_deref(), fsync };
        let mut command = tessera_command(&binaries.tessera, port, store, internal_key);
        let server = ServerProcess::start("tessera-issue", &mut command, port, logs, registry)?;
        eprintln!("xtask: durability: issuing for {seconds} s, {policy}");
        let report = load::run_wrk_path(wrk, port, &script, seconds, "/internal/sessions")?;
        issue.push(IssueRow {
            policy,
            requests_per_second: report.requests_per_second,
            p99_ms: report.p99_ms,
            non_2xx: report.non_2xx,
        });
        drop(server);
    }

    eprintln!("xtask: durability: loading {sessions} sessions into memory only and into a data directory");
    let memory = loaded_server(binaries, internal_key, None, sessions, dir, logs, registry)?;
    let rss_kib_memory = servers::rss_kib(memory.pid())?;
    drop(memory);
    let data_dir = dir.join("data-loaded");
    let durable = loaded_server(binaries, internal_key, Some(&data_dir), sessions, dir, logs, registry)?;
    stop(durable)?;
    compact(&binaries.tessera, &data_dir)?;
    let journal = std::fs::metadata(data_dir.join("journal")).context("no journal after compaction")?.len();

    let port = process::free_port(&[], false)?;
    let mut command = tessera_command(
        &binaries.tessera,
        port,
        TesseraStore::Embedded { data_dir: None, fsync: "everysec" },
        internal_key,
    );
    // The same directory again, not a fresh one: set after `tessera_command` emptied nothing.
    command.env("TESSERA_DATA_DIR", &data_dir);
    let started = Instant::now();
    let restarted = ServerProcess::start("tessera-restarted", &mut command, port, logs, registry)?;
    let restart_ms = started.elapsed().as_secs_f64() * 1_000.0;
    let rss_kib_durable = servers::rss_kib(restarted.pid())?;
    drop(restarted);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(DurabilityReport {
        issue,
        sessions,
        journal_bytes_per_session: journal as f64 / sessions as f64,
        restart_ms,
        rss_kib_durable,
        rss_kib_memory,
    })
}

/// A tessera on the embedded store (in `data_dir`, or in memory only) with `sessions` sessions
/// issued through `POST /internal/sessions` by the seeder.
fn loaded_server(
    binaries: &Binaries,
    internal_key: &str,
    data_dir: Option<&Path>,
    sessions: u64,
    dir: &Path,
    logs: &Path,
    registry: &Path,
) -> Result<ServerProcess> {
    let port = process::free_port(&[], false)?;
    let store = TesseraStore::Embedded { data_dir, fsync: "everysec" };
    let mut command = tessera_command(&binaries.tessera, port, store, internal_key);
    let server = ServerProcess::start("tessera-loaded", &mut command, port, logs, registry)?;
    let mut seed = Command::new(&binaries.seed);
    seed.args(["--http", &format!("http://127.0.0.1:{port}"), "--internal-key", internal_key])
        .args(["--users", &sessions.to_string(), "--out"])
        .arg(dir.join("tokens-durability.txt"));
    let output = process::output_within(&mut seed, SEED_TIMEOUT)?;
    if !output.status.success() {
        bail!("`{}` failed: {}", process::describe(&seed), process::combined_output(&output));
    }
    eprintln!("xtask: {}", process::combined_output(&output));
    Ok(server)
}

/// SIGTERM, and the exit it leads to (the journal synced).
fn stop(mut server: ServerProcess) -> Result<()> {
    server.terminate(Duration::from_secs(30))
}

/// `tessera data compact --dir DIR`.
fn compact(tessera: &Path, data_dir: &Path) -> Result<()> {
    let mut command = Command::new(tessera);
    command.args(["data", "compact", "--dir"]).arg(data_dir).env("TESSERA_LOG", "warn");
    let output = process::output_within(&mut command, Duration::from_secs(300))?;
    if !output.status.success() {
        bail!("`{}` failed: {}", process::describe(&command), process::combined_output(&output));
    }
    Ok(())
}
