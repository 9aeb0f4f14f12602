//! How tokens are kept at rest ([`TokenStorage`]) and what a user's token list holds
//! ([`StoredEntry`]).
//!
//! A token is stored under one *entry*: the token itself (plain, the Python system's form) or
//! `sha256:{hex of SHA-256 of the token}` (hashed). Its metadata key is `token:{entry}` and its
//! list entry is the entry, in both forms, so every operation that starts from a list entry
//! (prune, cap, revoke all) works on either form without knowing which. The `sha256:` tag
//! keeps the two forms apart: no well-formed token contains `:`, so no plain key or entry can
//! equal a hashed one, and presenting a stored digest as a token finds nothing. Only the
//! operations that start from a presented token (issue, verify, logout, TTL) ask the mode which
//! forms to use.

use std::fmt;

use sha2::{Digest, Sha256};

/// Where tokens are looked up and how new ones are written (`TESSERA_TOKEN_STORAGE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenStorage {
    /// `token:{token}` and the token in the list: the Python system's form, which it alone reads.
    #[default]
    Plain,
    /// `token:sha256:{hex}` and `sha256:{hex}` in the list: no key, value or list entry holds
    /// a token. Plain tokens are not read.
    Hashed,
    /// Writes the hashed form; reads the hashed form, then the plain one, and moves a plain
    /// token that verifies to the hashed form.
    Migrate,
}

/// One entry of a user's token list, exactly as stored: a token, or `sha256:{hex}`. Its
/// `Debug` never shows a token.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoredEntry(String);

/// The tag in front of a hashed entry.
const HASHED_TAG: &str = "sha256:";
const DIGEST_HEX_LEN: usize = 64;

impl StoredEntry {
    /// The plain form of `token`.
    pub(crate) fn plain(token: &str) -> Self {
        Self(token.to_owned())
    }

    /// The hashed form of `token`: `sha256:` and the 64 lowercase hex digits of its SHA-256.
    pub(crate) fn hashed(token: &str) -> Self {
        let digest = Sha256::digest(token.as_bytes());
        let mut text = String::with_capacity(HASHED_TAG.len() + DIGEST_HEX_LEN);
        text.push_str(HASHED_TAG);
        for byte in digest {
            text.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            text.push(char::from(b"0123456789abcdef"[usize::from(byte & 0x0f)]));
        }
        Self(text)
    }

    pub(crate) fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The stored text (a credential when plain: never log it).
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The token's SHA-256 in lowercase hex, when this is a hashed entry.
    pub fn hashed_digest(&self) -> Option<&str> {
        let digest = self.0.strip_prefix(HASHED_TAG)?;
        (digest.len() == DIGEST_HEX_LEN && digest.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')))
            .then_some(digest)
    }

    /// The token itself, when this is not a hashed entry (a credential: never log it).
    pub fn plain_token(&self) -> Option<&str> {
        self.hashed_digest().is_none().then_some(self.0.as_str())
    }
}

impl fmt::Debug for StoredEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.hashed_digest().is_some() { "StoredEntry(hashed)" } else { "StoredEntry(plain)" })
    }
}

impl TokenStorage {
    /// The entries a presented token is looked up under, in order.
    pub(crate) fn lookup_entries(self, token: &str) -> Vec<StoredEntry> {
        match self {
            Self::Plain => vec![StoredEntry::plain(token)],
            Self::Hashed => vec![StoredEntry::hashed(token)],
            Self::Migrate => vec![StoredEntry::hashed(token), StoredEntry::plain(token)],
        }
    }

    /// The entry a new token is written under.
    pub(crate) fn issue_entry(self, token: &str) -> StoredEntry {
        match self {
            Self::Plain => StoredEntry::plain(token),
            Self::Hashed | Self::Migrate => StoredEntry::hashed(token),
        }
    }
}
