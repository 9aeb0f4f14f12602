//! The fred check on small inline sources: what it must find, and what it must let pass.

use super::*;

fn problems(text: &str) -> Vec<String> {
    fred_in_public_api(&[SourceFile { path: "src/x.rs", text }])
}

#[test]
fn fred_types_in_public_signatures_are_found() {
    let cases = [
        ("use fred::clients::Pool;\npub fn pool() -> Pool { todo!() }\n", "Pool"),
        ("pub fn pool(\n    name: &str,\n    pool: fred::clients::Pool,\n) {}\n", "fred::clients::Pool"),
        (
            "use fred::error::{Error as FredError, ErrorKind};\npub struct E {\n    pub source: FredError,\n}\n",
            "FredError",
        ),
        ("use fred::{clients::{Client, Pool}};\npub enum Store {\n    Redis(Pool),\n}\n", "Pool"),
        ("use fred::types::Value;\npub trait Reply {\n    fn reply(self) -> Value;\n}\n", "Value"),
        ("pub use fred::types::Key;\n", "fred::types::Key"),
        ("use fred::clients::Pool;\ntype Shared = std::sync::Arc<Pool>;\npub fn shared() -> Shared {}\n", "Shared"),
        (
            "use fred::error::Error;\npub struct CacheError;\nimpl From<Error> for CacheError {\n    fn from(_: Error) -> Self { Self }\n}\n",
            "Error",
        ),
        ("pub struct Handle(pub fred::clients::Client);\n", "fred::clients::Client"),
    ];
    for (text, name) in cases {
        let found = problems(text);
        assert_eq!(found.len(), 1, "{text}: {found:#?}");
        assert!(found[0].contains(&format!("fred's `{name}`")), "{text}: {found:#?}");
    }
    let line = problems("//! doc\n\nuse fred::clients::Pool;\n\npub fn pool() -> Pool {}\n");
    assert!(line[0].starts_with("src/x.rs:5: "), "{line:?}");
}

#[test]
fn private_gated_and_non_fred_code_passes() {
    let cases = [
        // A private field, a pub(crate) item, a private function.
        "use fred::clients::Pool;\npub struct RedisPool {\n    pool: Pool,\n}\npub(crate) fn pool() -> Pool {}\nfn other(p: Pool) {}\n",
        // Gated on the feature, or test-only.
        "use fred::clients::Pool;\nimpl RedisPool {\n    /// Wraps it.\n    #[cfg(any(feature = \"fred-pool\", test))]\n    pub fn from_fred(pool: Pool) -> Self { Self { pool } }\n}\n",
        "#[cfg(test)]\nmod tests {\n    use fred::clients::Pool;\n    pub fn pool() -> Pool {}\n}\n",
        // fred in comments, strings and bodies; a name that only looks like an import.
        "use fred::types::Value;\n/// Returns fred::Value's text.\npub fn text() -> String {\n    let v: Value = todo!(); \"fred::Value\".to_owned()\n}\npub fn values() -> Vec<u8> {}\n",
        // Hidden from the docs: the layer-internal API of the crates below the toolkit.
        "impl CacheStore {\n    #[doc(hidden)]\n    pub fn route(&self) -> &fred::clients::Pool { todo!() }\n}\n",
        // A trait impl for a private type.
        "use fred::error::Error;\nstruct Failure;\nimpl From<Error> for Failure {\n    fn from(_: Error) -> Self { Self }\n}\n",
        // Lifetimes, char literals and raw strings with braces do not confuse the scan.
        "pub fn f<'a>(x: &'a str) -> char { '{' }\nconst S: &str = r#\"}\"#;\nuse fred::clients::Pool;\nfn g(p: Pool) {}\n",
    ];
    for text in cases {
        assert_eq!(problems(text), Vec::<String>::new(), "{text}");
    }
    for gate in ["#[cfg(not(test))]", "#[cfg(feature = \"testing\")]"] {
        let text = format!("{gate}\npub fn p() -> fred::clients::Pool {{}}\n");
        assert_eq!(problems(&text).len(), 1, "{gate} leaves the item in the API");
    }
}

#[test]
fn a_glob_import_from_fred_is_refused() {
    let found = problems("use fred::prelude::*;\npub fn ok() {}\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("glob import"), "{found:?}");
}

#[test]
fn test_only_module_files_are_named() {
    let lib = "mod client;\n#[cfg(test)]\nmod conformance;\n#[cfg(test)]\nmod tests {\n}\n#[cfg(feature = \"fred-pool\")]\nmod pool;\n";
    assert_eq!(test_only_modules(lib), ["conformance", "pool"]);
}
