//! The key builders: the persisted contract shared with the Python system. Each has a test
//! pinning its exact text. A user id is written as Python's f-string writes it: an integer as
//! its decimal digits, a string as itself.

use crate::UserId;

const TOKEN: &str = "token:";
pub(crate) const TOKEN_LIST: &str = "token_list:";

/// `token:{entry}`: `token:{token}` for a plain entry, `token:sha256:{hex}` for a hashed one
/// (see `storage.rs`).
pub(crate) fn token(entry: &str) -> String {
    // Sized once: `format!` grows its buffer (two allocations per key, on every verification).
    let mut key = String::with_capacity(TOKEN.len() + entry.len());
    key.push_str(TOKEN);
    key.push_str(entry);
    key
}

/// `token_list:{user_id}` — an integer id as its decimal digits, a string id as itself (what
/// Python's f-string produces for either).
pub(crate) fn token_list(user_id: &UserId) -> String {
    format!("{TOKEN_LIST}{}", user_id.key_part())
}
