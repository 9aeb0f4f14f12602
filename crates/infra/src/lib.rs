//! Building the cache backend from [`config::Settings`] and owning its lifecycle:
//! [`Backend::start`], [`Backend::health`], [`Backend::reset`], [`Backend::close`].
//!
//! This is the only crate that builds a fred client. It depends on `config` and
//! `cache-toolkit`, never on `dao`, `auth-core` or `http-server`.

mod backend;
mod error;
mod redis;
mod sentinel;
mod tls;

pub use backend::Backend;
pub use error::InfraError;
pub use store::embedded::{DataDirError, Recovered, recover as recover_data_dir};
