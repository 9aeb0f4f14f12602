//! The fuzzer's pinned requirements.

/// Every requirement names one exact version, so two runs generate with the same code.
#[test]
fn every_requirement_is_pinned() {
    let path = crate::workspace::root().join("xtask").join("schemathesis").join("requirements.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let requirements: Vec<&str> =
        text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).collect();
    assert!(requirements.iter().any(|line| line.starts_with("schemathesis==")), "{text}");
    for line in requirements {
        let (name, version) = line.split_once("==").unwrap_or_else(|| panic!("`{line}` is not pinned with =="));
        assert!(!name.is_empty() && !version.is_empty() && !version.contains(['=', '<', '>', ',', ' ']), "`{line}`");
    }
}
