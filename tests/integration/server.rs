//! The server in-process on port 0 against real Redis: liveness, readiness as Redis goes away
//! and comes back, JSON errors.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use tests::{PrivateRedis, get, spawn_app};

#[tokio::test]
async fn healthz_answers_200_json() {
    let url = tests::Topology::Standalone.url();
    let app = spawn_app(&[("REDIS_URL", &url)]).await;
    let response = get(app.address, "/healthz").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["content-type"], "application/json");
    assert_eq!(response.body, r#"{"status":"ok"}"#);
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_need_a_token_first() {
    let url = tests::Topology::Standalone.url();
    let app = spawn_app(&[("REDIS_URL", &url)]).await;
    let response = get(app.address, "/nope").await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED, "no route is revealed to a caller without a token");
    assert!(response.body.contains(r#""error":"invalid_token""#), "{}", response.body);
    app.stop().await;
}

#[tokio::test]
async fn readyz_follows_redis_down_and_back() {
    let mut redis = PrivateRedis::start();
    let app = spawn_app(&[
        ("REDIS_URL", &redis.url()),
        ("TESSERA_REDIS_COMMAND_TIMEOUT_MS", "400"),
        ("TESSERA_REDIS_RECONNECT_MAX_MS", "400"),
    ])
    .await;
    let response = get(app.address, "/readyz").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body, r#"{"status":"ready"}"#, "nothing about the store in a public answer");

    redis.stop();
    let started = Instant::now();
    let response = get(app.address, "/readyz").await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{}", response.body);
    assert!(started.elapsed() < Duration::from_millis(400 + 1_500), "503 took {:?}", started.elapsed());
    // Anyone may ask: the answer says "not ready" and neither where Redis is nor what failed.
    assert_eq!(
        response.body,
        r#"{"status":"unavailable","error":"store_unavailable","message":"the session store cannot answer"}"#
    );

    redis.restart();
    let restarted = Instant::now();
    loop {
        let response = get(app.address, "/readyz").await;
        if response.status == StatusCode::OK {
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(5), "still {} 5 s after restart", response.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn the_embedded_store_is_ready_without_redis() {
    let app = spawn_app(&[("TESSERA_STORE", "embedded")]).await;
    let response = get(app.address, "/readyz").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body, r#"{"status":"ready"}"#);
    app.stop().await;
}

/// A request whose body never comes keeps its connection busy past the drain deadline: `stop`
/// must cut it (abort its task) rather than leave it open once the server says it stopped.
#[tokio::test]
async fn a_hung_connection_does_not_outlive_stop() {
    const KEY: &str = "internal-key-for-hung-connections";
    let app = spawn_app(&[
        ("TESSERA_STORE", "embedded"),
        ("TESSERA_INTERNAL_KEY", KEY),
        ("TESSERA_SHUTDOWN_TIMEOUT_MS", "200"),
    ])
    .await;
    let mut client = TcpStream::connect(app.address).await.unwrap();
    let head = format!(
        "POST /internal/sessions HTTP/1.1\r\nHost: tessera\r\nX-Internal-Key: {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"user_id\""
    );
    client.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(2), "stop took {:?}", started.elapsed());
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(1), client.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the hung connection is still open after stop returned");
}

#[tokio::test]
async fn a_frozen_redis_gives_503_within_the_command_timeout_not_a_hang() {
    let redis = PrivateRedis::start();
    let app = spawn_app(&[("REDIS_URL", &redis.url()), ("TESSERA_REDIS_COMMAND_TIMEOUT_MS", "500")]).await;
    assert_eq!(get(app.address, "/readyz").await.status, StatusCode::OK);
    redis.freeze();
    let started = Instant::now();
    let response = get(app.address, "/readyz").await;
    let took = started.elapsed();
    redis.thaw();
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{}", response.body);
    assert!(took >= Duration::from_millis(400) && took < Duration::from_millis(500 + 1_500), "503 after {took:?}");
    let thawed = Instant::now();
    while get(app.address, "/readyz").await.status != StatusCode::OK {
        assert!(thawed.elapsed() < Duration::from_secs(5), "not ready 5 s after the thaw");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}
