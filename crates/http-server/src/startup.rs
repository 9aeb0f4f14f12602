//! [`Application`]: bind, start the store, serve until told to stop, then shut down in one
//! documented order — stop accepting, drain in-flight requests within the deadline, close the
//! store last.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::net::TcpListener;

use config::Settings;

use crate::{lifecycle::Lifecycle, routes::AppState};

/// A client that opens a connection and sends nothing is dropped after this long.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off after `accept` fails (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// A bound, started server that has not begun serving yet.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    lifecycle: Lifecycle,
    state: AppState,
    shutdown_timeout: Duration,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] infra::InfraError),
}

impl Application {
    /// Binds the listener first (a taken port fails fast), then starts the store.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartError::Bind { address: settings.listen, source })?;
        let local_addr =
            listener.local_addr().map_err(|source| StartError::Bind { address: settings.listen, source })?;
        let lifecycle = Lifecycle::start(&settings).await?;
        let state = AppState { cache: lifecycle.cache().clone(), store: Arc::from(lifecycle.describe_store()) };
        tracing::info!(
            listen = %local_addr,
            store = %state.store,
            app_env = settings.app_env.as_str(),
            "tessera listening"
        );
        Ok(Self { listener, local_addr, lifecycle, state, shutdown_timeout: settings.shutdown_timeout })
    }

    /// The bound port (useful with `TESSERA_LISTEN=127.0.0.1:0`).
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then drains and closes. Returns once the store is closed.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        let Self { listener, lifecycle, state, shutdown_timeout, .. } = self;
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        let state = state.clone();
                        let service = service_fn(move |request| {
                            let state = state.clone();
                            async move { Ok::<_, std::convert::Infallible>(crate::routes::route(state, request).await) }
                        });
                        let connection = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEADER_READ_TIMEOUT)
                            .serve_connection(TokioIo::new(stream), service);
                        let connection = graceful.watch(connection);
                        tokio::spawn(async move {
                            if let Err(error) = connection.await {
                                tracing::debug!(%error, "connection ended with an error");
                            }
                        });
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let in_flight = graceful.count();
        tracing::info!(
            in_flight,
            deadline_ms = shutdown_timeout.as_millis() as u64,
            "stopped accepting; draining connections"
        );
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections drained"),
            () = tokio::time::sleep(shutdown_timeout) => tracing::warn!("drain deadline reached; cutting the remaining connections"),
        }
        lifecycle.stop().await;
        tracing::info!("tessera stopped");
    }
}
