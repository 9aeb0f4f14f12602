//! What the tests and xtask share to run things, with no Tessera dependency: private Redis
//! servers and clusters ([`PrivateRedis`], [`PrivateCluster`], with TLS from
//! [`TestCertificates`]), a RESP client to read them as they are ([`RespReply`]), a slow
//! replication link ([`LaggingLink`]), a way in that refuses connections until told
//! not to ([`RefusingRelay`]), child servers stopped on drop ([`ServerProcess`]), free
//! loopback ports, signals, the one HTTP client ([`http`]), and the environment `cargo xtask
//! test` hands the tests ([`mod@env`]).
//!
//! Helpers that drive a test panic with the reason (a panic is the test's failure); those the
//! tools use return errors.

#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test support: a panic is a test failure with its message"
)]

mod cluster;
pub mod env;
pub mod http;
mod lagging_link;
pub mod ports;
mod process;
mod redis;
mod refusing_relay;
mod resp;
pub mod signal;
mod tls;

pub use cluster::PrivateCluster;
pub use env::Topology;
pub use lagging_link::LaggingLink;
pub use ports::free_port;
pub use process::ServerProcess;
pub use redis::{ClientCertificates, PrivateRedis, ServerTls, answers_ping};
pub use refusing_relay::RefusingRelay;
pub use resp::{RespReply, query, try_query};
pub use tls::{CertificateFiles, TestCertificates};
