//! The workspace's one integration-test binary. Every test talks to real Redis started by
//! `cargo xtask test` (or owned by the test itself), and, for the server, to the real server.

#![allow(clippy::unwrap_used, reason = "tests: a panic is a failure with its message")]
#![allow(clippy::print_stderr, reason = "tests report measured recovery times in their output")]

mod auth_api;
mod binary;
mod cli;
mod cluster_failover;
mod cluster_reshard;
mod connection_limits;
mod durable_store;
mod embed;
mod failover;
mod fastapi;
mod forward_auth;
mod get_or_load;
mod infra_lifecycle;
mod near_cache;
mod observability;
mod openapi;
mod redis_tls;
mod revocation;
mod secrets_in_logs;
mod sentinel_failover;
mod server;
mod session_cap;
mod tokens;
