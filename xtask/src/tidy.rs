//! Tidy checks, run as plain `#[test]`s by `cargo test --workspace`: every Rust file starts with
//! a `//!` comment saying what it owns; no crate depends "up" the layer table (ARCHITECTURE.md,
//! "Layers"), and every crate is in it; nothing depends on the crates.io `config` crate; no
//! `.rs`, `.md` or `.toml` file points at a file the repository does not have (`references.rs`);
//! cache-toolkit's public API, with what it re-exports from the crates below, names no fred
//! type (`public_api.rs`); no crate's modules import each other in a circle (`imports.rs`).
//! Rust sources are read with `syn`.
//! Manifests are read through `cargo metadata` (`metadata.rs`): xtask needs no TOML parser.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::workspace;
use metadata::{Dependency, Package};

/// Each crate under `crates/` and the internal crates it may depend on (directly, in any
/// dependency section). A new crate must be placed here before it can pass tidy. `bench` (the
/// benchmark's servers and seeder) sits on top: it may use every crate, and since no row allows
/// it, nothing may depend on it.
const LAYERS: [(&str, &[&str]); 13] = [
    ("dev-support", &[]),
    ("config", &[]),
    ("embedded-store", &[]),
    ("store", &["embedded-store"]),
    ("near-cache", &["store"]),
    ("cache-toolkit", &["store", "near-cache"]),
    ("conformance", &["dev-support", "cache-toolkit"]),
    ("infra", &["config", "store", "cache-toolkit"]),
    ("dao", &["cache-toolkit"]),
    ("auth-core", &["dao", "cache-toolkit"]),
    ("http-server", &["config", "cache-toolkit", "infra", "dao", "auth-core"]),
    ("tessera", &["http-server"]),
    ("bench", &["dev-support", "config", "cache-toolkit", "infra", "dao", "auth-core", "http-server"]),
];

/// The crates xtask may use: tooling with no Tessera dependency.
const XTASK_MAY_USE: [&str; 1] = ["dev-support"];

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
fn no_crate_depends_up_the_layer_table() -> Result<()> {
    // As cargo writes paths: canonical (the manifest paths are compared with it).
    let root = fs::canonicalize(workspace::root()).context("cannot find the workspace root")?;
    let mut problems = Vec::new();
    let mut folders = Vec::new();
    for entry in fs::read_dir(root.join("crates")).context("cannot list crates/")? {
        let path = entry.context("cannot list crates/")?.path();
        if path.is_dir()
            && let Some(name) = path.file_name().and_then(|name| name.to_str())
        {
            folders.push(name.to_owned());
        }
    }
    folders.sort();
    problems.extend(unlisted_crates(&folders));
    let packages = metadata::packages(&root)?;
    for folder in &folders {
        let manifest_path = root.join("crates").join(folder).join("Cargo.toml");
        match packages.iter().find(|package| package.manifest_path == manifest_path) {
            Some(package) => problems.extend(layer_violations(package)),
            None => problems.push(format!("crates/{folder} is no workspace member (cargo metadata does not list it)")),
        }
    }
    let xtask = packages.iter().find(|package| package.name == "xtask").context("cargo metadata lists no xtask")?;
    problems.extend(internal_dependencies(xtask).filter(|dep| !XTASK_MAY_USE.contains(&dep.name.as_str())).map(
        |dep| {
            format!(
                "xtask depends on `{}` in [{}]; xtask depends on no Tessera crate but {XTASK_MAY_USE:?}",
                dep.name, dep.section
            )
        },
    ));
    assert!(problems.is_empty(), "layer table violations:\n  {}", problems.join("\n  "));
    Ok(())
}

#[test]
fn no_import_circle_inside_a_crate() -> Result<()> {
    let root = workspace::root();
    let mut crates: Vec<PathBuf> = vec![root.join("xtask").join("src"), root.join("tests").join("support")];
    for entry in fs::read_dir(root.join("crates")).context("cannot list crates/")? {
        crates.push(entry.context("cannot list crates/")?.path().join("src"));
    }
    let mut problems = Vec::new();
    for src in crates {
        let mut paths = Vec::new();
        collect_files(&src, &|path| path.extension().is_some_and(|ext| ext == "rs"), &mut paths)?;
        let mut files = Vec::new();
        for path in paths {
            let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let within = path.strip_prefix(&src).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            files.push((within, text));
        }
        let files: Vec<imports::CrateFile<'_>> =
            files.iter().map(|(path, text)| imports::CrateFile { path, text }).collect();
        let crate_name = relative(&root, &src);
        problems.extend(imports::circles(&files).into_iter().map(|problem| format!("{crate_name}: {problem}")));
    }
    assert!(
        problems.is_empty(),
        "modules of one crate import each other in a circle (move the shared part down, or merge them):\n  {}",
        problems.join("\n  ")
    );
    Ok(())
}

#[test]
fn config_is_always_our_path_crate() -> Result<()> {
    let root = fs::canonicalize(workspace::root()).context("cannot find the workspace root")?;
    let ours = root.join("crates").join("config");
    let mut problems = Vec::new();
    for package in metadata::packages(&root)? {
        let manifest = relative(&root, &package.manifest_path);
        problems.extend(
            foreign_config_dependencies(&package, &ours).into_iter().map(|problem| format!("{manifest}: {problem}")),
        );
    }
    assert!(problems.is_empty(), "the crates.io `config` crate must not be used:\n  {}", problems.join("\n  "));
    Ok(())
}

#[test]
fn cache_toolkit_names_no_fred_type_in_its_public_api() -> Result<()> {
    let root = workspace::root();
    let toolkit = api_files(&root, "cache-toolkit")?;
    assert!(toolkit.len() > 10, "{} cache-toolkit files", toolkit.len());
    let mut problems = public_api::fred_in_public_api(&sources(&toolkit));
    // What the toolkit re-exports from the crates below is its API too.
    let lib = &toolkit.iter().find(|(path, _)| path.ends_with("src/lib.rs")).context("cache-toolkit has no lib.rs")?.1;
    for (folder, name) in [("store", "store"), ("near-cache", "near_cache")] {
        let reexported = public_api::reexported_names(lib, name);
        assert!(!reexported.is_empty(), "cache-toolkit re-exports nothing from {name}");
        problems.extend(public_api::fred_in_reexported_api(&sources(&api_files(&root, folder)?), &reexported));
    }
    assert!(
        problems.is_empty(),
        "cache-toolkit's public API names fred types (users would be tied to fred's version):\n  {}",
        problems.join("\n  ")
    );
    Ok(())
}

fn sources(files: &[(String, String)]) -> Vec<public_api::SourceFile<'_>> {
    files.iter().map(|(path, text)| public_api::SourceFile { path, text }).collect()
}

/// The files of `crates/<folder>/src` that can hold API (test-only modules left out), with
/// their paths relative to the root.
fn api_files(root: &Path, folder: &str) -> Result<Vec<(String, String)>> {
    let src = root.join("crates").join(folder).join("src");
    let mut paths = Vec::new();
    collect_files(&src, &|path| path.extension().is_some_and(|ext| ext == "rs"), &mut paths)?;
    let mut files = Vec::new();
    for path in paths {
        let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        files.push((path, text));
    }
    let mut test_only: Vec<PathBuf> = Vec::new();
    for (path, text) in &files {
        let is_module_root = path.file_name().is_some_and(|name| name == "lib.rs" || name == "mod.rs");
        let module_dir = if is_module_root { path.with_file_name("") } else { path.with_extension("") };
        for name in public_api::test_only_modules(text) {
            test_only.push(module_dir.join(format!("{name}.rs")));
            test_only.push(module_dir.join(name));
        }
    }
    Ok(files
        .into_iter()
        .filter(|(path, _)| !test_only.iter().any(|excluded| path.starts_with(excluded)))
        .map(|(path, text)| (relative(root, &path), text))
        .collect())
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

/// Internal dependencies of `package` that the layer table does not allow.
fn layer_violations(package: &Package) -> Vec<String> {
    let name = package.name.as_str();
    let allowed: &[&str] = LAYERS.iter().find(|(layer, _)| *layer == name).map_or(&[], |(_, allowed)| allowed);
    internal_dependencies(package)
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

/// Dependencies of `package` on crates of the layer table.
fn internal_dependencies(package: &Package) -> impl Iterator<Item = &Dependency> {
    package.dependencies.iter().filter(|dep| LAYERS.iter().any(|(name, _)| *name == dep.name))
}

/// `package`'s dependencies on a `config` that is not our path crate `ours` (`workspace = true`
/// is resolved by cargo, so a `[workspace.dependencies]` entry is judged where it is used).
fn foreign_config_dependencies(package: &Package, ours: &Path) -> Vec<String> {
    package
        .dependencies
        .iter()
        .filter(|dep| dep.name == "config" && dep.path.as_deref() != Some(ours))
        .map(|dep| {
            let origin = match (&dep.path, &dep.source) {
                (Some(path), _) => path.display().to_string(),
                (None, Some(source)) => source.clone(),
                (None, None) => "an unknown source".to_owned(),
            };
            format!(
                "[{}] config {} from {origin} is not our path crate (crates/config); never the crates.io `config`",
                dep.section, dep.requirement
            )
        })
        .collect()
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

mod imports;
mod metadata;
mod public_api;
mod references;
mod tests;
