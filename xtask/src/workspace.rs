//! Where things are: the workspace root, cargo's target directory, the directory of the private
//! Redis topologies, and the `cargo` that xtask runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: the parent of xtask's own manifest directory.
pub(crate) fn root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set (relative to the workspace root, where
/// xtask runs cargo), else `<workspace>/target`.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

/// Where each private Redis topology keeps its data, logs, pid files and `state.env`.
pub(crate) fn redis_dir() -> PathBuf {
    root().join("target").join("redis")
}

/// The cargo that runs xtask (`CARGO`), else the one on PATH, working in the workspace root.
pub(crate) fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.current_dir(root());
    command
}
