//! Tidy: no type of the Redis client (fred) in cache-toolkit's public API, so a user of the
//! toolkit is not tied to fred's exact version. Items gated on the `fred-pool` feature
//! (`RedisPool::from_fred`, for the crates that build pools) and `#[doc(hidden)]` items (the
//! layer-internal API the crates below offer the crates above) may name one.
//!
//! Files are parsed with `syn` and the check errs on the side of reporting: every `pub` item
//! (not `pub(crate)`) outside test-only code counts as public, even in a private module.
//! What it looks at: a `pub` function's signature, a `pub` field, a `pub enum` or `pub trait`
//! whole (variants and trait items are public), `pub use`, `pub type`, `pub const`/`static`,
//! the `pub` items of inherent impls, and the header of a trait `impl` for a type declared `pub`.
//! A fred type is `fred::…` written out, or a name the file imports from fred (`use fred::…`,
//! aliases included) or a type alias the file defines over one. A glob import from fred is
//! refused: it would hide which names are fred's.

use std::collections::BTreeSet;

use syn::visit::Visit;

/// One source file: its path (for messages) and its text.
pub(super) struct SourceFile<'a> {
    pub(super) path: &'a str,
    pub(super) text: &'a str,
}

/// The places where `files` (a crate's `src`, test-only modules already left out) name a fred
/// type in their public API, each as `path:line: what`.
pub(super) fn fred_in_public_api(files: &[SourceFile<'_>]) -> Vec<String> {
    fred_in_api_of(files, None)
}

/// [`fred_in_public_api`] for a crate below the toolkit whose types the toolkit re-exports:
/// only the types named in `reexported` count (their definitions and their impls).
pub(super) fn fred_in_reexported_api(files: &[SourceFile<'_>], reexported: &BTreeSet<String>) -> Vec<String> {
    fred_in_api_of(files, Some(reexported))
}

/// The names `lib` re-exports from the crate `from` (`pub use store::{CacheError, …};`).
pub(super) fn reexported_names(lib: &str, from: &str) -> BTreeSet<String> {
    let Ok(syntax) = syn::parse_file(lib) else { return BTreeSet::new() };
    let mut names = BTreeSet::new();
    for item in &syntax.items {
        if let syn::Item::Use(item) = item
            && is_pub(&item.vis)
            && let syn::UseTree::Path(path) = &item.tree
            && path.ident == from
        {
            collect_use_names(&path.tree, &mut names);
        }
    }
    names
}

fn collect_use_names(tree: &syn::UseTree, names: &mut BTreeSet<String>) {
    match tree {
        syn::UseTree::Path(path) => collect_use_names(&path.tree, names),
        syn::UseTree::Name(name) => {
            names.insert(name.ident.to_string());
        }
        syn::UseTree::Rename(rename) => {
            names.insert(rename.ident.to_string());
        }
        syn::UseTree::Group(group) => group.items.iter().for_each(|tree| collect_use_names(tree, names)),
        syn::UseTree::Glob(_) => {}
    }
}

fn fred_in_api_of(files: &[SourceFile<'_>], only: Option<&BTreeSet<String>>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    for file in files {
        match syn::parse_file(file.text) {
            Ok(syntax) => parsed.push((file.path, syntax)),
            Err(error) => problems.push(format!("{}:{}: cannot parse: {error}", file.path, error.span().start().line)),
        }
    }
    let public_types: BTreeSet<String> =
        parsed.iter().flat_map(|(_, syntax)| public_type_names(&syntax.items)).collect();
    for (path, syntax) in &parsed {
        let mut names = FredNames::default();
        names.collect(&syntax.items);
        for line in &names.glob_imports {
            problems.push(format!(
                "{path}:{line}: a glob import from fred hides which names are fred's; import them by name"
            ));
        }
        let mut signatures = Vec::new();
        public_signatures(&syntax.items, &public_types, only, &mut signatures);
        for signature in signatures {
            if let Some((name, line)) = names.first_in(&signature) {
                let shown: String = signature.text().split_whitespace().collect::<Vec<_>>().join(" ");
                let shown: String = shown.chars().take(100).collect();
                problems.push(format!(
                    "{path}:{line}: `{shown}` names fred's `{name}` in the public API (gate it on the `fred-pool` \
                     feature, or keep it pub(crate))"
                ));
            }
        }
    }
    problems
}

/// Modules a file declares as test-only (`#[cfg(test)] mod NAME;`, or gated on the `fred-pool`
/// feature): their files are no API.
pub(super) fn test_only_modules(text: &str) -> Vec<String> {
    let Ok(syntax) = syn::parse_file(text) else { return Vec::new() };
    syntax
        .items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(module) if module.content.is_none() && exempt(&module.attrs) => {
                Some(module.ident.to_string())
            }
            _ => None,
        })
        .collect()
}

/// One piece of public API: tokens that must name no fred type.
enum Signature<'a> {
    Fn(&'a syn::Signature),
    Type(&'a syn::Type),
    Fields(&'a syn::Fields),
    Trait(&'a syn::ItemTrait),
    Use(&'a syn::ItemUse),
    ImplHeader(&'a syn::ItemImpl),
}

impl Signature<'_> {
    fn text(&self) -> String {
        use quote::ToTokens;
        let mut tokens = proc_macro2::TokenStream::new();
        match self {
            Self::Fn(signature) => signature.to_tokens(&mut tokens),
            Self::Type(ty) => ty.to_tokens(&mut tokens),
            Self::Fields(fields) => fields.to_tokens(&mut tokens),
            Self::Trait(item) => item.ident.to_tokens(&mut tokens),
            Self::Use(item) => item.tree.to_tokens(&mut tokens),
            Self::ImplHeader(item) => {
                if let Some((_, path, _)) = &item.trait_ {
                    path.to_tokens(&mut tokens);
                }
                item.self_ty.to_tokens(&mut tokens);
            }
        }
        tokens.to_string().replace(" :: ", "::").replace(" < ", "<").replace(" >", ">")
    }
}

/// Whether `attrs` take an item out of the public API: `#[cfg(test)]` (or a `cfg(any(…))`
/// naming `test`), the `fred-pool` feature, or `#[doc(hidden)]`. `cfg(not(test))` does not.
fn exempt(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let tokens = match &attr.meta {
            syn::Meta::List(list) => list.tokens.to_string(),
            _ => return false,
        };
        if attr.path().is_ident("doc") {
            return tokens.trim() == "hidden";
        }
        if !attr.path().is_ident("cfg") || tokens.contains("not") {
            return false;
        }
        tokens.contains("\"fred-pool\"")
            || tokens.split(|c: char| !c.is_alphanumeric() && c != '_').any(|word| word == "test")
    })
}

fn is_pub(visibility: &syn::Visibility) -> bool {
    matches!(visibility, syn::Visibility::Public(_))
}

/// The names of the types (structs, enums, traits, aliases) declared `pub` in `items`.
fn public_type_names(items: &[syn::Item]) -> Vec<String> {
    let mut names = Vec::new();
    for item in items {
        match item {
            syn::Item::Struct(item) if is_pub(&item.vis) => names.push(item.ident.to_string()),
            syn::Item::Enum(item) if is_pub(&item.vis) => names.push(item.ident.to_string()),
            syn::Item::Trait(item) if is_pub(&item.vis) => names.push(item.ident.to_string()),
            syn::Item::Type(item) if is_pub(&item.vis) => names.push(item.ident.to_string()),
            syn::Item::Mod(module) if !exempt(&module.attrs) => {
                if let Some((_, inner)) = &module.content {
                    names.extend(public_type_names(inner));
                }
            }
            _ => {}
        }
    }
    names
}

/// Every piece of public API in `items` (inline modules included, test-only code left out).
fn public_signatures<'a>(
    items: &'a [syn::Item],
    public_types: &BTreeSet<String>,
    only: Option<&BTreeSet<String>>,
    out: &mut Vec<Signature<'a>>,
) {
    for item in items.iter().filter(|item| only.is_none_or(|only| item_names_one_of(item, only))) {
        match item {
            syn::Item::Fn(item) if is_pub(&item.vis) && !exempt(&item.attrs) => out.push(Signature::Fn(&item.sig)),
            syn::Item::Struct(item) if is_pub(&item.vis) && !exempt(&item.attrs) => {
                let public_fields = item.fields.iter().any(|field| is_pub(&field.vis) && !exempt(&field.attrs));
                if public_fields {
                    for field in item.fields.iter().filter(|field| is_pub(&field.vis) && !exempt(&field.attrs)) {
                        out.push(Signature::Type(&field.ty));
                    }
                }
            }
            syn::Item::Enum(item) if is_pub(&item.vis) && !exempt(&item.attrs) => {
                out.extend(
                    item.variants
                        .iter()
                        .filter(|variant| !exempt(&variant.attrs))
                        .map(|v| Signature::Fields(&v.fields)),
                );
            }
            syn::Item::Trait(item) if is_pub(&item.vis) && !exempt(&item.attrs) => out.push(Signature::Trait(item)),
            syn::Item::Use(item) if is_pub(&item.vis) && !exempt(&item.attrs) => out.push(Signature::Use(item)),
            syn::Item::Type(item) if is_pub(&item.vis) && !exempt(&item.attrs) => out.push(Signature::Type(&item.ty)),
            syn::Item::Const(item) if is_pub(&item.vis) && !exempt(&item.attrs) => out.push(Signature::Type(&item.ty)),
            syn::Item::Static(item) if is_pub(&item.vis) && !exempt(&item.attrs) => out.push(Signature::Type(&item.ty)),
            syn::Item::Impl(item) if !exempt(&item.attrs) => {
                if item.trait_.is_some() {
                    if type_name(&item.self_ty).is_some_and(|name| public_types.contains(&name)) {
                        out.push(Signature::ImplHeader(item));
                    }
                    continue;
                }
                for inner in &item.items {
                    match inner {
                        syn::ImplItem::Fn(method) if is_pub(&method.vis) && !exempt(&method.attrs) => {
                            out.push(Signature::Fn(&method.sig));
                        }
                        syn::ImplItem::Const(constant) if is_pub(&constant.vis) && !exempt(&constant.attrs) => {
                            out.push(Signature::Type(&constant.ty));
                        }
                        _ => {}
                    }
                }
            }
            syn::Item::Mod(module) if !exempt(&module.attrs) => {
                if let Some((_, inner)) = &module.content {
                    public_signatures(inner, public_types, only, out);
                }
            }
            _ => {}
        }
    }
}

/// Whether `item` defines, or implements something for, a type named in `names` (inline
/// modules are looked into).
fn item_names_one_of(item: &syn::Item, names: &BTreeSet<String>) -> bool {
    let ident = match item {
        syn::Item::Struct(item) => &item.ident,
        syn::Item::Enum(item) => &item.ident,
        syn::Item::Trait(item) => &item.ident,
        syn::Item::Type(item) => &item.ident,
        syn::Item::Fn(item) => &item.sig.ident,
        syn::Item::Const(item) => &item.ident,
        syn::Item::Impl(item) => return type_name(&item.self_ty).is_some_and(|name| names.contains(&name)),
        syn::Item::Mod(_) => return true,
        _ => return false,
    };
    names.contains(&ident.to_string())
}

/// The last segment's name of a path type (`CacheError` for `crate::CacheError<T>`).
fn type_name(ty: &syn::Type) -> Option<String> {
    match ty {
        syn::Type::Path(path) => path.path.segments.last().map(|segment| segment.ident.to_string()),
        _ => None,
    }
}

/// The names a file takes from fred: imports (with their aliases) and the type aliases it
/// defines over them; and where it imports a glob from fred.
#[derive(Default)]
struct FredNames {
    names: BTreeSet<String>,
    glob_imports: Vec<usize>,
}

impl FredNames {
    fn collect(&mut self, items: &[syn::Item]) {
        for item in items {
            match item {
                syn::Item::Use(item) => self.add_use(&item.tree, false),
                syn::Item::Mod(module) if !exempt(&module.attrs) => {
                    if let Some((_, inner)) = &module.content {
                        self.collect(inner);
                    }
                }
                _ => {}
            }
        }
        // Aliases after imports: `type Shared = Arc<Pool>` is fred's when `Pool` is.
        for item in items {
            if let syn::Item::Type(alias) = item
                && self.first_in(&Signature::Type(&alias.ty)).is_some()
            {
                self.names.insert(alias.ident.to_string());
            }
        }
    }

    fn add_use(&mut self, tree: &syn::UseTree, under_fred: bool) {
        match tree {
            syn::UseTree::Path(path) => self.add_use(&path.tree, under_fred || path.ident == "fred"),
            syn::UseTree::Name(name) if under_fred => {
                self.names.insert(name.ident.to_string());
            }
            syn::UseTree::Rename(rename) if under_fred => {
                self.names.insert(rename.rename.to_string());
            }
            syn::UseTree::Glob(glob) if under_fred => self.glob_imports.push(glob.star_token.span.start().line),
            syn::UseTree::Group(group) => group.items.iter().for_each(|tree| self.add_use(tree, under_fred)),
            _ => {}
        }
    }

    /// The first fred type `signature` names, as written, and its line.
    fn first_in(&self, signature: &Signature<'_>) -> Option<(String, usize)> {
        let mut finder = FredPathFinder { names: &self.names, found: None };
        match signature {
            Signature::Fn(signature) => finder.visit_signature(signature),
            Signature::Type(ty) => finder.visit_type(ty),
            Signature::Fields(fields) => finder.visit_fields(fields),
            Signature::Trait(item) => finder.visit_item_trait(item),
            Signature::Use(item) => {
                if let Some(path) = use_path_from_fred(&item.tree, &mut Vec::new()) {
                    return Some((path, item.use_token.span.start().line));
                }
            }
            Signature::ImplHeader(item) => {
                if let Some((_, path, _)) = &item.trait_ {
                    finder.visit_path(path);
                }
                finder.visit_type(&item.self_ty);
            }
        }
        finder.found
    }
}

/// `fred::types::Key` for `pub use fred::types::Key;`.
fn use_path_from_fred(tree: &syn::UseTree, prefix: &mut Vec<String>) -> Option<String> {
    match tree {
        syn::UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            let found = use_path_from_fred(&path.tree, prefix);
            prefix.pop();
            found
        }
        syn::UseTree::Name(name) if prefix.first().is_some_and(|first| first == "fred") => {
            Some(format!("{}::{}", prefix.join("::"), name.ident))
        }
        syn::UseTree::Group(group) => group.items.iter().find_map(|tree| use_path_from_fred(tree, prefix)),
        _ => None,
    }
}

struct FredPathFinder<'a> {
    names: &'a BTreeSet<String>,
    found: Option<(String, usize)>,
}

impl<'ast> Visit<'ast> for FredPathFinder<'_> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        if self.found.is_some() {
            return;
        }
        if let Some(first) = path.segments.first() {
            let written: Vec<String> = path.segments.iter().map(|segment| segment.ident.to_string()).collect();
            if first.ident == "fred" || (path.segments.len() == 1 && self.names.contains(&first.ident.to_string())) {
                self.found = Some((written.join("::"), first.ident.span().start().line));
                return;
            }
        }
        syn::visit::visit_path(self, path);
    }

    // Bodies are no API.
    fn visit_block(&mut self, _: &'ast syn::Block) {}
}

#[cfg(test)]
mod tests;
