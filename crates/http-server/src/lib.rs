//! The `tessera` HTTP server: [`Application`] (build, port, run until stopped), the lifecycle
//! manager that owns the cache backend, the routes, and telemetry set-up for the binary.
//!
//! Top of the layer table: it may depend on every other Tessera crate; none depends on it.
//! It is the only crate whose types go on the wire.

mod lifecycle;
mod response;
mod routes;
mod shutdown;
mod startup;
pub mod telemetry;

pub use lifecycle::Lifecycle;
pub use shutdown::shutdown_signal;
pub use startup::Application;
