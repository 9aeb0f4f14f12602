//! [`RedactedKey`]: the one form in which a key appears in an error text, a log line or a trace.
//!
//! A key can be a secret: `token:{token}` *is* the bearer token, and `token:sha256:{digest}`
//! is enough to recognise one. This crate cannot tell which keys are secret, so it shows no key
//! whole: only its family (the leading `word:` segments, never the last segment) and a short
//! fingerprint (the first 32 bits of the key's SHA-256), enough to tell two keys apart in a log
//! and to match a log line with a key an operator already holds, never enough to recover a
//! random token. Every [`crate::CacheError`] and every key a log line of this crate names goes
//! through [`RedactedKey::new`]; there is no other way to format a key.

use std::fmt;

use sha2::{Digest, Sha256};

/// A key as logs and errors show it: `token:…#1f2e3d4c`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RedactedKey {
    family: String,
    fingerprint: u32,
}

impl RedactedKey {
    /// Leading segments shown at most, and the longest segment shown: a family is a short
    /// word such as `token` or `token_list`, not data.
    const MAX_FAMILY_SEGMENTS: usize = 3;
    const MAX_SEGMENT_LEN: usize = 16;

    /// The redacted form of `key` (as stored, key prefix included).
    pub fn new(key: &str) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let fingerprint = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        Self { family: family_of(key).to_owned(), fingerprint }
    }

    /// The leading segments shown, each with its `:` (empty when the key has none).
    pub fn family(&self) -> &str {
        &self.family
    }

    /// The first 32 bits of the key's SHA-256.
    pub fn fingerprint(&self) -> u32 {
        self.fingerprint
    }
}

impl fmt::Display for RedactedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…#{:08x}", self.family, self.fingerprint)
    }
}

/// The leading `word:` segments of `key`: at most [`RedactedKey::MAX_FAMILY_SEGMENTS`], each
/// of 1 to [`RedactedKey::MAX_SEGMENT_LEN`] ASCII letters, `_` or `-`, and never the text after
/// the last `:` (a token has no `:`, so it is always that last segment; a digest has digits).
fn family_of(key: &str) -> &str {
    let mut end = 0;
    for (index, segment) in key.split(':').enumerate() {
        let is_last = end + segment.len() >= key.len();
        let is_word = (1..=RedactedKey::MAX_SEGMENT_LEN).contains(&segment.len())
            && segment.bytes().all(|byte| byte.is_ascii_alphabetic() || byte == b'_' || byte == b'-');
        if is_last || !is_word || index == RedactedKey::MAX_FAMILY_SEGMENTS {
            break;
        }
        end += segment.len() + 1;
    }
    &key[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_show_leading_words_and_never_the_last_segment() {
        let cases = [
            ("token:ULGe4sQx-Jf_abc", "token:", "a plain token key shows only its family"),
            ("token:sha256:0f1e2d3c", "token:", "a digest segment has digits: not a family word"),
            ("token_list:42", "token_list:", "the user id is the last segment"),
            ("tessera:token:ULGe4sQx", "tessera:token:", "a key prefix is a family word"),
            ("bloom:{fine}", "bloom:", "a hash tag is not a word"),
            ("a:b:c:d:e", "a:b:c:", "at most three segments"),
            ("ULGe4sQx", "", "no `:` at all: nothing but the fingerprint"),
            ("token:", "token:", "an empty last segment"),
            ("", "", "the empty key"),
            ("averyveryverylongword:x", "", "a segment longer than a family word"),
            ("tok en:x", "", "a space is not in a family word"),
        ];
        for (key, family, why) in cases {
            assert_eq!(RedactedKey::new(key).family(), family, "{why}: {key}");
        }
    }

    #[test]
    fn display_is_family_and_fingerprint_only() {
        let token = "ULGe4sQxJfabcdefghijklmnopqrstuvwxyz0123456";
        let shown = RedactedKey::new(&format!("token:{token}")).to_string();
        assert!(shown.starts_with("token:…#"), "{shown}");
        assert_eq!(shown.chars().count(), "token:…#".chars().count() + 8, "{shown}");
        assert!(!shown.contains(&token[..4]), "no part of the token: {shown}");
        // SHA-256("token:abc") starts with these 32 bits; a pinned value keeps log lines of
        // different versions comparable.
        let pinned = RedactedKey::new("token:abc");
        assert_eq!(pinned.fingerprint(), u32::from_be_bytes(Sha256::digest(b"token:abc")[..4].try_into().unwrap()));
        assert_ne!(RedactedKey::new("token:abd").fingerprint(), pinned.fingerprint(), "keys are told apart");
    }

    #[test]
    fn a_huge_key_gives_a_short_form() {
        let key = "x".repeat(1 << 20);
        assert!(RedactedKey::new(&key).to_string().len() < 32);
    }
}
