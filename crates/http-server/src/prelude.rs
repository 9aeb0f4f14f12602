//! One import for a Rust service that uses Tessera: `use tessera::prelude::*;` (the facade
//! crate re-exports this module) brings [`Tessera`] (the one constructor, and its builder),
//! the auth layer and what it hands to handlers, the authenticator's types and the cache's, so
//! nothing needs naming from the crates below.

pub use auth_core::{
    AuthError, AuthPolicy, Authenticator, IssueOptions, IssuedToken, MetadataObject, MetadataValue, Principal,
    SessionId, Token, UserId, Verification,
};
pub use cache_toolkit::{CacheClient, CacheError, CacheErrorKind, LoadPolicy, LoadPolicyError, Loaded};
pub use config::{Secret, Settings};
pub use dao::TokenStorage;
/// The body and response types an [`AuthLayer::on_rejection`] answer is made of.
pub use hyper::{Response, StatusCode, body::Bytes};

pub use crate::{
    embed::{Tessera, TesseraBuilder, TesseraError},
    middleware::{AuthLayer, InternalCaller, Rejection, principal},
};
