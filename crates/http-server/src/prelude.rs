//! One import for a Rust service that uses Tessera: `use http_server::prelude::*;` brings
//! [`Tessera`] (the one constructor), the auth layer and what it hands to handlers, the
//! authenticator's types and the cache's, so nothing needs naming from the crates below.

pub use auth_core::{
    AuthError, AuthPolicy, Authenticator, IssuedToken, MetadataObject, MetadataValue, Principal, SessionId, Token,
    UserId, Verification,
};
pub use cache_toolkit::{CacheClient, CacheError, CacheErrorKind, LoadPolicy, LoadPolicyError, Loaded};
pub use config::{Secret, Settings};
/// The body and response types an [`AuthLayer::on_rejection`] answer is made of.
pub use hyper::{Response, StatusCode, body::Bytes};

pub use crate::{
    embed::{Tessera, TesseraError},
    middleware::{AuthLayer, InternalCaller, Rejection, principal},
};
