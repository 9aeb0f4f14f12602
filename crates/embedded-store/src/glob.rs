//! Redis's glob rules (`stringmatchlen` in util.c) for SCAN-style matching in the embedded
//! store: `*`, `?`, `[abc]`, `[^abc]`, `[a-z]`, and `\` to escape the next character.

/// Whether `text` matches the Redis glob `pattern`.
pub(super) fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    matches_from(&pattern, &text)
}

fn matches_from(mut pattern: &[char], mut text: &[char]) -> bool {
    while let Some(&token) = pattern.first() {
        match token {
            '*' => {
                while pattern.get(1) == Some(&'*') {
                    pattern = &pattern[1..];
                }
                if pattern.len() == 1 {
                    return true;
                }
                return (0..=text.len()).any(|skip| matches_from(&pattern[1..], &text[skip..]));
            }
            '?' => {
                if text.is_empty() {
                    return false;
                }
                text = &text[1..];
                pattern = &pattern[1..];
            }
            '[' => {
                let Some(&candidate) = text.first() else { return false };
                let (matched, rest) = match_class(&pattern[1..], candidate);
                if !matched {
                    return false;
                }
                pattern = rest;
                text = &text[1..];
            }
            '\\' if pattern.len() >= 2 => {
                if text.first() != Some(&pattern[1]) {
                    return false;
                }
                pattern = &pattern[2..];
                text = &text[1..];
            }
            literal => {
                if text.first() != Some(&literal) {
                    return false;
                }
                pattern = &pattern[1..];
                text = &text[1..];
            }
        }
    }
    text.is_empty()
}

/// Matches one character against a `[...]` class whose body starts at `class`; returns whether
/// it matched and the pattern after the closing `]` (an unclosed class runs to the end, as in Redis).
fn match_class(mut class: &[char], candidate: char) -> (bool, &[char]) {
    let negate = class.first() == Some(&'^');
    if negate {
        class = &class[1..];
    }
    let mut matched = false;
    loop {
        match class {
            [] => break,
            [']', rest @ ..] => {
                class = rest;
                break;
            }
            ['\\', escaped, rest @ ..] => {
                matched |= *escaped == candidate;
                class = rest;
            }
            [low, '-', high, rest @ ..] if *high != ']' => {
                let (low, high) = if low <= high { (*low, *high) } else { (*high, *low) };
                matched |= (low..=high).contains(&candidate);
                class = rest;
            }
            [single, rest @ ..] => {
                matched |= *single == candidate;
                class = rest;
            }
        }
    }
    (matched != negate, class)
}

/// Escapes glob characters so that `text` matches only itself (used for key prefixes).
pub fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_glob_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h*llo", "hllo", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hallo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("token:*", "token:abc", true),
            ("token:*", "token_list:1", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("{user}*", "{user}:1", true),
            ("ключ:*", "ключ:значение", true),
            ("[\\]]", "]", true),
            ("abc", "abcd", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_matches(pattern, text), *expected, "{pattern} vs {text}");
        }
    }

    #[test]
    fn escaped_text_matches_only_itself() {
        for text in ["plain", "a*b", "x?[y]\\z", "{tag}"] {
            let escaped = glob_escape(text);
            assert!(glob_matches(&escaped, text), "{text}");
            assert!(!glob_matches(&escaped, &format!("{text}x")), "{text}");
        }
    }
}
