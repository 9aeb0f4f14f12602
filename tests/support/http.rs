//! A minimal HTTP/1.1 client over hyper for tests: one request per connection.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode, body::Bytes, header::HeaderMap};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// `GET path` on `address`.
pub async fn get(address: SocketAddr, path: &str) -> HttpResponse {
    let stream = TcpStream::connect(address).await.unwrap();
    get_on(stream, path).await
}

/// `GET path` on an open connection (keep-alive tests reuse a stream).
pub async fn get_on(stream: TcpStream, path: &str) -> HttpResponse {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = Request::get(path).header("host", "tessera.test").body(Empty::<Bytes>::new()).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    HttpResponse { status, headers, body: String::from_utf8(body.to_vec()).unwrap() }
}
