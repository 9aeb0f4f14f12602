//! Tessera's benchmark tooling, run by `cargo xtask bench` and not part of `tessera`: the two
//! servers tessera is measured against — `bench-ceiling`, a bare hyper server that answers
//! `/auth/verify` with a fixed 200 (the HTTP limit of the machine), and `bench-naive`, the
//! original design ported without Tessera — and `bench-seed`, which issues the benchmark's
//! tokens through Tessera's own code. This file holds what they share: the command line, the
//! accept loop (with `tessera`'s connection settings, so only the verification differs), the
//! response headers, and the seeded users' metadata.
//!
//! May depend on every Tessera crate; nothing depends on it.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::{Context, Result, bail};
use auth_core::{MetadataObject, MetadataValue};
use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::HeaderValue,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// The allocator `tessera` runs on (see its `main.rs`), for every benchmark binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The response body of the benchmark servers (the same type `tessera` answers with).
pub type Body = Full<Bytes>;

/// The header `tessera` names the verified user in.
pub const USER_ID_HEADER: &str = "x-auth-user-id";
/// The header carrying the request id, which `tessera` puts on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// `tessera`'s limit on reading a request head; kept the same so the servers differ only in
/// what they do per request.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The value of `--name VALUE` in `args`.
pub fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2).find(|pair| pair[0] == name).map(|pair| pair[1].as_str())
}

/// The value of `--name VALUE`, which must be there; `usage` is the program's usage line.
pub fn required_flag<'a>(args: &'a [String], name: &str, usage: &str) -> Result<&'a str> {
    flag(args, name).with_context(|| format!("missing {name}\nusage: {usage}"))
}

/// `--listen 127.0.0.1:PORT`: a loopback address (the benchmark never listens elsewhere).
pub fn listen_address(args: &[String], usage: &str) -> Result<SocketAddr> {
    let text = required_flag(args, "--listen", usage)?;
    let address: SocketAddr = text.parse().with_context(|| format!("--listen `{text}` is not an address"))?;
    if !address.ip().is_loopback() {
        bail!("--listen {address}: the benchmark servers listen on loopback only");
    }
    Ok(address)
}

/// A multi-threaded runtime with one worker per core, as `tessera` runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

/// Accepts HTTP/1 connections on `listen` forever, answering each request with `handle`.
/// Connections are served as `tessera` serves them (hyper-util's tokio glue, a header read
/// timeout), each on its own task.
pub async fn serve<H, F>(listen: SocketAddr, handle: H) -> Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(_) => {
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let handle = handle.clone();
        let service = service_fn(move |request| {
            let answer = handle(request);
            async move { Ok::<_, std::convert::Infallible>(answer.await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            // A client that goes away mid-request is not the benchmark's business.
            let _ = connection.await;
        });
    }
}

/// An empty-bodied response with `status`, a fresh `x-request-id`, `cache-control: no-store`
/// and `x-content-type-options: nosniff` (as `tessera` sends) and, for a verified caller,
/// `x-auth-user-id`.
pub fn answer(status: StatusCode, user_id: Option<&str>) -> Response<Body> {
    let mut response = Response::new(Body::new(Bytes::new()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(user_id) = user_id.and_then(|text| HeaderValue::from_str(text).ok()) {
        headers.insert(USER_ID_HEADER, user_id);
    }
    headers.insert(REQUEST_ID_HEADER, request_id());
    headers.insert(hyper::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(hyper::header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A request id the way `tessera` makes one: 128 random bits as 32 hex digits.
pub fn request_id() -> HeaderValue {
    HeaderValue::from_str(&format!("{:032x}", rand::random::<u128>())).unwrap_or(HeaderValue::from_static("-"))
}

/// The token in `Authorization: Bearer <token>`, if the header is there and says so.
pub fn bearer_token<B>(request: &Request<B>) -> Option<&str> {
    let value = request.headers().get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim).filter(|token| !token.is_empty())
}

/// The metadata a login service would store for benchmark user `user` (about 200 bytes of
/// compact JSON once `user_id`, `iat` and `ttl_seconds` are added at issue): who, where, what they may do.
pub fn user_metadata(user: u64) -> MetadataObject {
    const LOCALES: [&str; 4] = ["en-US", "de-DE", "fr-FR", "ja-JP"];
    const PLANS: [&str; 3] = ["free", "pro", "enterprise"];
    let role = if user.is_multiple_of(10) { "admin" } else { "billing" };
    let fields: [(&str, MetadataValue); 9] = [
        ("username", MetadataValue::from(format!("user{user:05}"))),
        ("email", MetadataValue::from(format!("user{user:05}@example.com"))),
        ("display_name", MetadataValue::from(format!("Bench User {user}"))),
        ("roles", MetadataValue::from(vec![MetadataValue::from("user"), MetadataValue::from(role)])),
        ("tenant", MetadataValue::from(format!("tenant-{:03}", user % 100))),
        ("locale", MetadataValue::from(LOCALES[(user % 4) as usize])),
        ("plan", MetadataValue::from(PLANS[(user % 3) as usize])),
        ("ip", MetadataValue::from(format!("203.0.113.{}", user % 254 + 1))),
        ("mfa", MetadataValue::from(user.is_multiple_of(2))),
    ];
    let mut metadata = MetadataObject::new();
    for (name, value) in fields {
        metadata.insert(name.to_owned(), value);
    }
    metadata
}
