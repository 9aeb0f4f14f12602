//! A minimal HTTP/1.1 client over hyper for tests: one request per connection, plus a raw
//! writer for request lines hyper's client would refuse to build (odd paths).

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, body::Bytes, header::HeaderMap};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

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

/// `GET path` on `address`.
pub async fn get(address: SocketAddr, path: &str) -> HttpResponse {
    send(address, Method::GET, path, &[], None).await
}

/// `GET path` on an open connection (keep-alive tests reuse a stream).
pub async fn get_on(stream: TcpStream, path: &str) -> HttpResponse {
    send_on(stream, Method::GET, path, &[], None).await
}

/// Any request; `headers` are appended in order (a name may repeat); `body` is
/// `(content type, bytes)`.
pub async fn send(
    address: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> HttpResponse {
    let stream = TcpStream::connect(address).await.unwrap();
    send_on(stream, method, path, headers, body).await
}

async fn send_on(
    stream: TcpStream,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> HttpResponse {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut builder = Request::builder().method(method).uri(path).header("host", "tessera.test");
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
    let response = sender.send_request(builder.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    HttpResponse { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
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
