//! Tests of how `cargo xtask test` builds its `cargo test` command line.

use super::*;

#[test]
fn workspace_flag_only_without_package_selection() {
    let cases: [(&[&str], bool); 8] = [
        (&[], false),
        (&["--", "--nocapture"], false),
        (&["-p", "dao"], true),
        (&["-pdao"], true),
        (&["--package", "dao"], true),
        (&["--package=dao"], true),
        (&["--release", "--", "-p"], false),
        (&["token_expiry", "--", "--test-threads=1"], false),
    ];
    for (words, selects) in cases {
        let args: Vec<String> = words.iter().map(|word| (*word).to_owned()).collect();
        assert_eq!(selects_packages(&args), selects, "for {words:?}");
    }
}
