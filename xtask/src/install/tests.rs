//! Tests of tool discovery and of the exact advice given when a tool is missing.

use super::*;

#[test]
fn redis_advice_is_the_documented_message() {
    assert_eq!(
        missing_advice("redis-server", &["redis-server", "redis-cli"], "redis-server"),
        "redis-server is missing: install the Debian/Ubuntu package redis-server \
         (apt-get install redis-server), or put redis-server and redis-cli on PATH"
    );
}

#[test]
fn single_tool_advice_names_its_package() {
    assert_eq!(
        missing_advice("wrk", &["wrk"], "wrk"),
        "wrk is missing: install the Debian/Ubuntu package wrk (apt-get install wrk), \
         or put wrk on PATH"
    );
}

#[test]
fn a_present_tool_is_found_without_installing() -> Result<()> {
    let sh = ensure_tool("sh", "dash")?;
    assert!(sh.is_absolute(), "{} should be absolute", sh.display());
    Ok(())
}

#[test]
fn sbin_directories_are_searched_after_path_even_when_path_lacks_them() {
    let cases: [(Option<&str>, &[&str]); 4] = [
        (None, &["/usr/local/sbin", "/usr/sbin", "/sbin"]),
        (Some("/usr/bin:/bin"), &["/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin"]),
        (Some("/usr/sbin:/usr/bin"), &["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/sbin"]),
        (Some("/opt/x/bin:/sbin:/usr/local/sbin"), &["/opt/x/bin", "/sbin", "/usr/local/sbin", "/usr/sbin"]),
    ];
    for (path, expected) in cases {
        let expected: Vec<PathBuf> = expected.iter().map(PathBuf::from).collect();
        assert_eq!(search_dirs(path.map(OsString::from)), expected, "for PATH={path:?}");
    }
}
