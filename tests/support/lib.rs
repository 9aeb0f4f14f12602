//! Test support for the workspace's one integration-test binary: where the xtask-started Redis
//! topologies are, private `redis-server` processes a test may stop and restart, the server on
//! port 0, and a tiny HTTP client.
//!
//! With no Redis (tests run without `cargo xtask test`), helpers fail with the way to get one.

#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test support: a panic is a test failure with its message"
)]

mod cluster;
mod http;
mod lagging_link;
mod process;
mod redis;
mod resp;
mod tls;

pub use cluster::PrivateCluster;
pub use http::{HttpResponse, get, get_on, raw_status, send};
pub use lagging_link::LaggingLink;
pub use process::{ServerProcess, tessera_command};
pub use redis::{
    Backend, ClientCertificates, PrivateRedis, ServerTls, Topology, free_port, required_env, test_redis_url,
};
pub use resp::RespReply;
pub use tls::{CertificateFiles, TestCertificates};

use std::net::SocketAddr;

use config::{AppEnv, Settings};
use http_server::Application;
use tokio::sync::oneshot;

/// A server running in this process on a free port, stopped when dropped (or by [`TestApp::stop`]).
#[derive(Debug)]
pub struct TestApp {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// Triggers the shutdown sequence and waits for it to finish (store closed).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts the real server on `127.0.0.1:0` with these environment-style settings on top.
pub async fn spawn_app(pairs: &[(&str, &str)]) -> TestApp {
    spawn_app_with(pairs, |_| {}).await
}

/// [`spawn_app`], with the loaded settings changed by `change` first: for settings validation
/// would refuse, to show what the server does if one got through anyway.
pub async fn spawn_app_with(pairs: &[(&str, &str)], change: impl FnOnce(&mut Settings)) -> TestApp {
    let mut all = vec![("TESSERA_LISTEN", "127.0.0.1:0")];
    all.extend_from_slice(pairs);
    let mut settings = Settings::from_env_pairs(AppEnv::Test, &all).unwrap();
    change(&mut settings);
    let application = Application::build(settings).await.unwrap();
    let address = application.local_addr();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(application.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp { address, stop: Some(stop), task: Some(task) }
}
