//! Tidy checks, run as plain `#[test]`s by `cargo test --workspace`: every Rust file starts with
//! a `//!` comment saying what it owns; no crate depends "up" the layer table (ARCHITECTURE.md,
//! "Layers"), and every crate is in it; nothing depends on the crates.io `config` crate; no
//! `.rs`, `.md` or `.toml` file points at a file the repository does not have (`references.rs`).
//! Manifests are read by line scanning: xtask stays free of a TOML parser.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::workspace;

/// Each crate under `crates/` and the internal crates it may depend on (directly, in any
/// dependency section). A new crate must be placed here before it can pass tidy. `bench` (the
/// benchmark's servers and seeder) sits on top: it may use every crate, and since no row allows
/// it, nothing may depend on it.
const LAYERS: [(&str, &[&str]); 7] = [
    ("config", &[]),
    ("cache-toolkit", &[]),
    ("infra", &["config", "cache-toolkit"]),
    ("dao", &["cache-toolkit"]),
    ("auth-core", &["dao", "cache-toolkit"]),
    ("http-server", &["config", "cache-toolkit", "infra", "dao", "auth-core"]),
    ("bench", &["config", "cache-toolkit", "infra", "dao", "auth-core", "http-server"]),
];

/// Directories whose Rust files must start with a `//!` comment.
const DOCUMENTED_DIRS: [&str; 3] = ["crates", "tests", "xtask"];

#[test]
fn every_rust_file_starts_with_a_module_doc() -> Result<()> {
    let root = workspace::root();
    let mut files = Vec::new();
    for dir in DOCUMENTED_DIRS {
        collect_files(&root.join(dir), &|path| path.extension().is_some_and(|ext| ext == "rs"), &mut files)?;
    }
    assert!(!files.is_empty(), "found no .rs files under {}", root.display());
    let mut undocumented = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        if lacks_module_doc(&text) {
            undocumented.push(relative(&root, file));
        }
    }
    assert!(
        undocumented.is_empty(),
        "these files do not start with a `//!` comment saying what they own:\n  {}",
        undocumented.join("\n  ")
    );
    Ok(())
}

#[test]
fn a_dev_dependency_on_itself_is_no_layer_violation() {
    let manifest = "[dev-dependencies]\ncache-toolkit = { path = \".\", features = [\"fred-pool\"] }\n";
    assert!(layer_violations("cache-toolkit", manifest).is_empty());
    let manifest = "[dependencies]\ncache-toolkit = { path = \".\" }\n[dev-dependencies]\ninfra.workspace = true\n";
    assert_eq!(layer_violations("cache-toolkit", manifest).len(), 2);
}

#[test]
fn no_crate_depends_up_the_layer_table() -> Result<()> {
    let root = workspace::root();
    let mut problems = Vec::new();
    let mut folders = Vec::new();
    for entry in fs::read_dir(root.join("crates")).context("cannot list crates/")? {
        let path = entry.context("cannot list crates/")?.path();
        if path.is_dir() {
            if let Some(name) = path.file_name().and_then(|name| name.to_str()) {
                folders.push(name.to_owned());
            }
        }
    }
    folders.sort();
    problems.extend(unlisted_crates(&folders));
    for folder in &folders {
        let manifest_path = root.join("crates").join(folder).join("Cargo.toml");
        let manifest =
            fs::read_to_string(&manifest_path).with_context(|| format!("cannot read {}", manifest_path.display()))?;
        problems.extend(layer_violations(folder, &manifest));
    }
    let xtask_manifest =
        fs::read_to_string(root.join("xtask").join("Cargo.toml")).context("cannot read xtask/Cargo.toml")?;
    problems.extend(
        internal_dependencies(&xtask_manifest).map(|dep| {
            format!("xtask depends on `{}` in [{}]; xtask depends on no Tessera crate", dep.name, dep.section)
        }),
    );
    assert!(problems.is_empty(), "layer table violations:\n  {}", problems.join("\n  "));
    Ok(())
}

#[test]
fn config_is_always_our_path_crate() -> Result<()> {
    let root = workspace::root();
    let mut manifests = Vec::new();
    collect_files(&root, &|path| path.file_name().is_some_and(|name| name == "Cargo.toml"), &mut manifests)?;
    let mut problems = Vec::new();
    for manifest_path in &manifests {
        let manifest =
            fs::read_to_string(manifest_path).with_context(|| format!("cannot read {}", manifest_path.display()))?;
        problems.extend(
            foreign_config_dependencies(&manifest)
                .into_iter()
                .map(|problem| format!("{}: {problem}", relative(&root, manifest_path))),
        );
    }
    assert!(problems.is_empty(), "the crates.io `config` crate must not be used:\n  {}", problems.join("\n  "));
    Ok(())
}

/// The files whose references are checked, by extension.
const REFERENCING_EXTENSIONS: [&str; 3] = ["rs", "md", "toml"];
/// The reference check and its tests hold outside-pointing examples on purpose.
const REFERENCE_CHECK_FILES: [&str; 2] = ["xtask/src/tidy.rs", "xtask/src/tidy/"];

#[test]
fn no_reference_points_outside_the_repository() -> Result<()> {
    let root = workspace::root();
    let repository = DiskRepository::read(&root)?;
    let mut files = Vec::new();
    let referencing = |path: &Path| {
        path.extension().and_then(|ext| ext.to_str()).is_some_and(|ext| REFERENCING_EXTENSIONS.contains(&ext))
    };
    collect_files(&root, &referencing, &mut files)?;
    assert!(files.len() > 50, "found only {} files to check under {}", files.len(), root.display());
    let mut problems = Vec::new();
    for file in &files {
        let relative_path = PathBuf::from(relative(&root, file));
        let shown = relative_path.to_string_lossy();
        if REFERENCE_CHECK_FILES.iter().any(|excluded| shown == *excluded || shown.starts_with(excluded)) {
            continue;
        }
        let text = fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        problems.extend(references::unresolved_references(&relative_path, &text, &repository));
    }
    assert!(
        problems.is_empty(),
        "references to files the repository does not have (a clone has nothing beside it: write \
         the facts into docs/ and point there):\n  {}",
        problems.join("\n  ")
    );
    Ok(())
}

/// The repository on disk, `target/` and hidden directories left out.
#[derive(Debug)]
struct DiskRepository {
    root: PathBuf,
    file_names: BTreeSet<String>,
    top_level: Vec<String>,
}

impl DiskRepository {
    fn read(root: &Path) -> Result<Self> {
        let mut files = Vec::new();
        collect_files(root, &|_| true, &mut files)?;
        let file_names =
            files.iter().filter_map(|file| file.file_name()).map(|name| name.to_string_lossy().into_owned()).collect();
        let mut top_level = Vec::new();
        for entry in fs::read_dir(root).with_context(|| format!("cannot list {}", root.display()))? {
            let name = entry.with_context(|| format!("cannot list {}", root.display()))?.file_name();
            let name = name.to_string_lossy().into_owned();
            if name != "target" && !name.starts_with('.') {
                top_level.push(name);
            }
        }
        Ok(Self { root: root.to_owned(), file_names, top_level })
    }
}

impl references::Repository for DiskRepository {
    fn exists(&self, path: &Path) -> bool {
        !path.starts_with("target") && !path.starts_with("..") && self.root.join(path).exists()
    }

    fn has_file_named(&self, name: &str) -> bool {
        self.file_names.contains(name)
    }

    fn top_level(&self) -> &[String] {
        &self.top_level
    }
}

/// One dependency as written in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dependency {
    /// The package depended on (the `package = "..."` of a renamed dependency, else the key).
    name: String,
    /// The section it is in, e.g. `dev-dependencies` or `workspace.dependencies`.
    section: String,
    /// What follows the key, e.g. `.workspace = true` or `= { path = "crates/config" }`; for a
    /// `[dependencies.NAME]` table, its lines joined.
    spec: String,
}

/// Whether the first non-empty line of `text` is not a `//!` comment.
fn lacks_module_doc(text: &str) -> bool {
    !text.lines().map(str::trim).find(|line| !line.is_empty()).is_some_and(|line| line.starts_with("//!"))
}

/// Crate folders that the layer table does not place.
fn unlisted_crates(folders: &[String]) -> Vec<String> {
    folders
        .iter()
        .filter(|folder| !LAYERS.iter().any(|(name, _)| name == folder))
        .map(|folder| {
            format!("crates/{folder} is not in the layer table (LAYERS in xtask/src/tidy.rs): place it there")
        })
        .collect()
}

/// Internal dependencies of crate `name` that the layer table does not allow.
fn layer_violations(name: &str, manifest: &str) -> Vec<String> {
    let allowed: &[&str] = LAYERS.iter().find(|(layer, _)| *layer == name).map_or(&[], |(_, allowed)| allowed);
    internal_dependencies(manifest)
        .filter(|dep| !allowed.contains(&dep.name.as_str()))
        // A crate's dev-dependency on itself only turns on its own features for its tests and
        // benchmarks (cache-toolkit's `fred-pool`): it reaches no other layer.
        .filter(|dep| !(dep.name == name && dep.section == "dev-dependencies"))
        .map(|dep| {
            format!(
                "`{name}` depends on `{}` in [{}] (crates/{name}/Cargo.toml), which is not below it \
                 in the layer table; allowed: {}",
                dep.name,
                dep.section,
                if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") }
            )
        })
        .collect()
}

/// Dependencies of `manifest` on crates of the layer table.
fn internal_dependencies(manifest: &str) -> impl Iterator<Item = Dependency> {
    dependencies(manifest).into_iter().filter(|dep| LAYERS.iter().any(|(name, _)| *name == dep.name))
}

/// `config` dependencies that are not our path crate: in `[workspace.dependencies]` it must
/// have a `path`; elsewhere a `path` or `workspace = true` (which resolves to that one).
fn foreign_config_dependencies(manifest: &str) -> Vec<String> {
    dependencies(manifest)
        .into_iter()
        .filter(|dep| dep.name == "config")
        .filter(|dep| {
            let ours = dep.spec.contains("path")
                || (dep.section != "workspace.dependencies" && dep.spec.contains("workspace"));
            !ours
        })
        .map(|dep| {
            format!(
                "[{}] config {} is not our path crate (crates/config); never the crates.io `config`",
                dep.section,
                dep.spec.trim()
            )
        })
        .collect()
}

/// Every dependency in the dependency sections of `manifest`: `[dependencies]`,
/// `[dev-dependencies]`, `[build-dependencies]`, their `[target.*.]` forms,
/// `[workspace.dependencies]`, and `[dependencies.NAME]` tables.
fn dependencies(manifest: &str) -> Vec<Dependency> {
    let mut found: Vec<Dependency> = Vec::new();
    let mut section: Option<String> = None;
    let mut in_table = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|rest| rest.split(']').next()) {
            (section, in_table) = (None, false);
            if line.starts_with("[[") {
                continue;
            }
            match classify_section(header.trim()) {
                SectionKind::List(name) => section = Some(name),
                SectionKind::Table { section: name, dependency } => {
                    found.push(Dependency { name: dependency, section: name.clone(), spec: String::new() });
                    (section, in_table) = (Some(name), true);
                }
                SectionKind::Other => {}
            }
            continue;
        }
        let Some(section) = &section else {
            continue;
        };
        if in_table {
            if let Some(table) = found.last_mut() {
                if let Some(package) = package_rename(line) {
                    table.name = package;
                }
                table.spec.push_str(line);
                table.spec.push(' ');
            }
        } else if let Some((key, spec)) = dependency_line(line) {
            let name = package_rename(spec).unwrap_or_else(|| key.to_owned());
            found.push(Dependency { name, section: section.clone(), spec: spec.to_owned() });
        }
    }
    found
}

enum SectionKind {
    /// A section whose lines are dependencies, named as reported.
    List(String),
    /// `[dependencies.NAME]`: one dependency spelled as a table.
    Table {
        section: String,
        dependency: String,
    },
    Other,
}

fn classify_section(header: &str) -> SectionKind {
    for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if header == kind || header.ends_with(&format!(".{kind}")) {
            return SectionKind::List(header.to_owned());
        }
        let table_prefix = format!("{kind}.");
        let position = if header.starts_with(&table_prefix) {
            Some(0)
        } else {
            header.find(&format!(".{table_prefix}")).map(|index| index + 1)
        };
        if let Some(start) = position {
            let dependency = header[start + table_prefix.len()..].trim_matches('"').to_owned();
            return SectionKind::Table { section: header[..start + kind.len()].to_owned(), dependency };
        }
    }
    SectionKind::Other
}

/// `name.workspace = true`, `name = "1"`, `name={ ... }`: the key and what follows it. Other
/// lines (such as the continuation of a multi-line inline table) give `None`.
fn dependency_line(line: &str) -> Option<(&str, &str)> {
    let (key, rest) = if let Some(quoted) = line.strip_prefix('"') {
        let end = quoted.find('"')?;
        (&quoted[..end], &quoted[end + 1..])
    } else {
        let end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))?;
        (&line[..end], &line[end..])
    };
    let rest_trimmed = rest.trim_start();
    let follows = rest_trimmed.starts_with('=') || rest.starts_with('.');
    (follows && !key.is_empty()).then_some((key, rest))
}

/// The `package = "NAME"` in a dependency spec, if it renames the dependency.
fn package_rename(spec: &str) -> Option<String> {
    let after = spec.split("package").nth(1)?.trim_start().strip_prefix('=')?.trim_start();
    let name = after.strip_prefix('"')?.split('"').next()?;
    Some(name.to_owned())
}

/// Files under `dir` (recursively, skipping `target` and hidden directories) that `wanted`
/// accepts.
fn collect_files(dir: &Path, wanted: &dyn Fn(&Path) -> bool, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type().with_context(|| format!("cannot stat {}", path.display()))?.is_dir() {
            if name != "target" && !name.starts_with('.') {
                collect_files(&path, wanted, files)?;
            }
        } else if wanted(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(())
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

mod references;
mod tests;
