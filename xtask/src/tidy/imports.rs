//! Tidy: no import circle between the modules of a crate. Each crate's top-level modules (the
//! `mod`s of `lib.rs` or `main.rs`, with their submodules and files) must import each other
//! along a DAG, so there is an order in which every module uses only modules below it; a
//! circle means two modules are one concern, or one of them holds code that belongs lower.
//!
//! A module `a` uses `b` when its non-test code names `crate::b…`, `super::b…` from `a`'s own
//! top-level file, or a name the crate root re-exports from `b` (`crate::CacheClient`, defined
//! in `client`). Test-only code (`#[cfg(test)]` items and modules, `tests.rs` files) may reach
//! anywhere and is left out.

use std::collections::{BTreeMap, BTreeSet};

use syn::visit::Visit;

/// One source file of a crate: its path relative to `src/` (for messages and for its
/// module) and its text.
pub(super) struct CrateFile<'a> {
    pub(super) path: &'a str,
    pub(super) text: &'a str,
}

/// The import circles between the top-level modules of the crate made of `files`, each as
/// `a → b → … → a`, with one place each step is taken.
pub(super) fn circles(files: &[CrateFile<'_>]) -> Vec<String> {
    let Some(root) = files.iter().find(|file| file.path == "lib.rs" || file.path == "main.rs") else {
        return Vec::new();
    };
    let Ok(root_syntax) = syn::parse_file(root.text) else {
        return vec![format!("{}: cannot parse", root.path)];
    };
    let modules: BTreeSet<String> = root_syntax
        .items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(module) if !test_only(&module.attrs) => Some(module.ident.to_string()),
            _ => None,
        })
        .collect();
    let reexports = reexported_from(&root_syntax.items, &modules);
    // edges[a][b] = where a first names b.
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for file in files {
        let Some(module) = top_module(file.path, &modules) else { continue };
        let syntax = match syn::parse_file(file.text) {
            Ok(syntax) => syntax,
            Err(error) => {
                problems.push(format!("{}:{}: cannot parse: {error}", file.path, error.span().start().line));
                continue;
            }
        };
        let at_top = !file.path.contains('/') || file.path.ends_with("/mod.rs") && file.path.matches('/').count() == 1;
        let mut finder = UseFinder { modules: &modules, reexports: &reexports, at_top, used: Vec::new() };
        for item in syntax.items.iter().filter(|item| !item_is_test_only(item)) {
            finder.visit_item(item);
        }
        for (used, line) in finder.used {
            if used != module {
                edges.entry(module.clone()).or_default().entry(used).or_insert_with(|| format!("{}:{line}", file.path));
            }
        }
    }
    problems.extend(find_circles(&edges));
    problems
}

/// The top-level module a file belongs to: `client` for `client.rs`, `client/lists.rs` and
/// `client/mod.rs`; `None` for the root and for test-only modules' files.
fn top_module(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    if path.ends_with("tests.rs") {
        return None;
    }
    let first = path.split('/').next()?.trim_end_matches(".rs");
    modules.contains(first).then(|| first.to_owned())
}

/// Root re-exports: name → the module it comes from (`pub use client::{CacheClient, …}`).
fn reexported_from(items: &[syn::Item], modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    fn walk(tree: &syn::UseTree, module: &str, out: &mut BTreeMap<String, String>) {
        match tree {
            syn::UseTree::Path(path) => walk(&path.tree, module, out),
            syn::UseTree::Name(name) => {
                out.insert(name.ident.to_string(), module.to_owned());
            }
            syn::UseTree::Rename(rename) => {
                out.insert(rename.rename.to_string(), module.to_owned());
            }
            syn::UseTree::Group(group) => group.items.iter().for_each(|tree| walk(tree, module, out)),
            syn::UseTree::Glob(_) => {}
        }
    }
    fn start(tree: &syn::UseTree, modules: &BTreeSet<String>, out: &mut BTreeMap<String, String>) {
        match tree {
            syn::UseTree::Path(path) if path.ident == "self" || path.ident == "crate" => {
                start(&path.tree, modules, out)
            }
            syn::UseTree::Path(path) if modules.contains(&path.ident.to_string()) => {
                walk(&path.tree, &path.ident.to_string(), out);
            }
            syn::UseTree::Group(group) => group.items.iter().for_each(|tree| start(tree, modules, out)),
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for item in items {
        if let syn::Item::Use(item) = item {
            start(&item.tree, modules, &mut out);
        }
    }
    out
}

fn test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && matches!(&attr.meta, syn::Meta::List(list) if {
                let tokens = list.tokens.to_string();
                !tokens.contains("not") && tokens.split(|c: char| !c.is_alphanumeric() && c != '_').any(|word| word == "test")
            })
    })
}

fn item_is_test_only(item: &syn::Item) -> bool {
    match item {
        syn::Item::Mod(module) => test_only(&module.attrs) || module.ident == "tests",
        syn::Item::Fn(item) => test_only(&item.attrs),
        syn::Item::Use(item) => test_only(&item.attrs),
        syn::Item::Impl(item) => test_only(&item.attrs),
        syn::Item::Struct(item) => test_only(&item.attrs),
        syn::Item::Const(item) => test_only(&item.attrs),
        _ => false,
    }
}

/// Collects the modules a file's code names, with the line of the first mention.
struct UseFinder<'a> {
    modules: &'a BTreeSet<String>,
    reexports: &'a BTreeMap<String, String>,
    /// Whether the file is its module's top file, where `super::` is the crate root.
    at_top: bool,
    used: Vec<(String, usize)>,
}

impl UseFinder<'_> {
    /// The module a path through the crate root names: a module itself, or a re-exported name.
    fn through_root(&self, name: &str) -> Option<String> {
        if self.modules.contains(name) { Some(name.to_owned()) } else { self.reexports.get(name).cloned() }
    }

    fn use_tree(&mut self, tree: &syn::UseTree, from_root: bool, line: usize) {
        match tree {
            syn::UseTree::Path(path)
                if !from_root && (path.ident == "crate" || (self.at_top && path.ident == "super")) =>
            {
                self.use_tree(&path.tree, true, line);
            }
            syn::UseTree::Path(path) if from_root => {
                if let Some(module) = self.through_root(&path.ident.to_string()) {
                    self.used.push((module, line));
                }
            }
            syn::UseTree::Name(name) if from_root => {
                if let Some(module) = self.through_root(&name.ident.to_string()) {
                    self.used.push((module, line));
                }
            }
            syn::UseTree::Rename(rename) if from_root => {
                if let Some(module) = self.through_root(&rename.ident.to_string()) {
                    self.used.push((module, line));
                }
            }
            syn::UseTree::Group(group) => group.items.iter().for_each(|tree| self.use_tree(tree, from_root, line)),
            _ => {}
        }
    }
}

impl<'ast> Visit<'ast> for UseFinder<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !item_is_test_only(item) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&item.tree, false, item.use_token.span.start().line);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let mut segments = path.segments.iter();
        if let (Some(first), Some(second)) = (segments.next(), segments.next())
            && (first.ident == "crate" || (self.at_top && first.ident == "super"))
            && let Some(module) = self.through_root(&second.ident.to_string())
        {
            self.used.push((module, first.ident.span().start().line));
        }
        syn::visit::visit_path(self, path);
    }
}

/// Every circle in `edges`, found as the strongly connected components of more than one
/// module (Tarjan), each shown as one cycle through it.
fn find_circles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<String> {
    let nodes: BTreeSet<&String> = edges.keys().chain(edges.values().flat_map(BTreeMap::keys)).collect();
    let mut problems = Vec::new();
    let mut reported: BTreeSet<&String> = BTreeSet::new();
    for start in &nodes {
        if reported.contains(start) {
            continue;
        }
        if let Some(cycle) = shortest_cycle(start, edges) {
            let mut steps = Vec::new();
            for pair in cycle.windows(2) {
                let place = &edges[pair[0]][pair[1]];
                steps.push(format!("{} → {} ({place})", pair[0], pair[1]));
            }
            reported.extend(cycle.iter().copied());
            problems.push(format!("import circle: {}", steps.join(", ")));
        }
    }
    problems
}

/// The shortest path `start → … → start`, by breadth-first search.
fn shortest_cycle<'a>(
    start: &'a String,
    edges: &'a BTreeMap<String, BTreeMap<String, String>>,
) -> Option<Vec<&'a String>> {
    let mut previous: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in edges.get(node).into_iter().flat_map(BTreeMap::keys) {
            if next == start {
                let mut path = vec![node];
                let mut at = node;
                while at != start {
                    at = previous[at];
                    path.push(at);
                }
                path.reverse();
                path.push(start);
                return Some(path);
            }
            if !previous.contains_key(next) {
                previous.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
