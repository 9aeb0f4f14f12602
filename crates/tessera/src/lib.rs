//! Tessera for Rust services: opaque bearer tokens and a cache on Redis (standalone, Sentinel,
//! Cluster) or in process, behind one dependency and one import.
//!
//! ```
//! use tessera::prelude::*;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // `Tessera::connect("redis://127.0.0.1:6379/0")`, or `Tessera::builder(url)…connect()`.
//! let tessera = Tessera::embedded().await?;
//! let issued = tessera.authenticator().issue(UserId::Integer(42), IssueOptions::default()).await?;
//! assert!(matches!(tessera.authenticator().verify(issued.token.expose()).await?, Verification::Valid(_)));
//! let layer = tessera.auth_layer().public_paths(["/healthz"]); // a tower layer for your routes
//! # let _ = layer;
//! tessera.close().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! [`Tessera`] is the handle: [`Tessera::auth_layer`] for the routes, [`Tessera::authenticator`]
//! to issue, verify and revoke, [`Tessera::cache`] for the cache toolkit on the same store.
//! `crates/tessera/examples/axum.rs` is a whole service. The `tessera` server (forward-auth for nginx, Caddy
//! and Traefik) is the `http-server` package's binary; this crate is its library face.

pub use http_server::prelude;
pub use http_server::prelude::*;
pub use http_server::{AuthService, Lifecycle, VerifyOutcome, shutdown_signal};
