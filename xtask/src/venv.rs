//! Private Python virtual environments under `target/xtask/`, each installed with pip from one
//! pinned requirements file and installed again only when that file changes: schemathesis for
//! `cargo xtask fuzz`, FastAPI and uvicorn for the FastAPI example's test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::install;
use crate::process;
use crate::workspace;

/// The environment `target/xtask/<name>`, made with the system's `python3 -m venv` when missing
/// and installed from `requirements_file` when it was installed from anything else; its
/// directory. `program` (a file under its `bin/`) must exist afterwards.
pub(crate) fn ensure(name: &str, requirements_file: &Path, program: &str) -> Result<PathBuf> {
    let venv = workspace::target_dir().join("xtask").join(name);
    let requirements = fs::read_to_string(requirements_file)
        .with_context(|| format!("cannot read {}", requirements_file.display()))?;
    // What the environment was installed from, written once pip succeeded.
    let stamp = venv.join("installed-requirements.txt");
    let installed = venv.join("bin").join(program);
    if installed.is_file() && fs::read_to_string(&stamp).is_ok_and(|done| done == requirements) {
        return Ok(venv);
    }
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        let system_python = install::ensure_python_venv()?;
        let mut create = Command::new(system_python);
        create.args(["-m", "venv"]).arg(&venv);
        run_to_success(&mut create)?;
    }
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--requirement"])
        .arg(requirements_file);
    run_to_success(&mut pip)?;
    if !installed.is_file() {
        bail!("pip installed {}, yet there is no {}", requirements_file.display(), installed.display());
    }
    fs::write(&stamp, requirements).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(venv)
}

fn run_to_success(command: &mut Command) -> Result<()> {
    eprintln!("xtask: {}", process::describe(command));
    let status = process::status_of(command)?;
    if !status.success() {
        bail!("`{}` failed with {status}", process::describe(command));
    }
    Ok(())
}
