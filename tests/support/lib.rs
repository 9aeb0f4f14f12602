//! Test support for the workspace's one integration-test binary: the Tessera side of it (the
//! server on port 0, the `tessera` binary, the test backends) on top of `dev-support`, which
//! holds the private Redis servers, the processes, the ports and the HTTP client it re-exports.
//!
//! With no Redis (tests run without `cargo xtask test`), helpers fail with the way to get one.

#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test support: a panic is a test failure with its message"
)]

mod backend;
mod http;

pub use backend::{Backend, fresh_home, tessera_command};
pub use dev_support::{
    CertificateFiles, ClientCertificates, LaggingLink, PrivateCluster, PrivateRedis, RefusingRelay, RespReply,
    ServerProcess, ServerTls, TestCertificates, Topology, env::required as required_env, free_port,
};
pub use http::{HttpResponse, get, get_on, raw_status, send};

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
