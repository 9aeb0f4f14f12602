//! The cache toolkit: [`CacheClient`], the one type every other layer and every library user
//! calls to reach the cache, and [`CacheError`], its one error type.
//!
//! It owns no configuration and builds no connections: `infra` builds the fred pool and hands
//! it over. It must not depend on any other Tessera crate.

mod client;
mod error;

pub use client::CacheClient;
pub use error::{CacheError, CacheErrorKind};
