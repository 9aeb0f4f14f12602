//! [`Token`]: an opaque bearer token, validated before any I/O, and [`SessionId`], the name a
//! session is listed under without revealing its token.
//!
//! Two formats are accepted. v1 is the Python system's: 16–128 base64url characters, nothing
//! to check but the alphabet. v2 (issued when `TokenFormat::V2` is chosen) is recognisable and
//! self-checking, in the spirit of GitHub's tokens: `tsr_` followed by the base64url encoding
//! (no padding) of 36 bytes — 32 random bytes, then the IEEE CRC32 of those 32 bytes, 4 bytes
//! big-endian — 52 characters in all, matching `tsr_[A-Za-z0-9_-]{48}`. A token that starts
//! with `tsr_` is checked as v2 before any I/O (a typo or a forged token never reaches the
//! store), except one of exactly 43 characters: that is the Python format, which may start
//! with `tsr_` by chance (one in 16.7 million).
//!
//! New tokens, in either format, carry 32 bytes from the operating system's CSPRNG; a v1 token
//! is their 43 base64url characters, like Python's `secrets.token_urlsafe(32)`. A token's
//! `Debug` shows only its session id. The [`SessionId`] is the first 128 bits of the token's
//! SHA-256, in hex, which can also be read off a hashed list entry: a session keeps its id
//! whether its token is stored plain or hashed.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A well-formed bearer token: base64url characters (`A-Z a-z 0-9 - _`), 16 to 128 of them.
/// The Python system's `secrets.token_urlsafe(32)` (43 characters) fits; so do Tessera's own.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

/// Which format new tokens are issued in. Both are always accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenFormat {
    /// 43 base64url characters, like the Python system's `secrets.token_urlsafe(32)`.
    #[default]
    V1,
    /// `tsr_` + base64url(32 random bytes ‖ CRC32 of them, big-endian): 52 characters.
    V2,
}

/// Why a presented token was refused before it reached the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("the token is shorter than {min} characters")]
    TooShort { min: usize },
    #[error("the token is longer than {max} characters")]
    TooLong { max: usize },
    #[error("the token has a character outside the base64url alphabet")]
    BadCharacter,
    #[error("the token has the `tsr_` prefix but not the length of a v2 token")]
    BadPrefixedLength,
    #[error("the token's checksum does not match")]
    BadChecksum,
}

impl Token {
    pub const MIN_LEN: usize = 16;
    pub const MAX_LEN: usize = 128;
    /// Bytes of randomness in a new token.
    pub const RANDOM_BYTES: usize = 32;
    /// The prefix of a v2 token (what a secret scanner looks for).
    pub const V2_PREFIX: &str = "tsr_";
    /// Length of a v2 token: the prefix and base64url of 36 bytes.
    pub const V2_LEN: usize = 4 + 48;
    /// Length of a v1 token (and of the Python system's).
    const V1_LEN: usize = 43;

    /// Checks the shape (and, for a v2 token, the checksum) without any I/O.
    pub fn parse(text: &str) -> Result<Self, TokenFormatError> {
        match text.strip_prefix(Self::V2_PREFIX) {
            Some(body) if text.len() != Self::V1_LEN => return Self::parse_v2(text, body),
            _ => {}
        }
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

    fn parse_v2(text: &str, body: &str) -> Result<Self, TokenFormatError> {
        if text.len() != Self::V2_LEN {
            return Err(TokenFormatError::BadPrefixedLength);
        }
        let mut bytes = [0_u8; Self::RANDOM_BYTES + 4];
        match URL_SAFE_NO_PAD.decode_slice(body, &mut bytes) {
            Ok(decoded) if decoded == bytes.len() => {}
            // A character outside the base64url alphabet.
            _ => return Err(TokenFormatError::BadCharacter),
        }
        let (random, checksum) = bytes.split_at(Self::RANDOM_BYTES);
        if crc32(random).to_be_bytes() != checksum {
            return Err(TokenFormatError::BadChecksum);
        }
        Ok(Self(text.to_owned()))
    }

    /// 256 bits from the operating system's CSPRNG, base64url without padding (43 characters),
    /// the same shape as Python's `secrets.token_urlsafe(32)`.
    pub fn generate() -> Self {
        Self::generate_in(TokenFormat::V1)
    }

    /// A new token in `format`; 256 bits from the operating system's CSPRNG either way.
    pub fn generate_in(format: TokenFormat) -> Self {
        let mut bytes = [0_u8; Self::RANDOM_BYTES + 4];
        let (random, checksum) = bytes.split_at_mut(Self::RANDOM_BYTES);
        rand::rngs::OsRng.fill_bytes(random);
        match format {
            TokenFormat::V1 => Self(URL_SAFE_NO_PAD.encode(random)),
            TokenFormat::V2 => {
                checksum.copy_from_slice(&crc32(random).to_be_bytes());
                Self(format!("{}{}", Self::V2_PREFIX, URL_SAFE_NO_PAD.encode(bytes)))
            }
        }
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

    /// The session id of the token whose SHA-256 is `digest_hex` (what hashed storage keeps):
    /// its first 32 characters, so a session keeps its id whether stored plain or hashed.
    /// `None` unless `digest_hex` is 64 lowercase hex characters.
    pub fn from_token_digest_hex(digest_hex: &str) -> Option<Self> {
        let is_digest = digest_hex.len() == 2 * Self::LEN
            && digest_hex.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
        is_digest.then(|| Self(digest_hex[..Self::LEN].to_owned()))
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

/// The IEEE CRC32 (zlib, PNG, Ethernet: reflected polynomial 0xEDB88320, initial value and
/// final XOR all ones), from `crc32fast`; `tests::crc32_is_the_ieee_one` pins the standard
/// check value, and `KNOWN_V2` a whole token.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}
