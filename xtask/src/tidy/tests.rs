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
