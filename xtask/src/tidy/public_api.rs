//! Tidy: no type of the Redis client (fred) in cache-toolkit's public API, so a user of the
//! toolkit is not tied to fred's exact version. Only items gated on the `fred-pool` feature
//! (`RedisPool::from_fred`, for the crate that builds the pool) may name one.
//!
//! This reads source text, not compiled items, and errs on the side of reporting: every `pub`
//! item (not `pub(crate)`) outside test-only code counts as public, even in a private module.
//! What it looks at: a `pub` function's signature up to its body, a `pub` field, a `pub enum`
//! or `pub trait` whole (variants and trait methods are public), `pub use`, `pub type`,
//! `pub const`/`static`, and the header of a trait `impl` for a type the crate declares `pub`.
//! A fred type is `fred::…` written out, or a name the file imports from fred (`use fred::…`,
//! aliases included) or a type alias the file defines over one. A glob import from fred is
//! refused: it would hide which names are fred's.

use std::collections::BTreeSet;

/// One source file: its path (for messages) and its text.
pub(super) struct SourceFile<'a> {
    pub(super) path: &'a str,
    pub(super) text: &'a str,
}

/// The places where `files` (a crate's `src`, test-only modules already left out) name a fred
/// type in their public API, each as `path:line: what`.
pub(super) fn fred_in_public_api(files: &[SourceFile<'_>]) -> Vec<String> {
    let code: Vec<String> = files.iter().map(|file| code_only(file.text)).collect();
    let public_types: BTreeSet<String> =
        files.iter().zip(&code).flat_map(|(file, code)| public_type_names(code, file.text)).collect();
    let mut problems = Vec::new();
    for (file, code) in files.iter().zip(&code) {
        let (fred_names, glob_imports) = fred_names(code);
        for offset in glob_imports {
            problems.push(format!(
                "{}:{}: a glob import from fred hides which names are fred's; import them by name",
                file.path,
                line_of(code, offset)
            ));
        }
        for (offset, signature) in public_signatures(code, file.text, &public_types) {
            if let Some(name) = named_fred_type(&signature, &fred_names) {
                let shown: String = signature.split_whitespace().collect::<Vec<_>>().join(" ");
                let shown: String = shown.chars().take(100).collect();
                problems.push(format!(
                    "{}:{}: `{shown}` names fred's `{name}` in the public API (gate it on the `fred-pool` \
                     feature, or keep it pub(crate))",
                    file.path,
                    line_of(code, offset)
                ));
            }
        }
    }
    problems
}

/// Modules a file declares as test-only (`#[cfg(test)] mod NAME;`): their files are no API.
pub(super) fn test_only_modules(text: &str) -> Vec<String> {
    let code = code_only(text);
    gated_items(&code, text)
        .into_iter()
        .filter_map(|(start, end)| {
            let item = code[start..end].trim_end_matches(';');
            let name = item.rsplit("mod ").next().filter(|_| item.contains("mod "))?.trim();
            let is_module_file = code[start..end].ends_with(';') && is_identifier(name);
            is_module_file.then(|| name.to_owned())
        })
        .collect()
}

/// `text` with comments removed and the contents of string and character literals blanked
/// (lines and offsets kept), so braces and words in them are not mistaken for code.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    // Blanks keep each character's byte length, so offsets into the result are offsets into `text`.
    let blank = |c: char| if c == '\n' { "\n".to_owned() } else { " ".repeat(c.len_utf8()) };
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let next = chars.get(index + 1).copied();
        let previous_is_identifier = index > 0 && is_identifier_char(chars[index - 1]);
        if c == '/' && next == Some('/') {
            while index < chars.len() && chars[index] != '\n' {
                out.push_str(&blank(chars[index]));
                index += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while index < chars.len() {
                if chars[index] == '/' && chars.get(index + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    index += 2;
                } else if chars[index] == '*' && chars.get(index + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    index += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push_str(&blank(chars[index]));
                    index += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"' | '#')) && (!previous_is_identifier || chars[index - 1] == 'b') {
            let hashes = chars[index + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(index + 1 + hashes) != Some(&'"') {
                out.push(c);
                index += 1;
                continue;
            }
            out.push('r');
            out.extend(std::iter::repeat_n('#', hashes));
            out.push('"');
            index += 2 + hashes;
            let closing: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            while index < chars.len() && !chars[index..].starts_with(&closing) {
                out.push_str(&blank(chars[index]));
                index += 1;
            }
            out.extend(closing.iter().take(chars.len().saturating_sub(index)));
            index += closing.len();
        } else if c == '"' {
            out.push('"');
            index += 1;
            while index < chars.len() && chars[index] != '"' {
                if chars[index] == '\\' && index + 1 < chars.len() {
                    out.push(' ');
                    index += 1;
                }
                out.push_str(&blank(chars[index]));
                index += 1;
            }
            if index < chars.len() {
                out.push('"');
                index += 1;
            }
        } else if c == '\'' && (next == Some('\\') || chars.get(index + 2) == Some(&'\'')) {
            // A character literal (a lifetime such as `'a` has no closing quote after one char).
            out.push('\'');
            index += 1;
            while index < chars.len() && chars[index] != '\'' {
                if chars[index] == '\\' {
                    out.push(' ');
                    index += 1;
                }
                if index < chars.len() {
                    out.push_str(&blank(chars[index]));
                    index += 1;
                }
            }
            if index < chars.len() {
                out.push('\'');
                index += 1;
            }
        } else {
            out.push(c);
            index += 1;
        }
    }
    out
}

fn is_identifier_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty() && text.chars().all(is_identifier_char)
}

fn line_of(code: &str, offset: usize) -> usize {
    code[..offset].matches('\n').count() + 1
}

/// Byte offsets where the keyword `word` starts (a whole word, followed by whitespace).
fn keyword_offsets<'a>(code: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    code.match_indices(word).map(|(offset, _)| offset).filter(move |offset| {
        let before = code[..*offset].chars().next_back();
        let after = code[offset + word.len()..].chars().next();
        !before.is_some_and(is_identifier_char) && after.is_some_and(char::is_whitespace)
    })
}

/// The end of the item starting at `start`: after its `;`, or after the brace matching its first
/// `{`, whichever comes first (brackets and parentheses before it are skipped over).
fn item_end(code: &str, start: usize) -> usize {
    let bytes = code.as_bytes();
    let mut depth = 0usize;
    let mut index = start;
    while index < bytes.len() {
        match bytes[index] {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b';' if depth == 0 => return index + 1,
            b'{' if depth == 0 => return matching_brace(code, index),
            _ => {}
        }
        index += 1;
    }
    bytes.len()
}

/// Just after the `}` that closes the `{` at `open`.
fn matching_brace(code: &str, open: usize) -> usize {
    let mut depth = 0usize;
    for (index, byte) in code.bytes().enumerate().skip(open) {
        match byte {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return index + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// Spans of items under `#[cfg(test)]` or a `cfg` that needs the `fred-pool` feature, from the
/// attribute to the item's end (`code` is `text` through [`code_only`]: the feature's name is
/// read from `text`).
fn gated_items(code: &str, text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for (start, _) in code.match_indices("#[cfg(") {
        let Some(close) = code[start..].find(']').map(|close| start + close + 1) else { continue };
        let condition = &text[start..close];
        let test_only = condition.split(|c: char| !is_identifier_char(c)).any(|word| word == "test")
            || condition.contains("\"fred-pool\"");
        if !test_only || condition.contains("not(") {
            continue;
        }
        // Further attributes, then the item.
        let mut item = close;
        loop {
            let rest = &code[item..];
            let trimmed = rest.trim_start();
            item += rest.len() - trimmed.len();
            if trimmed.starts_with("#[") {
                item += trimmed.find(']').map_or(trimmed.len(), |close| close + 1);
            } else {
                break;
            }
        }
        spans.push((start, item_end(code, item)));
    }
    spans
}

/// The names a file imports from fred (the alias where there is one) and the type aliases it
/// defines over them; and where it imports from fred with a glob.
fn fred_names(code: &str) -> (BTreeSet<String>, Vec<usize>) {
    let mut names = BTreeSet::new();
    let mut globs = Vec::new();
    for offset in keyword_offsets(code, "use") {
        let statement = &code[offset..item_end(code, offset)];
        let path = statement["use".len()..].trim_start().trim_start_matches("::");
        if !path.starts_with("fred::") {
            continue;
        }
        if path.contains('*') {
            globs.push(offset);
        }
        let path = path.trim_end_matches(';');
        for piece in path.split(['{', '}', ',']) {
            let piece = piece.trim();
            let name = match piece.split_once(" as ") {
                Some((_, alias)) => alias.trim(),
                None => piece.rsplit("::").next().unwrap_or_default().trim(),
            };
            if is_identifier(name) && name != "self" {
                names.insert(name.to_owned());
            }
        }
    }
    for offset in keyword_offsets(code, "type") {
        let definition = &code[offset..item_end(code, offset)];
        let Some((name, value)) = definition["type".len()..].split_once('=') else { continue };
        let name = name.split('<').next().unwrap_or_default().trim();
        if is_identifier(name) && named_fred_type(value, &names).is_some() {
            names.insert(name.to_owned());
        }
    }
    (names, globs)
}

/// `fred::…` or one of `names` as a whole word in `text`: the name found.
fn named_fred_type(text: &str, names: &BTreeSet<String>) -> Option<String> {
    if let Some(offset) = keyword_path_offset(text, "fred::") {
        let path: String = text[offset..].chars().take_while(|c| is_identifier_char(*c) || *c == ':').collect();
        return Some(path);
    }
    text.split(|c: char| !is_identifier_char(c)).find(|word| names.contains(*word)).map(str::to_owned)
}

fn keyword_path_offset(text: &str, path: &str) -> Option<usize> {
    text.match_indices(path)
        .map(|(offset, _)| offset)
        .find(|offset| !text[..*offset].chars().next_back().is_some_and(|c| is_identifier_char(c) || c == ':'))
}

/// Names of the structs, enums and traits declared `pub` outside test-only code.
fn public_type_names(code: &str, text: &str) -> Vec<String> {
    let gated = gated_items(code, text);
    keyword_offsets(code, "pub")
        .filter(|offset| !gated.iter().any(|(start, end)| (*start..*end).contains(offset)))
        .filter_map(|offset| {
            let mut words =
                code[offset + "pub".len()..].split(|c: char| !is_identifier_char(c)).filter(|w| !w.is_empty());
            match words.next()? {
                "struct" | "enum" | "trait" => words.next().map(str::to_owned),
                _ => None,
            }
        })
        .collect()
}

/// Each public signature outside test-only code, with its offset: what of a `pub` item a user
/// sees, and the headers of trait impls for a type in `public_types`.
fn public_signatures(code: &str, text: &str, public_types: &BTreeSet<String>) -> Vec<(usize, String)> {
    let gated = gated_items(code, text);
    let outside_gated = |offset: &usize| !gated.iter().any(|(start, end)| (*start..*end).contains(offset));
    let mut signatures = Vec::new();
    for offset in keyword_offsets(code, "pub").filter(outside_gated) {
        let rest = &code[offset + "pub".len()..];
        let kind = rest.split(|c: char| !is_identifier_char(c)).find(|word| !word.is_empty()).unwrap_or_default();
        let end = match kind {
            // The whole body: variants and trait methods are public.
            "enum" | "trait" => item_end(code, offset),
            // The body is scanned on its own (its `pub` items); a module's name is no type.
            "mod" | "impl" => continue,
            "fn" | "use" | "type" | "const" | "static" | "async" | "unsafe" | "extern" => signature_end(code, offset),
            // The name and generics: the fields are scanned on their own (their `pub`).
            "struct" | "union" => struct_header_end(code, offset),
            // A field: up to the comma (or the closing brace) outside brackets.
            _ => field_end(code, offset),
        };
        signatures.push((offset, code[offset..end].to_owned()));
    }
    for offset in keyword_offsets(code, "impl").filter(outside_gated) {
        let header = &code[offset..signature_end(code, offset)];
        let Some((_, implementor)) = header.split_once(" for ") else { continue };
        let implementor = implementor.split(|c: char| !is_identifier_char(c)).find(|word| !word.is_empty());
        if implementor.is_some_and(|name| public_types.contains(name)) {
            signatures.push((offset, header.to_owned()));
        }
    }
    signatures
}

/// Up to (not including) the first `{` or `;` outside parentheses and brackets.
fn signature_end(code: &str, start: usize) -> usize {
    let mut depth = 0usize;
    for (index, byte) in code.bytes().enumerate().skip(start) {
        match byte {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b'{' | b';' if depth == 0 => return index,
            _ => {}
        }
    }
    code.len()
}

/// Up to the first `{`, `(` or `;`.
fn struct_header_end(code: &str, start: usize) -> usize {
    code[start..].find(['{', '(', ';']).map_or(code.len(), |end| start + end)
}

fn field_end(code: &str, start: usize) -> usize {
    let mut depth = 0usize;
    for (index, byte) in code.bytes().enumerate().skip(start) {
        match byte {
            b'(' | b'[' | b'<' => depth += 1,
            b')' | b']' | b'>' => depth = depth.saturating_sub(1),
            b',' | b'}' | b';' if depth == 0 => return index,
            _ => {}
        }
    }
    code.len()
}

#[cfg(test)]
mod tests;
