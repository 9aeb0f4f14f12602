//! The workspace's packages and their dependencies as `cargo metadata --format-version 1
//! --no-deps` reports them: cargo has already read every spelling of a dependency (inline
//! tables, `[dependencies.NAME]`, `workspace = true`, renames, `[target.*]` sections), so the
//! tidy checks see each one as cargo does.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::workspace;

/// One workspace member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Package {
    pub(super) name: String,
    pub(super) manifest_path: PathBuf,
    pub(super) dependencies: Vec<Dependency>,
}

/// One dependency of a package, as cargo resolved its manifest entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Dependency {
    /// The package depended on (for `store = { package = "infra" }`, `infra`).
    pub(super) name: String,
    /// The section it is in, as a manifest spells it: `dependencies`, `dev-dependencies`,
    /// `build-dependencies`, or `target.'cfg(unix)'.dependencies` and the like.
    pub(super) section: String,
    /// The version requirement, `*` when there is none.
    pub(super) requirement: String,
    /// The directory of a path dependency (`workspace = true` resolved to it).
    pub(super) path: Option<PathBuf>,
    /// Where a dependency that is no path dependency comes from, e.g. `registry+https://…`.
    pub(super) source: Option<String>,
}

/// Runs `cargo metadata --format-version 1 --no-deps` in `root` (nothing is downloaded).
pub(super) fn packages(root: &Path) -> Result<Vec<Package>> {
    let output = workspace::cargo()
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata in {} failed: {}", root.display(), String::from_utf8_lossy(&output.stderr).trim());
    }
    let metadata: Value = serde_json::from_slice(&output.stdout).context("cargo metadata wrote no JSON")?;
    parse(&metadata)
}

/// The packages of `cargo metadata`'s JSON.
pub(super) fn parse(metadata: &Value) -> Result<Vec<Package>> {
    let packages = metadata["packages"].as_array().context("cargo metadata: no `packages` list")?;
    packages.iter().map(package).collect()
}

fn package(value: &Value) -> Result<Package> {
    let name = text(value, "name")?;
    let manifest_path = PathBuf::from(text(value, "manifest_path")?);
    let dependencies = value["dependencies"]
        .as_array()
        .with_context(|| format!("cargo metadata: package {name} has no `dependencies` list"))?
        .iter()
        .map(|dependency| self::dependency(dependency).with_context(|| format!("cargo metadata: package {name}")))
        .collect::<Result<_>>()?;
    Ok(Package { name, manifest_path, dependencies })
}

fn dependency(value: &Value) -> Result<Dependency> {
    let section = match value["kind"].as_str() {
        None => "dependencies",
        Some("dev") => "dev-dependencies",
        Some("build") => "build-dependencies",
        Some(other) => bail!("unknown dependency kind {other:?}"),
    };
    let section = match value["target"].as_str() {
        Some(target) => format!("target.'{target}'.{section}"),
        None => section.to_owned(),
    };
    Ok(Dependency {
        name: text(value, "name")?,
        section,
        requirement: text(value, "req")?,
        path: value["path"].as_str().map(PathBuf::from),
        source: value["source"].as_str().map(str::to_owned),
    })
}

fn text(value: &Value, field: &str) -> Result<String> {
    value[field].as_str().map(str::to_owned).with_context(|| format!("cargo metadata: no text `{field}`"))
}
