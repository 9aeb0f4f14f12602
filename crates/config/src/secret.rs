//! `Secret`: a string that never shows itself in `Debug`, `Display` or logs.

use std::fmt;

/// A secret setting (a password, an internal API key, a URL that may carry a password).
///
/// Its `Debug` prints `Secret([redacted])`; the only way to the text is [`Secret::expose`],
/// so every place that reads a secret is greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret text. Call it only where the secret is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}
