//! The one HTTP/1.1 client of the tests and tools, on hyper: a [`Connection`] sends requests
//! one after another over one keep-alive connection (async), [`BlockingConnection`] does the
//! same for synchronous tools (xtask's benchmark probe, the seeder), and [`send`] is one
//! request on a connection of its own. Every request carries `Host: tessera.test` unless the
//! caller names a host; a body is sent with its content type and length.

use std::{net::SocketAddr, time::Duration};

use http_body_util::{BodyExt, Full};
pub use hyper::{Method, StatusCode};
use hyper::{
    Request,
    body::Bytes,
    client::conn::http1::{self, SendRequest},
    header::HeaderMap,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long a tool waits for a connection or an answer before it gives up.
const TOOL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {address}: {source}")]
    Connect { address: SocketAddr, source: std::io::Error },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot start a runtime for a blocking client: {0}")]
    Runtime(std::io::Error),
}

/// An answer, its body read whole, as text (lossy UTF-8: Tessera answers JSON or text).
#[derive(Debug)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// One request: `headers` go in order (a name may repeat); `body` is `(content type, bytes)`.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub method: Method,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Option<(&'a str, Vec<u8>)>,
}

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connects to `address`.
    pub async fn open(address: SocketAddr) -> Result<Self, HttpError> {
        let stream = TcpStream::connect(address).await.map_err(|source| HttpError::Connect { address, source })?;
        let _ = stream.set_nodelay(true);
        Self::over(stream).await
    }

    /// Speaks HTTP over a stream the caller opened (a test that counts connections).
    pub async fn over(stream: TcpStream) -> Result<Self, HttpError> {
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { sender })
    }

    /// Sends one request and reads its answer.
    pub async fn send(&mut self, request: Outgoing<'_>) -> Result<HttpResponse, HttpError> {
        let Outgoing { method, path, headers, body } = request;
        let mut builder = Request::builder().method(method).uri(path);
        if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
            builder = builder.header("host", "tessera.test");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = match body {
            Some((content_type, bytes)) => {
                builder = builder.header("content-type", content_type);
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        self.sender.ready().await?;
        let response = self.sender.send_request(builder.body(body)?).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(HttpResponse { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
    }
}

/// One request on a connection of its own.
pub async fn send(address: SocketAddr, request: Outgoing<'_>) -> Result<HttpResponse, HttpError> {
    Connection::open(address).await?.send(request).await
}

/// A [`Connection`] for synchronous code: each call waits for its answer (at most 10 s) on a
/// runtime of the connection's own.
#[derive(Debug)]
pub struct BlockingConnection {
    runtime: tokio::runtime::Runtime,
    connection: Connection,
}

impl BlockingConnection {
    /// Connects to `address` within 10 s.
    pub fn open(address: SocketAddr) -> Result<Self, HttpError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(HttpError::Runtime)?;
        let connection = runtime.block_on(within(Connection::open(address)))?;
        Ok(Self { runtime, connection })
    }

    /// [`Connection::send`], waiting at most 10 s.
    pub fn send(&mut self, request: Outgoing<'_>) -> Result<HttpResponse, HttpError> {
        let Self { runtime, connection } = self;
        runtime.block_on(within(connection.send(request)))
    }
}

async fn within<T>(future: impl Future<Output = Result<T, HttpError>>) -> Result<T, HttpError> {
    tokio::time::timeout(TOOL_TIMEOUT, future).await.unwrap_or(Err(HttpError::Timeout(TOOL_TIMEOUT)))
}
