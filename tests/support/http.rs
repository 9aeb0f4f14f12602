//! HTTP for tests: `dev_support::http` (hyper) with the test host, and a raw writer for
//! request lines hyper's client would refuse to build (odd paths).

use std::net::SocketAddr;

pub use dev_support::http::HttpResponse;
use dev_support::http::{Connection, Method, Outgoing};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// `GET path` on `address`.
pub async fn get(address: SocketAddr, path: &str) -> HttpResponse {
    send(address, Method::GET, path, &[], None).await
}

/// `GET path` on an open connection (keep-alive tests reuse a stream).
pub async fn get_on(stream: TcpStream, path: &str) -> HttpResponse {
    Connection::over(stream)
        .await
        .unwrap()
        .send(Outgoing { method: Method::GET, path, headers: &[], body: None })
        .await
        .unwrap()
}

/// Any request on a connection of its own (`dev_support::http::send`), failing the test when
/// no answer comes.
pub async fn send(
    address: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> HttpResponse {
    let shown = format!("{method} {path}");
    dev_support::http::send(address, Outgoing { method, path, headers, body })
        .await
        .unwrap_or_else(|error| panic!("{shown}: {error}"))
}

/// Writes `head` (request line and headers, without the final blank line) as is and returns
/// the status code of the answer.
pub async fn raw_status(address: SocketAddr, head: &str) -> u16 {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(format!("{head}\r\nHost: tessera.test\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("no status in {answer:?}"))
}
