//! [`Token`]: an opaque bearer token, validated before any I/O, and [`SessionId`], the name a
//! session is listed under without revealing its token.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A well-formed bearer token: base64url characters (`A-Z a-z 0-9 - _`), 16 to 128 of them.
/// The Python system's `secrets.token_urlsafe(32)` (43 characters) fits; so do Tessera's own.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

/// Why a presented token was refused before it reached the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("the token is shorter than {min} characters")]
    TooShort { min: usize },
    #[error("the token is longer than {max} characters")]
    TooLong { max: usize },
    #[error("the token has a character outside the base64url alphabet")]
    BadCharacter,
}

impl Token {
    pub const MIN_LEN: usize = 16;
    pub const MAX_LEN: usize = 128;
    /// Bytes of randomness in a new token.
    pub const RANDOM_BYTES: usize = 32;

    pub fn parse(text: &str) -> Result<Self, TokenFormatError> {
        if text.len() < Self::MIN_LEN {
            return Err(TokenFormatError::TooShort { min: Self::MIN_LEN });
        }
        if text.len() > Self::MAX_LEN {
            return Err(TokenFormatError::TooLong { max: Self::MAX_LEN });
        }
        if !text.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_') {
            return Err(TokenFormatError::BadCharacter);
        }
        Ok(Self(text.to_owned()))
    }

    /// 256 bits from the operating system's CSPRNG, base64url without padding (43 characters),
    /// the same shape as Python's `secrets.token_urlsafe(32)`.
    pub fn generate() -> Self {
        let mut bytes = [0_u8; Self::RANDOM_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The token text. It is a credential: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn session_id(&self) -> SessionId {
        SessionId::of(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(session {})", self.session_id())
    }
}

/// A session's public name: the first 128 bits of SHA-256 of its token, in hex. Lists and
/// revokes a session without ever showing the token.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct SessionId(String);

impl SessionId {
    pub const LEN: usize = 32;

    fn of(token: &str) -> Self {
        let digest = Sha256::digest(token.as_bytes());
        let mut hex = String::with_capacity(Self::LEN);
        for byte in &digest[..Self::LEN / 2] {
            hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0x0f)]));
        }
        Self(hex)
    }

    /// A session id from a URL: 32 lowercase hex characters, or `None`.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == Self::LEN && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
