//! Tidy: every file the repository's `.rs`, `.md` and `.toml` files point at is in the
//! repository. A clone has nothing beside it, so a reference to notes kept next to a checkout
//! (`../shared/…`, `shared/…`, `seed/…`, `/work/…`) or to a file that was never committed
//! leaves its reader with nothing; the facts belong in `docs/` instead.
//!
//! What counts as a reference: a relative Markdown link target; a word ending in `.md`; and a
//! word that starts with a top-level entry of the repository (`crates/…`, `docs/…`). Words with
//! `{`, `}`, `*`, `<` or `>` are patterns, not paths, and are left alone, as are `target/…`
//! (build output, made at run time) and rustdoc's intra-doc links (`[x](crate::y)`). In `.rs`
//! files only comments are read for these (code names files a test makes, in a scratch
//! directory); the outside-pointing words are refused on every line of every file.

use std::path::{Component, Path, PathBuf};

/// Word prefixes that always point outside the repository.
const OUTSIDE_PREFIXES: [&str; 4] = ["shared/", "seed/", "/work/", "~/"];
/// Text that points outside the repository wherever it appears in a word.
const OUTSIDE_INFIX: &str = "../shared";
/// Where builds and benchmarks write; its files exist only after a run.
const BUILD_OUTPUT: &str = "target/";

/// What a check needs to know about the repository's files.
pub(super) trait Repository {
    /// Whether `path` (relative to the repository root, normalized) is a file or directory.
    fn exists(&self, path: &Path) -> bool;
    /// Whether some file anywhere in the repository has this file name.
    fn has_file_named(&self, name: &str) -> bool;
    /// The repository's top-level entries (`crates`, `docs`, `README.md`…).
    fn top_level(&self) -> &[String];
}

/// The references in `text` (the contents of `file`, relative to the root) that do not resolve
/// inside the repository, each as `file:line: reason`.
pub(super) fn unresolved_references(file: &Path, text: &str, repository: &dyn Repository) -> Vec<String> {
    let directory = file.parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    let is_rust = file.extension().is_some_and(|extension| extension == "rs");
    for (index, line) in text.lines().enumerate() {
        let is_prose = !is_rust || line.trim_start().starts_with("//");
        // One report per word and line: a link's target is also a word of the line.
        let mut reported: Vec<String> = Vec::new();
        let mut report = |reference: &str, reason: &str| {
            if !reported.iter().any(|word| word == reference) {
                reported.push(reference.to_owned());
                problems.push(format!("{}:{}: `{reference}` {reason}", file.display(), index + 1));
            }
        };
        for target in markdown_link_targets(line).into_iter().filter(|_| is_prose) {
            if !resolves(repository, directory, target) {
                report(target, "is a link to nothing in the repository");
            }
        }
        for word in path_words(line) {
            if word.contains(OUTSIDE_INFIX) || OUTSIDE_PREFIXES.iter().any(|prefix| word.starts_with(prefix)) {
                report(word, "points outside the repository; put the facts in docs/ and point there");
            } else if !is_prose || word.starts_with(BUILD_OUTPUT) {
                continue;
            } else if names_markdown_file(word) {
                let found =
                    resolves(repository, directory, word) || (is_bare_name(word) && repository.has_file_named(word));
                if !found {
                    report(word, "names a Markdown file the repository does not have");
                }
            } else if starts_with_top_level(repository, word) && !repository.exists(&normalize(Path::new(word))) {
                report(word, "names a path the repository does not have");
            }
        }
    }
    problems
}

/// Whether `target` (relative to `directory`, or to the root) names something that exists.
fn resolves(repository: &dyn Repository, directory: &Path, target: &str) -> bool {
    let target = target.split('#').next().unwrap_or(target);
    if target.is_empty() {
        return true;
    }
    repository.exists(&normalize(&directory.join(target))) || repository.exists(&normalize(Path::new(target)))
}

/// `a/b/../c` → `a/c`, `./x` → `x`; a path that climbs above the root keeps its `..`.
fn normalize(path: &Path) -> PathBuf {
    let mut parts: Vec<Component<'_>> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(parts.last(), Some(Component::Normal(_))) => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.iter().collect()
}

/// `DESIGN.md`, `docs/FRED.md`; not the bare extension `.md`.
fn names_markdown_file(word: &str) -> bool {
    let name = word.rsplit('/').next().unwrap_or(word);
    name.strip_suffix(".md").is_some_and(|stem| !stem.is_empty())
}

fn is_bare_name(word: &str) -> bool {
    !word.contains('/')
}

fn starts_with_top_level(repository: &dyn Repository, word: &str) -> bool {
    repository
        .top_level()
        .iter()
        .any(|entry| word.strip_prefix(entry.as_str()).is_some_and(|rest| rest.starts_with('/')))
}

/// The targets of `[text](target)` links that are neither URLs, in-page anchors nor rustdoc
/// intra-doc links (`self`, `Self::method`, `crate::Type`).
fn markdown_link_targets(line: &str) -> Vec<&str> {
    let mut targets = Vec::new();
    for (position, _) in line.match_indices("](") {
        let rest = &line[position + 2..];
        let Some(end) = rest.find(')') else { continue };
        let target = rest[..end].split_whitespace().next().unwrap_or_default();
        let is_url = target.contains("://") || target.starts_with("mailto:");
        let is_rust_path = target.contains("::") || target.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !target.is_empty() && !is_url && !is_rust_path && !target.starts_with('#') {
            targets.push(target);
        }
    }
    targets
}

/// Runs of path characters (letters, digits, `_ - . / ~`), a trailing `.` cut. A run that
/// touches `{ } * < >` is a pattern (`configs/{APP_ENV}.toml`, `crates/*`) and is skipped, as
/// is the rest of a URL (`//host/…`).
fn path_words(line: &str) -> Vec<&str> {
    let is_path_char = |character: char| character.is_ascii_alphanumeric() || "_-./~".contains(character);
    let is_pattern_char = |character: char| "{}*<>".contains(character);
    line.split(|character: char| !(is_path_char(character) || is_pattern_char(character)))
        .filter(|word| !word.contains(is_pattern_char) && !word.starts_with("//"))
        .map(|word| word.trim_end_matches('.'))
        .filter(|word| !word.is_empty())
        .collect()
}
