//! The import-circle check on small inline crates: circles through module paths, `super::`
//! and root re-exports are found; test-only code and one-way imports pass.

use super::*;

fn circles_in(files: &[(&str, &str)]) -> Vec<String> {
    let files: Vec<CrateFile<'_>> = files.iter().map(|(path, text)| CrateFile { path, text }).collect();
    circles(&files)
}

const ROOT: &str = "mod a;\nmod b;\nmod c;\npub use a::Alpha;\npub use b::{Beta, Gamma as G};\n";

#[test]
fn circles_are_found_however_the_import_is_written() {
    let cases = [
        ("use crate::b::Beta;\n", "fn f() -> crate::a::Alpha { todo!() }\n"),
        ("use super::Beta;\n", "use crate::Alpha;\n"),
        ("use crate::{G, c};\n", "fn f() { let _ = super::a::Alpha; }\n"),
    ];
    for (a, b) in cases {
        let found = circles_in(&[("lib.rs", ROOT), ("a.rs", a), ("b.rs", b), ("c.rs", "")]);
        assert_eq!(found.len(), 1, "{a} / {b}: {found:?}");
        assert!(found[0].contains("a → b (a.rs:1)") && found[0].contains("b → a (b.rs:"), "{found:?}");
    }
    let longer = circles_in(&[
        ("lib.rs", ROOT),
        ("a.rs", "use crate::b::Beta;\n"),
        ("b/mod.rs", "mod inner;\n"),
        ("b/inner.rs", "use crate::c::x;\n"),
        ("c.rs", "use crate::Alpha;\n"),
    ]);
    assert_eq!(longer, ["import circle: a → b (a.rs:1), b → c (b/inner.rs:1), c → a (c.rs:1)"]);
}

#[test]
fn one_way_imports_and_test_code_pass() {
    let found = circles_in(&[
        ("lib.rs", ROOT),
        ("a.rs", "use crate::b::Beta;\n#[cfg(test)]\nmod tests { use crate::c::x; }\n"),
        ("b.rs", "use crate::c::x;\n#[cfg(test)]\nfn helper() -> crate::Alpha { todo!() }\n"),
        ("c.rs", "use std::fmt;\n"),
        ("c/tests.rs", "use crate::Alpha;\n"),
        // `super::` below a module's top file stays inside the module.
        ("b/deep.rs", "use super::Alpha;\n"),
    ]);
    assert_eq!(found, Vec::<String>::new());
}
