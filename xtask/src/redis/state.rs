//! A topology's `state.env`: `KEY=VALUE` lines saying which topology it is, which
//! `cargo xtask test` owns it (if any), one `PID_FILE=` per process launched for it (written
//! before the launch), and its `URL=` once it is up. Lines are only ever appended.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Topology;

/// What `state.env` says.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct State {
    pub(super) topology: Option<String>,
    pub(super) owner: Option<u32>,
    pub(super) url: Option<String>,
    pub(super) pid_files: Vec<PathBuf>,
}

pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join("state.env")
}

/// Starts a fresh `state.env` in `dir`.
pub(super) fn create(dir: &Path, topology: Topology, owner: Option<u32>) -> Result<()> {
    let mut text = format!("TOPOLOGY={}\n", topology.as_str());
    if let Some(owner) = owner {
        text.push_str(&format!("OWNER_PID={owner}\n"));
    }
    let path = path(dir);
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Appends `KEY=value` to the `state.env` in `dir`.
pub(super) fn append(dir: &Path, key: &str, value: &str) -> Result<()> {
    let path = path(dir);
    OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut file| writeln!(file, "{key}={value}"))
        .with_context(|| format!("cannot append to {}", path.display()))
}

/// The state of the topology in `dir`, or `None` when none was started there.
pub(super) fn load(dir: &Path) -> Result<Option<State>> {
    let path = path(dir);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(parse(&text))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).context(format!("cannot read {}", path.display())),
    }
}

/// Reads `state.env` text; unknown keys and malformed lines are ignored.
pub(super) fn parse(text: &str) -> State {
    let mut state = State::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key.trim() {
            "TOPOLOGY" => state.topology = Some(value.to_owned()),
            "OWNER_PID" => state.owner = value.trim().parse().ok(),
            "URL" => state.url = Some(value.to_owned()),
            "PID_FILE" => state.pid_files.push(PathBuf::from(value)),
            _ => {}
        }
    }
    state
}
