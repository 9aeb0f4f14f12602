//! The `tessera` HTTP server: [`Application`] (build, port, run until stopped), the lifecycle
//! manager that owns the cache backend, the routes, telemetry set-up, and the command line
//! ([`cli`]: serve, check the settings, issue and revoke tokens). Another Rust service embeds
//! Tessera through [`prelude`]: [`Tessera::connect`] and the [`AuthLayer`] it hands out.
//!
//! Top of the layer table: it may depend on every other Tessera crate; none depends on it.
//! It is the only crate whose types go on the wire.

// The auth layer's future nests the whole verification path (authenticator, DAO, toolkit,
// fred); rustc's default query depth of 128 is too shallow to lay it out.
#![recursion_limit = "256"]

pub mod audit;
pub mod cli;
mod connection;
mod connection_table;
mod embed;
mod error;
mod handlers;
mod introspection;
mod lifecycle;
mod metrics;
pub mod middleware;
mod openapi;
pub mod prelude;
#[cfg(test)]
mod properties;
mod response;
mod route;
mod router;
mod shutdown;
mod startup;
mod state;
pub mod telemetry;
mod wire;

pub use embed::{Tessera, TesseraBuilder, TesseraError};
pub use lifecycle::Lifecycle;
pub use middleware::{AuthLayer, AuthService, InternalCaller, Rejection, VerifyOutcome};
pub use shutdown::shutdown_signal;
pub use startup::{Application, StartError};
