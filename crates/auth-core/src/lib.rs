//! Tokens: format and validation ([`Token`]), and [`Authenticator`], which issues, verifies,
//! lists and revokes them over the key space of `dao`.
//!
//! Depends on `dao` and `cache-toolkit` only; knows nothing about HTTP or configuration files.

mod authenticator;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
mod token;

pub use authenticator::{
    AuthError, AuthPolicy, Authenticator, ISSUED_AT_FIELD, InvalidReason, IssueOptions, IssuedToken, LIFETIME_FIELD,
    Principal, Session, Verification,
};
pub use dao::{CorruptMetadata, MetadataObject, MetadataValue, UserId, UserIdError};
pub use token::{SessionId, Token, TokenFormat, TokenFormatError};
