//! The tidy checks on small inline examples, so that a check that silently finds nothing is
//! caught as surely as a file that breaks a rule.

use super::*;

#[test]
fn module_doc_must_be_the_first_non_empty_line() {
    let cases = [
        ("//! Owns the thing.\nfn main() {}", false),
        ("\n\n  //! Owns the thing.\n", false),
        ("fn main() {}", true),
        ("// a plain comment\n//! too late\n", true),
        ("/// an item doc\nfn f() {}\n", true),
        ("#![allow(dead_code)]\n//! after an attribute\n", true),
        ("", true),
    ];
    for (text, lacks) in cases {
        assert_eq!(lacks_module_doc(text), lacks, "for {text:?}");
    }
}

/// A package as `cargo metadata` would give it: `(package depended on, section, path)`.
fn package(name: &str, dependencies: &[(&str, &str, Option<&str>)]) -> Package {
    Package {
        name: name.to_owned(),
        manifest_path: PathBuf::from(format!("/repo/crates/{name}/Cargo.toml")),
        dependencies: dependencies
            .iter()
            .map(|(dependency, section, path)| Dependency {
                name: (*dependency).to_owned(),
                section: (*section).to_owned(),
                requirement: if path.is_some() { "^0.0.0".to_owned() } else { "^0.14".to_owned() },
                path: path.map(PathBuf::from),
                source: path.is_none().then(|| "registry+https://github.com/rust-lang/crates.io-index".to_owned()),
            })
            .collect(),
    }
}

#[test]
fn upward_dependency_is_detected() {
    let dao = package(
        "dao",
        &[
            ("cache-toolkit", "dependencies", Some("/repo/crates/cache-toolkit")),
            ("auth-core", "dependencies", Some("/repo/crates/auth-core")),
        ],
    );
    let problems = layer_violations(&dao);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let problem = &problems[0];
    for needle in ["`dao`", "`auth-core`", "[dependencies]"] {
        assert!(problem.contains(needle), "{problem:?} should name {needle}");
    }
}

#[test]
fn allowed_and_look_alike_dependencies_pass() {
    let server = package(
        "http-server",
        &[
            ("config", "dependencies", Some("/repo/crates/config")),
            ("infra", "dependencies", Some("/repo/crates/infra")),
            ("auth-core", "dev-dependencies", Some("/repo/crates/auth-core")),
            ("dao-macros", "dependencies", None),
            ("fred", "dependencies", None),
        ],
    );
    assert_eq!(layer_violations(&server), Vec::<String>::new());
    let look_alikes = package("config", &[("dao-macros", "dependencies", None), ("configure", "dependencies", None)]);
    assert_eq!(layer_violations(&look_alikes), Vec::<String>::new());
}

#[test]
fn a_dev_dependency_on_itself_is_no_layer_violation() {
    let itself = Some("/repo/crates/cache-toolkit");
    let toolkit = package("cache-toolkit", &[("cache-toolkit", "dev-dependencies", itself)]);
    assert!(layer_violations(&toolkit).is_empty());
    let toolkit = package(
        "cache-toolkit",
        &[("cache-toolkit", "dependencies", itself), ("infra", "dev-dependencies", Some("/repo/crates/infra"))],
    );
    assert_eq!(layer_violations(&toolkit).len(), 2);
}

#[test]
fn a_crate_outside_the_table_is_reported() {
    let folders = vec!["config".to_owned(), "metrics".to_owned(), "dao".to_owned()];
    let problems = unlisted_crates(&folders);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("crates/metrics"), "{problems:?}");
}

#[test]
fn config_must_be_our_path_crate() {
    let ours = Path::new("/repo/crates/config");
    let our_path = package("infra", &[("config", "dependencies", Some("/repo/crates/config"))]);
    assert_eq!(foreign_config_dependencies(&our_path, ours), Vec::<String>::new());
    let foreign = [
        package("infra", &[("config", "dependencies", None)]),
        package("infra", &[("config", "dev-dependencies", None)]),
        package("infra", &[("config", "dependencies", Some("/elsewhere/config"))]),
    ];
    for package in foreign {
        let problems = foreign_config_dependencies(&package, ours);
        assert_eq!(problems.len(), 1, "for {package:?}");
        assert!(problems[0].contains("is not our path crate"), "{problems:?}");
    }
}

/// `cargo metadata`'s JSON: the section of each kind and target, the package behind a rename.
#[test]
fn metadata_json_is_read_into_packages() {
    let json = serde_json::json!({ "packages": [{
        "name": "dao",
        "manifest_path": "/repo/crates/dao/Cargo.toml",
        "dependencies": [
            { "name": "infra", "rename": "store", "kind": null, "target": null, "req": "^0.0.0",
              "path": "/repo/crates/infra", "source": null },
            { "name": "http-server", "kind": "dev", "target": "cfg(unix)", "req": "*",
              "path": "/repo/crates/http-server", "source": null },
            { "name": "config", "kind": "build", "target": null, "req": "^0.14",
              "source": "registry+https://github.com/rust-lang/crates.io-index" },
        ],
    }]});
    let packages = metadata::parse(&json).unwrap();
    let sections: Vec<(&str, &str)> =
        packages[0].dependencies.iter().map(|dep| (dep.name.as_str(), dep.section.as_str())).collect();
    assert_eq!(
        sections,
        [
            ("infra", "dependencies"),
            ("http-server", "target.'cfg(unix)'.dev-dependencies"),
            ("config", "build-dependencies")
        ]
    );
    assert_eq!(packages[0].dependencies[2].path, None);
    assert!(metadata::parse(&serde_json::json!({ "packages": [{ "name": "dao" }] })).is_err());
}

/// A directory under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tessera-tidy-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.0.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Every way a manifest can spell a dependency, read by the real `cargo metadata` from a small
/// workspace: each upward dependency is found in its section, behind `workspace = true`, a
/// `[dependencies.NAME]` table or a rename; a renamed crates.io `config` is caught.
#[test]
fn every_spelling_and_section_of_a_dependency_is_seen_by_cargo() {
    let scratch = Scratch::new("spellings");
    scratch.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"crates/*\"]\nresolver = \"2\"\n\n[workspace.dependencies]\n\
         infra = { path = \"crates/infra\" }\n",
    );
    for name in ["infra", "http-server", "auth-core", "bench", "config"] {
        scratch.write(
            &format!("crates/{name}/Cargo.toml"),
            &format!("[package]\nname = \"{name}\"\nversion = \"0.0.0\"\n"),
        );
        scratch.write(&format!("crates/{name}/src/lib.rs"), "");
    }
    scratch.write(
        "crates/dao/Cargo.toml",
        "[package]\nname = \"dao\"\nversion = \"0.0.0\"\n\n[dependencies.infra]\nworkspace = true\n\n\
         [dev-dependencies]\nhttp-server = { path = \"../http-server\" }\n\n\
         [target.'cfg(unix)'.dependencies]\nstore = { package = \"auth-core\", path = \"../auth-core\" }\n\n\
         [build-dependencies]\nbench={path=\"../bench\"}\n",
    );
    scratch.write("crates/dao/src/lib.rs", "");
    scratch.write(
        "crates/cache-toolkit/Cargo.toml",
        "[package]\nname = \"cache-toolkit\"\nversion = \"0.0.0\"\n\n[dependencies]\n\
         settings = { package = \"config\", version = \"0.14\" }\n",
    );
    scratch.write("crates/cache-toolkit/src/lib.rs", "");
    let packages = metadata::packages(&scratch.0).unwrap();
    let dao = packages.iter().find(|package| package.name == "dao").unwrap();
    let mut found: Vec<String> = layer_violations(dao)
        .iter()
        .map(|problem| problem.split(" (crates/").next().unwrap_or_default().to_owned())
        .collect();
    found.sort();
    let expected = [
        "`dao` depends on `auth-core` in [target.'cfg(unix)'.dependencies]",
        "`dao` depends on `bench` in [build-dependencies]",
        "`dao` depends on `http-server` in [dev-dependencies]",
        "`dao` depends on `infra` in [dependencies]",
    ];
    assert_eq!(found, expected);
    let ours = fs::canonicalize(scratch.0.join("crates/config")).unwrap();
    let toolkit = packages.iter().find(|package| package.name == "cache-toolkit").unwrap();
    let foreign = foreign_config_dependencies(toolkit, &ours);
    assert_eq!(foreign.len(), 1, "{foreign:?}");
    assert!(foreign[0].contains("registry+"), "{foreign:?}");
    let server = packages.iter().find(|package| package.name == "http-server").unwrap();
    assert_eq!(foreign_config_dependencies(server, &ours), Vec::<String>::new());
}

#[test]
fn the_layer_table_only_points_down() {
    for (index, (name, allowed)) in LAYERS.iter().enumerate() {
        for dependency in *allowed {
            let position = LAYERS.iter().position(|(layer, _)| layer == dependency);
            assert!(
                position.is_some_and(|position| position < index),
                "`{name}` may depend on `{dependency}`, which is not above it in LAYERS"
            );
        }
    }
}

/// A repository of a few files, for the reference check.
struct FakeRepository {
    files: Vec<&'static str>,
    top_level: Vec<String>,
}

impl FakeRepository {
    fn new(files: &[&'static str]) -> Self {
        let mut top_level: Vec<String> =
            files.iter().map(|file| file.split('/').next().unwrap_or_default().to_owned()).collect();
        top_level.dedup();
        Self { files: files.to_vec(), top_level }
    }
}

impl references::Repository for FakeRepository {
    fn exists(&self, path: &Path) -> bool {
        self.files.iter().any(|file| Path::new(file).starts_with(path))
    }

    fn has_file_named(&self, name: &str) -> bool {
        self.files.iter().any(|file| file.rsplit('/').next() == Some(name))
    }

    fn top_level(&self) -> &[String] {
        &self.top_level
    }
}

fn unresolved(file: &str, text: &str) -> Vec<String> {
    let repository = FakeRepository::new(&[
        "README.md",
        "ARCHITECTURE.md",
        "docs/FRED.md",
        "docs/DESIGN.md",
        "crates/infra/src/tls.rs",
        "configs/dev.toml",
    ]);
    references::unresolved_references(Path::new(file), text, &repository)
}

#[test]
fn references_outside_the_repository_are_refused_wherever_they_are() {
    let text = "The brief is in ../shared/DESIGN.md.\n\
                Facts: `shared/FRED-NOTES.md`, the original in seed/000_172a.txt,\n\
                and /work/shared/STYLE.md, or ~/notes/cache.md.\n";
    let problems = unresolved("docs/NOTES.md", text);
    let words: Vec<&str> = problems.iter().map(|problem| problem.split('`').nth(1).unwrap_or_default()).collect();
    assert_eq!(
        words,
        [
            "../shared/DESIGN.md",
            "shared/FRED-NOTES.md",
            "seed/000_172a.txt",
            "/work/shared/STYLE.md",
            "~/notes/cache.md"
        ],
        "{problems:#?}"
    );
    assert!(problems[0].starts_with("docs/NOTES.md:1: "), "{}", problems[0]);
    assert!(problems[2].starts_with("docs/NOTES.md:2: "), "{}", problems[2]);
    assert!(problems[0].contains("points outside the repository"), "{}", problems[0]);
    // In code too, not only in comments.
    let code = "const BRIEF: &str = \"../../shared/DESIGN.md\";\n";
    assert_eq!(unresolved("crates/x/src/lib.rs", code).len(), 1);
}

#[test]
fn markdown_names_links_and_repository_paths_must_exist() {
    let text = "See DESIGN.md and STYLE.md, [fred](FRED.md), [gone](GONE.md), [top](../README.md),\n\
                [anchor](#precedence), [web](https://example.com/x.md), `crates/infra/src/tls.rs`,\n\
                `crates/infra/src/gone.rs` and `docs/NEAR-CACHE-NOTES.md`.\n";
    let problems = unresolved("docs/OVERVIEW.md", text);
    let words: Vec<&str> = problems.iter().map(|problem| problem.split('`').nth(1).unwrap_or_default()).collect();
    assert_eq!(words, ["GONE.md", "STYLE.md", "crates/infra/src/gone.rs", "docs/NEAR-CACHE-NOTES.md"], "{problems:#?}");
    assert!(problems[0].contains("is a link to nothing"), "{}", problems[0]);
    assert!(problems[1].contains("Markdown file the repository does not have"), "{}", problems[1]);
    assert!(problems[2].contains("path the repository does not have"), "{}", problems[2]);
}

#[test]
fn patterns_build_output_intra_doc_links_and_rust_code_are_not_references() {
    let markdown =
        "`configs/{APP_ENV}.toml`, `crates/*`, `target/bench/latest.md`, `crates/<name>/src`, `.md` files.\n";
    assert_eq!(unresolved("README.md", markdown), Vec::<String>::new());
    let rust = "//! Owns [`Thing`](crate::Thing) and [the rest](self).\n\
                let scratch = jail.create_file(\"configs/.env.test\", \"\");\n\
                let notes = \"NOTES.md\";\n\
                // Written by the benchmark: target/bench/toolkit.md; the brief: docs/DESIGN.md.\n";
    assert_eq!(unresolved("crates/x/src/lib.rs", rust), Vec::<String>::new());
    let stale = "/// The table is in docs/TABLES.md.\n";
    assert_eq!(unresolved("crates/x/src/lib.rs", stale).len(), 1, "comments in Rust are read");
}
