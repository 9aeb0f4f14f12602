//! One accepted connection under the server's connection limits: hyper's HTTP/1 connection,
//! watched for graceful shutdown, holding its slot of `TESSERA_MAX_CONNECTIONS`, with two
//! deadlines —
//!
//! - a request head must be complete within `TESSERA_HEADER_READ_TIMEOUT_MS` of its first
//!   byte (a new connection's first head, of the accept): a client trickling its head, or
//!   connecting and sending nothing, is cut then;
//! - a keep-alive connection may wait `TESSERA_IDLE_TIMEOUT_MS` for its next request.
//!
//! It is also in the [`ConnectionTable`]: busy from a head's first byte until its answer, idle
//! otherwise; asked to close (to make room for a new client), it reads end-of-file at its next
//! idle read, so hyper closes it as if the client had.
//!
//! hyper has one timer, `header_read_timeout`, which starts whenever it begins waiting for a
//! head — right after the accept and after every response — so it is set to the idle timeout.
//! The header-read deadline, which must start at the head's first byte instead, is kept by
//! [`WatchedStream`], as hyper keeps its own: inside the read path, polled with every read,
//! so it costs no task, no wake-up and no lock (two atomic counters shared with the service
//! say when a complete head reached it).

use std::{
    convert::Infallible,
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::FutureExt;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::OwnedSemaphorePermit,
    time::{Instant, Sleep},
};

use crate::{
    connection_table::{TableEntry, Tracked},
    metrics::HttpMetrics,
    response::Body,
};

/// The per-connection limits, from the settings (which bound both timeouts to a day, so no
/// deadline overflows a clock).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionLimits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_header_bytes: usize,
}

/// The connection on `stream`, served by `handle` until it ends, is cut, or the graceful
/// shutdown (or the table) closes it; `slot` (its share of the connection cap) and `entry`
/// (its place in the table) are released when it ends.
pub(crate) fn serve<Handle, Answer>(
    stream: TcpStream,
    slot: OwnedSemaphorePermit,
    entry: TableEntry,
    handle: Handle,
    limits: ConnectionLimits,
    graceful: &GracefulShutdown,
    metrics: Arc<HttpMetrics>,
) -> impl Future<Output = ()> + Send + 'static
where
    Handle: Fn(Request<Incoming>) -> Answer + Send + 'static,
    Answer: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let heads = Arc::new(HeadCounters::default());
    let tracked = Arc::clone(entry.tracked());
    // Served from now on: idle until its first head starts.
    tracked.mark_idle();
    let stream = WatchedStream::new(
        stream,
        Arc::clone(&heads),
        Arc::clone(&tracked),
        limits.header_read_timeout,
        Arc::clone(&metrics),
    );
    let service = service_fn(move |request| {
        heads.received.fetch_add(1, Ordering::Relaxed);
        tracked.mark_busy();
        let heads = Arc::clone(&heads);
        let tracked = Arc::clone(&tracked);
        // `map`, not an `async` block awaiting `answer`: such a block keeps the captured future
        // and the awaited one apart, twice its size, and hyper moves it once per request.
        handle(request).map(move |response| {
            heads.answered.fetch_add(1, Ordering::Relaxed);
            tracked.mark_idle();
            response
        })
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        // hyper's timer runs while it waits for a head, idle time included: the idle bound.
        .header_read_timeout(limits.idle_timeout)
        .max_buf_size(limits.max_header_bytes)
        .serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    let open = OpenConnection::new(metrics);
    async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "connection ended with an error");
        }
        drop(open);
        drop(entry);
        drop(slot);
    }
}

/// Counts the connection as open (for `/metrics`) while it lives.
struct OpenConnection(Arc<HttpMetrics>);

impl OpenConnection {
    fn new(metrics: Arc<HttpMetrics>) -> Self {
        metrics.connection_opened();
        Self(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// Request heads the service received and answered on one connection. A request is being
/// served while `received > answered`; hyper serves one at a time.
#[derive(Debug, Default)]
struct HeadCounters {
    received: AtomicU64,
    answered: AtomicU64,
}

/// The accepted stream with the header-read deadline: armed when bytes arrive while no
/// request is being served (and at the accept), disarmed once the head they start reached the
/// service; a read that finds it passed fails with `TimedOut`, which ends the connection.
///
/// Bytes read after a response that left its request's body unread (hyper drains it) arm the
/// deadline too: such a connection is cut after the header-read timeout rather than the idle
/// one, which costs the client a reconnection, never an answer.
struct WatchedStream {
    inner: TcpStream,
    heads: Arc<HeadCounters>,
    tracked: Arc<Tracked>,
    /// Bytes of a head arrived that the service has not received yet (the connection is not
    /// idle, whatever the counters say).
    head_started: bool,
    /// `heads.received` when `head_started` was last cleared.
    heads_seen: u64,
    limit: Duration,
    /// `Some((n, deadline))`: armed, until `deadline`, while the service has received `n`
    /// heads (a head more disarms it).
    armed: Option<(u64, Instant)>,
    /// Allocated once; set to the armed deadline only when a read must wait, so a head that
    /// arrives whole (the usual case) costs no timer registration.
    timer: Pin<Box<Sleep>>,
    metrics: Arc<HttpMetrics>,
}

impl WatchedStream {
    fn new(
        inner: TcpStream,
        heads: Arc<HeadCounters>,
        tracked: Arc<Tracked>,
        limit: Duration,
        metrics: Arc<HttpMetrics>,
    ) -> Self {
        let deadline = Instant::now() + limit;
        let timer = Box::pin(tokio::time::sleep_until(deadline));
        Self {
            inner,
            heads,
            tracked,
            head_started: false,
            heads_seen: 0,
            limit,
            armed: Some((0, deadline)),
            timer,
            metrics,
        }
    }

    /// Updates the deadline after a read that brought `bytes` bytes.
    fn track(&mut self, bytes: usize) {
        let received = self.heads.received.load(Ordering::Relaxed);
        if self.armed.is_some_and(|(armed_at, _)| received > armed_at) {
            self.armed = None;
        }
        if received > self.heads_seen {
            self.heads_seen = received;
            self.head_started = false;
        }
        let serving = received > self.heads.answered.load(Ordering::Relaxed);
        if bytes > 0 && !serving {
            if !self.head_started {
                self.head_started = true;
                self.tracked.mark_busy();
            }
            if self.armed.is_none() {
                self.armed = Some((received, Instant::now() + self.limit));
            }
        }
    }

    /// Whether the table asked this connection to close and it is idle: no request in
    /// flight, no byte of a next head. Registers the reader's waker with the table.
    fn closing_while_idle(&self, context: &Context<'_>) -> bool {
        let serving = self.heads.received.load(Ordering::Relaxed) > self.heads.answered.load(Ordering::Relaxed);
        !serving && !self.head_started && self.tracked.close_requested(context.waker())
    }

    /// Whether the armed deadline passed; if not, the timer wakes `context` when it does.
    fn head_overdue(&mut self, context: &mut Context<'_>) -> bool {
        let Some((_, deadline)) = self.armed else { return false };
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(context).is_ready()
    }
}

impl AsyncRead for WatchedStream {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(context, buf);
        match read {
            Poll::Ready(Ok(())) => {
                this.track(buf.filled().len() - before);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                this.track(0);
                if this.closing_while_idle(context) {
                    // End-of-file between requests: hyper closes the connection cleanly.
                    return Poll::Ready(Ok(()));
                }
                if this.head_overdue(context) {
                    this.metrics.slow_request_head();
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not complete within TESSERA_HEADER_READ_TIMEOUT_MS",
                    )));
                }
                Poll::Pending
            }
            failed => failed,
        }
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(context)
    }
}
