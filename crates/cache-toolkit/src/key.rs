//! [`KeyPrefix`]: the optional namespace put in front of every key, in one place.

use std::{borrow::Cow, fmt};

/// A validated key prefix such as `myapp:`. Applied by [`crate::CacheClient`] to every key and
/// pattern; callers always pass unprefixed keys and get unprefixed keys back.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct KeyPrefix(String);

/// Why a prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyPrefixError {
    #[error("a key prefix is at most {max} bytes, got {len}")]
    TooLong { max: usize, len: usize },
    #[error("a key prefix may not contain whitespace or control characters")]
    BadCharacter,
}

impl KeyPrefix {
    pub const MAX_LEN: usize = 64;

    /// An empty text means no prefix (the Python system's layout).
    pub fn parse(text: &str) -> Result<Self, KeyPrefixError> {
        if text.len() > Self::MAX_LEN {
            return Err(KeyPrefixError::TooLong { max: Self::MAX_LEN, len: text.len() });
        }
        if text.chars().any(|character| character.is_whitespace() || character.is_control()) {
            return Err(KeyPrefixError::BadCharacter);
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn apply<'a>(&self, key: &'a str) -> Cow<'a, str> {
        if self.0.is_empty() { Cow::Borrowed(key) } else { Cow::Owned(format!("{}{key}", self.0)) }
    }
}

impl fmt::Debug for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPrefix({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rules() {
        assert_eq!(
            KeyPrefix::parse("app:").map(|prefix| prefix.apply("token:x").into_owned()),
            Ok("app:token:x".into())
        );
        assert_eq!(KeyPrefix::parse("").map(|prefix| prefix.apply("k").into_owned()), Ok("k".into()));
        assert_eq!(KeyPrefix::parse("a b"), Err(KeyPrefixError::BadCharacter));
        assert!(matches!(KeyPrefix::parse(&"x".repeat(65)), Err(KeyPrefixError::TooLong { .. })));
    }
}
