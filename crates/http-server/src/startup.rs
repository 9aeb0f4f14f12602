//! [`Application`]: bind, start the store, serve until told to stop, then shut down in one
//! documented order — stop accepting, drain in-flight requests within the deadline, close the
//! store last.
//!
//! Each accepted connection is admitted into the per-peer [`ConnectionTable`] and takes a slot
//! under `TESSERA_MAX_CONNECTIONS`. Each request is admitted by the auth layer's rules, asked
//! directly, and answered by the router with the caller they admitted: no tower boxing, no
//! extensions (docs/PERFORMANCE.md#request-path). Shutdown, in order: the signal resolves and the
//! listener is dropped; hyper-util's `GracefulShutdown` drains for up to
//! `TESSERA_SHUTDOWN_TIMEOUT_MS` (idle keep-alive connections close at once, in-flight requests
//! finish); connection tasks still running are then aborted and awaited (a `JoinSet`, so none
//! outlives the deadline); only then does `Lifecycle::stop` close the store.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use hyper::{
    HeaderMap, Request, Response,
    body::Incoming,
    header::{CACHE_CONTROL, HeaderName, HeaderValue, X_CONTENT_TYPE_OPTIONS},
};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
    time::Instant,
};

use config::Settings;

use crate::{
    connection::{self, ConnectionLimits},
    connection_table::{ConnectionTable, Refused, TableEntry},
    handlers::Caller,
    lifecycle::Lifecycle,
    metrics::HttpMetrics,
    middleware::{Admission, AuthLayer, Presented, Rules, VerifyOutcome},
    response::Body,
    route::RouteName,
    router::{Requested, Router},
    state::AppState,
};

/// A `HeaderName` made once: inserting a custom name given as `&str` copies it every time.
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID_LEN: usize = 128;

/// Back-off after `accept` fails (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// At most one warning this often while the connection cap holds new connections back.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);
/// At the connection cap with no idle connection, how often to look again for one that turned
/// idle while waiting for a slot.
const FULL_RECHECK_EVERY: Duration = Duration::from_millis(20);

/// A bound, started server that has not begun serving yet.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    lifecycle: Lifecycle,
    stack: Stack,
    limits: ServerLimits,
    shutdown_timeout: Duration,
    metrics: Arc<HttpMetrics>,
}

/// How many connections, and how each is bounded.
#[derive(Clone, Copy, Debug)]
struct ServerLimits {
    max_connections: usize,
    max_connections_per_ip: usize,
    connection: ConnectionLimits,
}

/// The auth layer's rules and the router: each request is admitted by the rules, then answered
/// by the router with the caller they admitted (no tower boxing, no extensions on the way).
#[derive(Clone, Debug)]
struct Stack {
    rules: Arc<Rules>,
    router: Router,
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
    #[error("invalid setting TESSERA_FORWARD_HEADERS: `{0}` is not a header name")]
    HeaderName(String),
}

impl Application {
    /// Binds the listener first (a taken port fails fast), then starts the store.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartError::Bind { address: settings.listen, source })?;
        let local_addr =
            listener.local_addr().map_err(|source| StartError::Bind { address: settings.listen, source })?;
        let forward_headers = settings
            .http
            .forward_headers
            .iter()
            .map(|(field, header)| {
                HeaderName::try_from(header.as_str())
                    .map(|name| (field.clone(), name))
                    .map_err(|_| StartError::HeaderName(header.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let lifecycle = Lifecycle::start(&settings).await?;
        let auth = lifecycle.authenticator(&settings);
        if let Err(error) = auth.prepare().await {
            tracing::warn!(%error, "cannot preload the verification script; it will load on first use");
        }
        let state = AppState {
            auth: auth.clone(),
            cache: lifecycle.cache().clone(),
            store: Arc::from(lifecycle.describe_store()),
            forward_headers: Arc::from(forward_headers),
            max_body_bytes: settings.http.max_body_bytes,
            body_read_timeout: settings.http.header_read_timeout,
            metrics: Arc::new(HttpMetrics::default()),
            token_cookie: settings.http.token_cookie.as_deref().map(Arc::from),
        };
        state.metrics.set_max_connections(settings.http.max_connections);
        tracing::info!(
            listen = %local_addr,
            store = %state.store,
            token_format = ?state.auth.policy().token_format,
            token_storage = ?settings.auth.token_storage,
            app_env = settings.app_env.as_str(),
            internal_routes = !settings.internal_keys.is_empty(),
            "tessera listening"
        );
        warn_if_descriptors_are_short(settings.http.max_connections, settings.redis.pool_size);
        let mut layer = AuthLayer::new(auth)
            .public_paths(settings.http.public_paths.iter().cloned())
            .internal_scoped(&settings.internal_keys, config::internal_scope);
        if let Some(cookie) = &settings.http.token_cookie {
            layer = layer.token_cookie(cookie.clone());
        }
        let stack = Stack { rules: layer.rules(), router: Router::new(state.clone()) };
        Ok(Self {
            listener,
            local_addr,
            lifecycle,
            stack,
            limits: ServerLimits {
                max_connections: settings.http.max_connections,
                max_connections_per_ip: settings.http.max_connections_per_ip,
                connection: ConnectionLimits {
                    header_read_timeout: settings.http.header_read_timeout,
                    idle_timeout: settings.http.idle_timeout,
                    max_header_bytes: settings.http.max_header_bytes,
                },
            },
            shutdown_timeout: settings.shutdown_timeout,
            metrics: state.metrics,
        })
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
        let Self { listener, lifecycle, stack, metrics, limits, shutdown_timeout, .. } = self;
        let graceful = GracefulShutdown::new();
        // Every connection task, so none outlives the drain deadline (finished ones are reaped
        // as the loop goes, so the set holds only live connections).
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let table = ConnectionTable::new(limits.max_connections_per_ip, limits.max_connections);
        let mut warnings = Warnings::default();
        // An accepted connection still waiting for a slot: kept across the loop's turns, so a
        // connection that ends meanwhile (which restarts `accept_within`) does not drop it.
        let mut pending = None;
        loop {
            tokio::select! {
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = accept_within(&listener, &slots, &table, &metrics, &mut warnings, &mut pending) => match accepted {
                    Ok(None) => {}
                    Ok(Some((stream, slot, entry))) => {
                        let stack = stack.clone();
                        let counted = Arc::clone(&metrics);
                        let handle = move |request| serve(stack.clone(), Arc::clone(&counted), request);
                        let limits = limits.connection;
                        let metrics = Arc::clone(&metrics);
                        connections.spawn(connection::serve(stream, slot, entry, handle, limits, &graceful, metrics));
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
            () = tokio::time::sleep(shutdown_timeout) => {
                tracing::warn!(left = connections.len(), "drain deadline reached; cutting the remaining connections");
            }
        }
        // Past the deadline nothing may keep a connection (or a request holding the store) open:
        // abort what is left and wait until every task is gone, so the store closes last.
        connections.shutdown().await;
        lifecycle.stop().await;
        tracing::info!("tessera stopped");
    }
}

/// When each capacity warning was last logged (at most one a minute each).
#[derive(Default)]
struct Warnings {
    full: Option<Instant>,
    peer_full: Option<Instant>,
}

fn may_warn(last: &mut Option<Instant>) -> bool {
    let due = last.is_none_or(|warned: Instant| warned.elapsed() >= FULL_WARNING_EVERY);
    if due {
        *last = Some(Instant::now());
    }
    due
}

/// Accepts a connection, admits it into the table and takes its slot under
/// `TESSERA_MAX_CONNECTIONS`. At the cap, the connection idle longest is told to close and the
/// new one takes its slot; while none is idle the new one waits here, and those behind it in
/// the kernel's accept backlog (past it their SYNs are dropped and the clients retry). Idle
/// connections are closed only for a client that is actually there. A connection whose peer
/// holds `TESSERA_MAX_CONNECTIONS_PER_IP` busy connections is closed at once (`Ok(None)`).
/// Cancel-safe: a connection accepted but still waiting for a slot stays in `pending`.
async fn accept_within(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    table: &Arc<ConnectionTable>,
    metrics: &HttpMetrics,
    warnings: &mut Warnings,
    pending: &mut Option<(TcpStream, TableEntry)>,
) -> std::io::Result<Option<(TcpStream, OwnedSemaphorePermit, TableEntry)>> {
    if pending.is_none() {
        let (stream, peer) = listener.accept().await?;
        match table.admit(peer.ip()) {
            Ok((entry, closed_one)) => {
                if closed_one {
                    metrics.idle_connection_closed();
                }
                *pending = Some((stream, entry));
            }
            Err(Refused::PeerFull) => {
                metrics.connection_refused_per_ip();
                if may_warn(&mut warnings.peer_full) {
                    tracing::warn!(
                        peer = %peer.ip(),
                        "TESSERA_MAX_CONNECTIONS_PER_IP reached with every connection of the peer busy: new ones \
                         from it are closed at once"
                    );
                }
                return Ok(None);
            }
        }
    }
    let slot = loop {
        if let Ok(slot) = Arc::clone(slots).try_acquire_owned() {
            break slot;
        }
        if table.close_longest_idle() {
            metrics.idle_connection_closed();
        } else if may_warn(&mut warnings.full) {
            tracing::warn!(
                "TESSERA_MAX_CONNECTIONS reached with no idle connection to close: new connections wait in the \
                 accept backlog"
            );
        }
        // A connection told to close frees its slot within moments; a busy one may turn idle.
        tokio::select! {
            slot = Arc::clone(slots).acquire_owned() => match slot {
                Ok(slot) => break slot,
                Err(_) => unreachable!("the connection slots are never closed"),
            },
            () = tokio::time::sleep(FULL_RECHECK_EVERY) => {}
        }
    };
    Ok(pending.take().map(|(stream, entry)| (stream, slot, entry)))
}

/// One request through the stack, with a request id (propagated when sane, generated
/// otherwise) on the response and its route, status and auth outcome counted.
///
/// What the answer needs of the request's head is copied out before the returned future
/// first waits, and the head is dropped (see [`Requested`] for why).
fn serve(
    stack: Stack,
    metrics: Arc<HttpMetrics>,
    request: Request<Incoming>,
) -> impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static {
    let started = Instant::now();
    let request_id = propagated_request_id(request.headers()).unwrap_or_else(new_request_id);
    let bearer = match stack.rules.presented(request.uri().path(), request.headers()) {
        Presented::Decided(admission) => Err(admission),
        Presented::Bearer(token) => Ok(Box::<str>::from(token)),
    };
    let request = Requested::new(request);
    async move {
        let route = request.route().name();
        let admission = match bearer {
            Ok(token) => stack.rules.verify_bearer(&token).await,
            Err(admission) => admission,
        };
        let (mut response, outcome) = match admission {
            Admission::Refused(rejection, outcome) => (stack.rules.refusal(rejection), outcome),
            Admission::Public => (stack.router.respond(request, Caller::Public).await, VerifyOutcome::Public),
            Admission::Internal(scope) => {
                (stack.router.respond(request, Caller::Internal(scope)).await, VerifyOutcome::Internal)
            }
            Admission::Valid(principal) => {
                (stack.router.respond(request, Caller::User(principal)).await, VerifyOutcome::Valid)
            }
        };
        metrics.record(route, response.status().as_u16(), Some(outcome), started.elapsed());
        tracing::debug!(route = route.label(), status = response.status().as_u16(), request_id = ?request_id, "request");
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID_HEADER, request_id);
        protect(route, headers);
        Ok(response)
    }
}

/// Every answer is `nosniff`, and none may be stored by a cache (a shared proxy cache, the
/// browser's) but the API document's: answers carry tokens (issue), principals (verify's
/// headers, `/api/me`), session lists and introspection data, and a refusal cached for one
/// client must not answer another.
fn protect(route: RouteName, headers: &mut HeaderMap) {
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if route != RouteName::OpenApi {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// The caller's `x-request-id`, if sane, copied (not a slice of hyper's read buffer).
fn propagated_request_id(headers: &HeaderMap) -> Option<HeaderValue> {
    let bytes = headers.get(REQUEST_ID_HEADER)?.as_bytes();
    let sane = !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes.iter().all(|byte| byte.is_ascii_alphanumeric() || b"-_.:".contains(byte));
    if !sane {
        return None;
    }
    HeaderValue::from_bytes(bytes).ok()
}

/// 128 random bits as 32 lowercase hex characters, formatted on the stack.
fn new_request_id() -> HeaderValue {
    let mut hex = [0_u8; 32];
    let mut bits = rand::random::<u128>();
    for digit in hex.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(bits & 0xf) as usize];
        bits >>= 4;
    }
    HeaderValue::from_bytes(&hex).unwrap_or_else(|_| unreachable!("hex digits are a valid header value"))
}

/// Descriptors kept aside from HTTP connections: the listener, Redis connections (a cluster
/// holds one per node per pooled client), sentinel connections, files.
const RESERVED_DESCRIPTORS: u64 = 64;

/// Warns when the process's open-file limit cannot hold `TESSERA_MAX_CONNECTIONS` connections
/// besides the Redis pool: past it, accepts fail (EMFILE) before the cap is reached.
fn warn_if_descriptors_are_short(max_connections: usize, pool_size: usize) {
    let Some(limit) = std::fs::read_to_string("/proc/self/limits").ok().as_deref().and_then(open_file_limit) else {
        return;
    };
    let needed = (max_connections as u64).saturating_add(pool_size as u64).saturating_add(RESERVED_DESCRIPTORS);
    if limit < needed {
        tracing::warn!(
            open_file_limit = limit,
            max_connections,
            needed,
            "the open-file limit (`ulimit -n`, systemd LimitNOFILE=) is below TESSERA_MAX_CONNECTIONS plus the Redis \
             connections: raise it or lower TESSERA_MAX_CONNECTIONS, or accepts will fail before the cap"
        );
    }
}

/// The soft `Max open files` limit in the text of `/proc/self/limits`; `None` when unlimited or
/// unreadable.
fn open_file_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find_map(|line| line.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_soft_open_file_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             127368               127368               processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(super::open_file_limit(limits), Some(1024));
        assert_eq!(
            super::open_file_limit("Max open files            unlimited            unlimited            files"),
            None
        );
        assert_eq!(super::open_file_limit("Max processes 10 10 processes"), None);
    }

    #[test]
    fn request_ids_are_32_hex_digits_and_differ() {
        let first = super::new_request_id();
        let second = super::new_request_id();
        assert_eq!(first.len(), 32);
        assert!(first.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(first, second);
    }
}
