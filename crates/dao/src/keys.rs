//! The key builders: the persisted contract shared with the Python system. Each has a test
//! pinning its exact text.

use crate::UserId;

/// `token:{token}`
pub(crate) fn token(token: &str) -> String {
    format!("token:{token}")
}

/// `token_list:{user_id}` — an integer id as its decimal digits, a string id as itself (what
/// Python's f-string produces for either).
pub(crate) fn token_list(user_id: &UserId) -> String {
    format!("token_list:{}", user_id.key_part())
}
