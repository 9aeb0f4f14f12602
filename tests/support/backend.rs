//! Where a test's sessions live ([`Backend`]), and the built `tessera` binary as a command.

use dev_support::{Topology, env};

/// Where a test's sessions live: the embedded store, or a shared Redis topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Redis(Topology),
}

impl Backend {
    /// The Redis URL, or `None` for the embedded store.
    pub fn redis_url(self) -> Option<String> {
        match self {
            Self::Embedded => None,
            Self::Redis(topology) => Some(topology.url()),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded => f.write_str("embedded"),
            Self::Redis(topology) => topology.fmt(f),
        }
    }
}

/// The built `tessera` binary (`TESSERA_TEST_BIN`) with a clean environment plus `env`, a
/// working directory without `configs/`, output captured, killed when dropped. `HOME` is a
/// fresh directory of its own, so the embedded store's default data directory is this
/// command's alone (`env` may name another).
pub fn tessera_command(env: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env::required(env::TESSERA_BIN));
    command.env_clear().current_dir(std::env::temp_dir()).env("HOME", fresh_home()).envs(env.iter().copied());
    command.kill_on_drop(true);
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// A new empty directory under the system's temporary one, for a `HOME`.
pub fn fresh_home() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let home = std::env::temp_dir().join(format!(
        "tessera-test-home-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap_or_else(|error| panic!("cannot create {}: {error}", home.display()));
    home
}
