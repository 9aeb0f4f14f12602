//! Finding the programs xtask drives (`redis-server` and `redis-cli`; `nginx` for the forward-auth
//! tests; `wrk` for the benchmark; `python3` with `venv` for the API fuzzer's private environment)
//! and, when one is missing, installing its Debian package when this machine allows it: as root,
//! with apt-get. Otherwise the error says exactly what to install.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::process;

/// Absolute paths of the Redis programs.
#[derive(Debug, Clone)]
pub(crate) struct RedisTools {
    pub(crate) server: PathBuf,
    pub(crate) cli: PathBuf,
}

/// `redis-server` and `redis-cli`, installed with the Debian package `redis-server` (which pulls
/// in `redis-tools`, the package of `redis-cli`) when missing and possible.
pub(crate) fn ensure_redis() -> Result<RedisTools> {
    ensure_installed(&["redis-server", "redis-cli"], "redis-server")?;
    Ok(RedisTools { server: located("redis-server")?, cli: located("redis-cli")? })
}

/// The absolute path of `binary`, after installing `debian_package` when it is missing and
/// this machine allows it.
pub(crate) fn ensure_tool(binary: &str, debian_package: &str) -> Result<PathBuf> {
    ensure_installed(&[binary], debian_package)?;
    located(binary)
}

/// A `python3` that can make virtual environments, after installing `python3` and (Debian ships
/// `venv` without `ensurepip`) `python3-venv` when missing and this machine allows it.
pub(crate) fn ensure_python_venv() -> Result<PathBuf> {
    let python = ensure_tool("python3", "python3")?;
    let can_make_venvs =
        |python: &Path| Command::new(python).args(["-c", "import ensurepip, venv"]).stderr(Stdio::null()).status();
    if can_make_venvs(&python).is_ok_and(|status| status.success()) {
        return Ok(python);
    }
    let advice = "python3 cannot make virtual environments: install the Debian/Ubuntu package \
                  python3-venv (apt-get install python3-venv)";
    if !is_root() || find_on_path("apt-get").is_none() {
        bail!("{advice}");
    }
    apt_install("python3-venv").context(advice)?;
    if !can_make_venvs(&python).is_ok_and(|status| status.success()) {
        bail!("apt-get installed python3-venv, yet {} still cannot make virtual environments", python.display());
    }
    Ok(python)
}

/// Makes sure every one of `binaries` is found (see [`find_on_path`]), installing
/// `debian_package` (which provides them all) once when any is missing.
fn ensure_installed(binaries: &[&str], debian_package: &str) -> Result<()> {
    let Some(missing) = binaries.iter().find(|binary| find_on_path(binary).is_none()) else {
        return Ok(());
    };
    let advice = missing_advice(missing, binaries, debian_package);
    if !is_root() || find_on_path("apt-get").is_none() {
        bail!("{advice}");
    }
    apt_install(debian_package).with_context(|| advice.clone())?;
    if let Some(still_missing) = binaries.iter().find(|binary| find_on_path(binary).is_none()) {
        bail!("apt-get installed {debian_package}, yet {still_missing} is still not on PATH");
    }
    Ok(())
}

/// What to install, said exactly: for Redis, "redis-server is missing: install the Debian/Ubuntu
/// package redis-server (apt-get install redis-server), or put redis-server and redis-cli on PATH".
fn missing_advice(missing: &str, binaries: &[&str], debian_package: &str) -> String {
    format!(
        "{missing} is missing: install the Debian/Ubuntu package {debian_package} \
         (apt-get install {debian_package}), or put {} on PATH",
        binaries.join(" and ")
    )
}

/// `apt-get update`, then a non-interactive install of `package`, then a stop of any system
/// service the package started: xtask runs its own private servers and must not leave one on
/// the package's default port (6379 for Redis, 80 for nginx) behind.
fn apt_install(package: &str) -> Result<()> {
    eprintln!("xtask: {package} is missing; running as root with apt-get, so installing it:");
    eprintln!("xtask:   apt-get update");
    eprintln!("xtask:   DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {package}");
    eprintln!("xtask: (a temporary /usr/sbin/policy-rc.d stops the package from starting a system service)");
    let _no_service_starts = PolicyRcGuard::install();
    // apt's chatter goes to stderr: stdout of `redis up` is the URL alone.
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive").stdin(Stdio::null()).stdout(std::io::stderr());
        command
    };
    for mut command in [apt(&["update"]), apt(&["install", "-y", "--no-install-recommends", package])] {
        let status = process::status_of(&mut command)?;
        if !status.success() {
            bail!("`{}` failed with {status}", process::describe(&command));
        }
    }
    stop_system_service(package);
    Ok(())
}

/// Stops the SysV service of `package` if the package has one; failure is ignored (there is
/// usually nothing running to stop).
/// Debian's `invoke-rc.d` asks `/usr/sbin/policy-rc.d` before a package starts a service;
/// exit status 101 means "do not". Written only when absent, removed again on drop.
struct PolicyRcGuard {
    written: bool,
}

const POLICY_RC: &str = "/usr/sbin/policy-rc.d";

impl PolicyRcGuard {
    fn install() -> Self {
        if std::path::Path::new(POLICY_RC).exists() {
            return Self { written: false };
        }
        let written = std::fs::write(POLICY_RC, "#!/bin/sh\n# written by cargo xtask during an install\nexit 101\n")
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(POLICY_RC, std::fs::Permissions::from_mode(0o755))
            })
            .is_ok();
        Self { written }
    }
}

impl Drop for PolicyRcGuard {
    fn drop(&mut self) {
        if self.written {
            let _ = std::fs::remove_file(POLICY_RC);
        }
    }
}

fn stop_system_service(package: &str) {
    let script = Path::new("/etc/init.d").join(package);
    if !script.is_file() {
        return;
    }
    eprintln!("xtask: stopping any service the package started: {} stop", script.display());
    Command::new(&script)
        .arg("stop")
        .env("RUNLEVEL", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok();
}

fn located(binary: &str) -> Result<PathBuf> {
    find_on_path(binary).with_context(|| format!("{binary} is not on PATH"))
}

/// Where system daemons such as nginx live; searched after PATH because a non-root PATH often
/// lacks them, while the Debian package still puts the binary there.
const SBIN_DIRS: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// The first executable file named `binary` in a PATH directory or, failing that, in one of
/// [`SBIN_DIRS`], as an absolute path.
fn find_on_path(binary: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    search_dirs(std::env::var_os("PATH")).into_iter().filter_map(|dir| std::path::absolute(dir.join(binary)).ok()).find(
        |candidate| candidate.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0),
    )
}

/// The directories of `path` (a PATH value) in order, then those of [`SBIN_DIRS`] it lacks.
fn search_dirs(path: Option<OsString>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = path.map(|path| std::env::split_paths(&path).collect()).unwrap_or_default();
    for sbin in SBIN_DIRS.map(PathBuf::from) {
        if !dirs.contains(&sbin) {
            dirs.push(sbin);
        }
    }
    dirs
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success() && output.stdout.trim_ascii() == b"0")
}

#[cfg(test)]
mod tests;
