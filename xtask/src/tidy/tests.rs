//! The tidy checks on small inline examples, so that a check that silently finds nothing is
//! caught as surely as a file that breaks a rule.

use super::*;
use std::path::Path;

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

#[test]
fn upward_dependency_is_detected() {
    let manifest = "[package]\nname = \"dao\"\n\n[dependencies]\ncache-toolkit.workspace = true\n\
                    auth-core.workspace = true\n";
    let problems = layer_violations("dao", manifest);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let problem = &problems[0];
    for needle in ["`dao`", "`auth-core`", "[dependencies]"] {
        assert!(problem.contains(needle), "{problem:?} should name {needle}");
    }
}

#[test]
fn every_spelling_and_section_of_a_dependency_is_seen() {
    let cases = [
        ("[dev-dependencies]\nhttp-server = { path = \"../http-server\" }\n", "dev-dependencies"),
        ("[build-dependencies]\ninfra=\"0.0.0\"\n", "build-dependencies"),
        ("[dependencies.infra]\nworkspace = true\n", "dependencies"),
        ("[dependencies]\nstore = { package = \"infra\", path = \"../infra\" }\n", "dependencies"),
        ("[target.'cfg(unix)'.dependencies]\ninfra.workspace = true\n", "target.'cfg(unix)'.dependencies"),
    ];
    for (manifest, section) in cases {
        let problems = layer_violations("dao", manifest);
        assert_eq!(problems.len(), 1, "for {manifest:?}: {problems:?}");
        assert!(problems[0].contains(&format!("[{section}]")), "for {manifest:?}: {problems:?}");
    }
}

#[test]
fn allowed_and_look_alike_dependencies_pass() {
    let manifest = "[package]\nname = \"http-server\"\n\n[dependencies]\nconfig.workspace = true\n\
                    infra.workspace = true\nauth-core = { workspace = true }\ndao-macros = \"1\"\n\
                    fred = { version = \"=10.1.0\", features = [\n  \"i-keys\", \"dao\",\n] }\n\
                    [features]\ndao = []\n";
    assert_eq!(layer_violations("http-server", manifest), Vec::<String>::new());
    let look_alikes = "[dependencies]\ndao-macros = \"1\"\nconfigure = \"1\"\n";
    assert_eq!(layer_violations("config", look_alikes), Vec::<String>::new());
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
    let ours = [
        "[workspace.dependencies]\nconfig = { path = \"crates/config\", version = \"0.0.0\" }\n",
        "[dependencies]\nconfig.workspace = true\n",
        "[dependencies]\nconfig = { workspace = true }\n",
        "[dev-dependencies]\nconfig = { path = \"../config\" }\n",
        "[package]\nname = \"config\"\n",
    ];
    for manifest in ours {
        assert_eq!(foreign_config_dependencies(manifest), Vec::<String>::new(), "for {manifest:?}");
    }
    let foreign = [
        "[workspace.dependencies]\nconfig = \"0.14\"\n",
        "[workspace.dependencies]\nconfig = { workspace = true }\n",
        "[dependencies]\nconfig = { version = \"0.14\", features = [\"toml\"] }\n",
        "[dependencies]\nsettings = { package = \"config\", version = \"0.14\" }\n",
        "[dependencies.config]\nversion = \"0.14\"\n",
    ];
    for manifest in foreign {
        assert_eq!(foreign_config_dependencies(manifest).len(), 1, "for {manifest:?}");
    }
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
