//! The server's connection limits over raw TCP (README, `TESSERA_MAX_CONNECTIONS`,
//! `TESSERA_HEADER_READ_TIMEOUT_MS`, `TESSERA_IDLE_TIMEOUT_MS`): a client trickling its request
//! head is cut while others are served, an idle keep-alive connection is closed after the idle
//! timeout (and not before), idle connections make room for new clients at the cap (global and
//! per peer), and only busy connections make new ones wait.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use hyper::{Method, StatusCode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, tcp::OwnedWriteHalf},
    task::JoinSet,
};

use tests::{get, send, spawn_app};

const KEY: &str = "internal-key-for-connection-limits";

/// Sends `GET /healthz` on `stream` and reads the whole answer; its status.
async fn healthz_on(stream: &mut TcpStream) -> u16 {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: tessera\r\n\r\n").await.unwrap();
    let mut received = Vec::new();
    let mut chunk = [0_u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "the connection closed before the answer was complete");
        received.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&received);
        let Some(head_end) = text.find("\r\n\r\n") else { continue };
        let length: usize = text[..head_end]
            .lines()
            .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|n| n.trim().to_owned()))
            .and_then(|length| length.parse().ok())
            .unwrap_or(0);
        if received.len() >= head_end + 4 + length {
            return text[9..12].parse().unwrap();
        }
    }
}

/// Waits (at most `limit`) for the server to close `stream`; how long that took, `None` if
/// it stayed open. Anything the server sends first fails the test: a cut client gets nothing.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut chunk = [0_u8; 256];
    match tokio::time::timeout(limit, stream.read(&mut chunk)).await {
        Err(_) => None,
        Ok(Ok(0) | Err(_)) => Some(started.elapsed()),
        Ok(Ok(read)) => panic!("the server answered a cut client: {:?}", String::from_utf8_lossy(&chunk[..read])),
    }
}

/// Writes a request head one byte every 50 ms (4 s for all of it), until the server closes
/// the connection (a write fails).
async fn trickle(writer: &mut OwnedWriteHalf) {
    let head = format!("GET /healthz HTTP/1.1\r\nHost: tessera\r\nX-Padding: {}\r\n\r\n", "p".repeat(40));
    for byte in head.bytes() {
        if writer.write_all(&[byte]).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn slow_clients_are_cut_while_others_are_served(address: SocketAddr) {
    let mut slow = JoinSet::new();
    for _ in 0..10 {
        slow.spawn(async move {
            let stream = TcpStream::connect(address).await.unwrap();
            let (mut reader, mut writer) = stream.into_split();
            let connected = Instant::now();
            let writing = tokio::spawn(async move { trickle(&mut writer).await });
            let mut chunk = [0_u8; 256];
            let read = tokio::time::timeout(Duration::from_secs(3), reader.read(&mut chunk)).await;
            writing.abort();
            match read {
                Err(_) => panic!("a client trickling its head was still connected after 3 s"),
                Ok(Ok(0) | Err(_)) => connected.elapsed(),
                Ok(Ok(_)) => panic!("the server answered a head that never completed"),
            }
        });
    }
    // Meanwhile everyone else is served at once.
    let serving = Instant::now();
    while serving.elapsed() < Duration::from_millis(1_000) {
        let asked = Instant::now();
        assert_eq!(get(address, "/healthz").await.status, StatusCode::OK);
        assert!(asked.elapsed() < Duration::from_millis(500), "a normal request took {:?}", asked.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for cut_after in slow.join_all().await {
        assert!(
            cut_after >= Duration::from_millis(450) && cut_after < Duration::from_millis(1_500),
            "a trickling client was cut after {cut_after:?}, expected about the 500 ms header-read timeout"
        );
    }
}

#[tokio::test]
async fn a_client_trickling_its_request_head_is_cut_and_others_are_served_meanwhile() {
    let app = spawn_app(&[
        ("TESSERA_STORE", "embedded"),
        ("TESSERA_INTERNAL_KEY", KEY),
        ("TESSERA_HEADER_READ_TIMEOUT_MS", "500"),
        ("TESSERA_IDLE_TIMEOUT_MS", "5000"),
    ])
    .await;
    slow_clients_are_cut_while_others_are_served(app.address).await;

    // On a keep-alive connection the deadline starts at the next head's first byte: an idle
    // wait longer than the header-read timeout is fine, a trickled head then is not.
    let mut client = TcpStream::connect(app.address).await.unwrap();
    assert_eq!(healthz_on(&mut client).await, 200);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(healthz_on(&mut client).await, 200, "idle below the idle timeout: still open");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (mut reader, mut writer) = client.into_split();
    let trickling = tokio::spawn(async move { trickle(&mut writer).await });
    let started = Instant::now();
    let mut chunk = [0_u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), reader.read(&mut chunk)).await;
    trickling.abort();
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "the trickled second head was not cut: {read:?}");
    let cut_after = started.elapsed();
    assert!(cut_after >= Duration::from_millis(450) && cut_after < Duration::from_millis(1_500), "{cut_after:?}");

    let metrics = send(app.address, Method::GET, "/metrics", &[("x-internal-key", KEY)], None).await;
    let cut = metrics
        .body
        .lines()
        .find_map(|line| line.strip_prefix("tessera_http_slow_request_heads_total "))
        .and_then(|count| count.parse::<u64>().ok());
    assert_eq!(cut, Some(11), "10 slow first heads and one slow second head: {}", metrics.body);
    app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_and_not_before() {
    let app = spawn_app(&[
        ("TESSERA_STORE", "embedded"),
        ("TESSERA_HEADER_READ_TIMEOUT_MS", "300"),
        ("TESSERA_IDLE_TIMEOUT_MS", "1500"),
    ])
    .await;
    let mut client = TcpStream::connect(app.address).await.unwrap();
    for _ in 0..3 {
        assert_eq!(healthz_on(&mut client).await, 200);
        tokio::time::sleep(Duration::from_millis(1_000)).await;
    }
    assert_eq!(healthz_on(&mut client).await, 200, "1 s pauses, under the idle timeout, keep the connection");
    let closed = closed_within(&mut client, Duration::from_secs(4)).await.expect("closed after the idle timeout");
    assert!(closed >= Duration::from_millis(1_300) && closed < Duration::from_millis(2_800), "closed after {closed:?}");

    // A new connection that sends nothing is a head that never comes: cut at 300 ms.
    let mut silent = TcpStream::connect(app.address).await.unwrap();
    let closed = closed_within(&mut silent, Duration::from_secs(3)).await.expect("a silent connection is closed");
    assert!(closed < Duration::from_millis(1_200), "a silent new connection stayed {closed:?}");
    app.stop().await;
}

/// Starts a request head on a new connection and leaves it unfinished: a busy connection (a
/// request is arriving), which the connection caps never close for room.
async fn busy_connection(address: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: tessera\r\n").await.unwrap();
    stream
}

/// Finishes the head [`busy_connection`] started and reads the answer's status.
async fn finish_head(stream: &mut TcpStream) -> u16 {
    stream.write_all(b"\r\n").await.unwrap();
    read_status(stream).await
}

async fn read_status(stream: &mut TcpStream) -> u16 {
    let mut received = Vec::new();
    let mut chunk = [0_u8; 1024];
    while !String::from_utf8_lossy(&received).contains("\r\n\r\n") {
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "closed before the answer");
        received.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8_lossy(&received)[9..12].parse().unwrap()
}

fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

/// The scenario of an idle-connection lock-out: 40 keep-alive connections that each asked
/// once and sit idle, at a cap of 20. Every one of them got its answer, and fresh clients are
/// served at once: the longest-idle connections are closed to make room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_never_lock_new_clients_out() {
    let app = spawn_app(&[
        ("TESSERA_STORE", "embedded"),
        ("TESSERA_INTERNAL_KEY", KEY),
        ("TESSERA_MAX_CONNECTIONS", "20"),
        ("TESSERA_IDLE_TIMEOUT_MS", "120000"),
    ])
    .await;
    let mut idle = Vec::new();
    for _ in 0..40 {
        let mut stream = TcpStream::connect(app.address).await.unwrap();
        let status = tokio::time::timeout(Duration::from_secs(2), healthz_on(&mut stream)).await;
        assert_eq!(status.expect("each keep-alive client is answered within 2 s"), 200);
        idle.push(stream);
    }
    for _ in 0..5 {
        let asked = Instant::now();
        let answered = tokio::time::timeout(Duration::from_secs(2), get(app.address, "/healthz")).await;
        assert_eq!(answered.expect("a fresh request is answered within 2 s").status, StatusCode::OK);
        assert!(asked.elapsed() < Duration::from_millis(500), "a fresh request waited {:?}", asked.elapsed());
    }
    let metrics = send(app.address, Method::GET, "/metrics", &[("x-internal-key", KEY)], None).await;
    let closed = counter(&metrics.body, "tessera_http_idle_connections_closed_total");
    assert!(closed >= 21, "20 idle connections closed for the 40, and more for the fresh ones: {closed}");
    // The first connections were the ones closed (idle longest), cleanly: end of file, nothing more.
    let mut oldest = idle.remove(0);
    assert!(closed_within(&mut oldest, Duration::from_secs(1)).await.is_some(), "the oldest idle one was closed");
    app.stop().await;
}

/// Busy connections (a request arriving or in flight) are never closed for room: at the cap
/// new connections wait in the backlog until one turns idle, then take its slot.
#[tokio::test]
async fn connections_beyond_the_cap_wait_while_every_connection_is_busy() {
    let app = spawn_app(&[("TESSERA_STORE", "embedded"), ("TESSERA_MAX_CONNECTIONS", "2")]).await;
    let mut first = busy_connection(app.address).await;
    let mut second = busy_connection(app.address).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let address = app.address;
    let waiting = tokio::spawn(async move {
        let mut third = TcpStream::connect(address).await.unwrap();
        let status = healthz_on(&mut third).await;
        (status, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a third connection was served while two busy ones held a cap of 2");
    assert_eq!(finish_head(&mut second).await, 200, "a busy connection is answered, never cut");
    let freed = Instant::now();
    let (status, answered) = tokio::time::timeout(Duration::from_secs(2), waiting).await.expect("served").unwrap();
    assert_eq!(status, 200);
    assert!(
        answered.duration_since(freed) < Duration::from_secs(1),
        "served {:?} after one turned idle",
        answered - freed
    );
    assert_eq!(finish_head(&mut first).await, 200, "the other busy connection was kept");
    app.stop().await;
}

/// One peer holds at most `TESSERA_MAX_CONNECTIONS_PER_IP`: past it its own idle connection
/// makes room, and with none idle the new connection is closed at once.
#[tokio::test]
async fn one_peer_holds_at_most_its_share_of_connections() {
    let app = spawn_app(&[
        ("TESSERA_STORE", "embedded"),
        ("TESSERA_INTERNAL_KEY", KEY),
        ("TESSERA_MAX_CONNECTIONS", "100"),
        ("TESSERA_MAX_CONNECTIONS_PER_IP", "3"),
    ])
    .await;
    let mut busy = Vec::new();
    for _ in 0..3 {
        busy.push(busy_connection(app.address).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut refused = TcpStream::connect(app.address).await.unwrap();
    let closed = closed_within(&mut refused, Duration::from_secs(2)).await;
    assert!(closed.is_some(), "a fourth connection from the same address is refused while three are busy");
    assert_eq!(finish_head(&mut busy[0]).await, 200);
    let mut fresh = TcpStream::connect(app.address).await.unwrap();
    assert_eq!(healthz_on(&mut fresh).await, 200, "the peer's idle connection made room");
    assert!(closed_within(&mut busy[0], Duration::from_secs(2)).await.is_some(), "the idle one was closed for it");
    for stream in &mut busy[1..] {
        assert_eq!(finish_head(stream).await, 200, "busy ones are kept");
    }
    drop(busy);
    drop(fresh);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let metrics = send(app.address, Method::GET, "/metrics", &[("x-internal-key", KEY)], None).await;
    assert_eq!(counter(&metrics.body, "tessera_http_connections_refused_total"), 1, "{}", metrics.body);
    app.stop().await;
}

/// A body trickled after a complete head is bounded as the head is: the request is answered
/// 408 once `TESSERA_HEADER_READ_TIMEOUT_MS` has passed, not held while the client dawdles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_answered_408_at_the_read_timeout() {
    let app = spawn_app(&[
        ("TESSERA_STORE", "embedded"),
        ("TESSERA_INTERNAL_KEY", KEY),
        ("TESSERA_HEADER_READ_TIMEOUT_MS", "400"),
    ])
    .await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let head = format!(
        "POST /internal/sessions HTTP/1.1\r\nHost: tessera\r\nX-Internal-Key: {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"user_id\""
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut chunk = [0_u8; 1024];
    while !String::from_utf8_lossy(&received).contains("request_timeout") {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(read > 0, "closed without an answer: {:?}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&chunk[..read]);
    }
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&received);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took >= Duration::from_millis(400) && took < Duration::from_millis(1_500), "answered after {took:?}");
    app.stop().await;
}
