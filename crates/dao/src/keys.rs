//! The key builders: the persisted contract shared with the Python system. Each has a test
//! pinning its exact text.

use crate::UserId;

const TOKEN: &str = "token:";
pub(crate) const TOKEN_LIST: &str = "token_list:";

/// `token:{token}`
pub(crate) fn token(token: &str) -> String {
    format!("{TOKEN}{token}")
}

/// `token_list:{user_id}` — an integer id as its decimal digits, a string id as itself (what
/// Python's f-string produces for either).
pub(crate) fn token_list(user_id: &UserId) -> String {
    format!("{TOKEN_LIST}{}", user_id.key_part())
}
