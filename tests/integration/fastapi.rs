//! The FastAPI example (`examples/fastapi/app.py`) under a real uvicorn, beside the `tessera`
//! binary on one private Redis: the app's dependency lets tessera verify its callers (bearer
//! token or session cookie), turning tessera's 401 and 503 — and tessera being gone — into its
//! own 401 and 503, never a pass; sessions the app writes the original system's way verify in
//! tessera, and tessera's verify in the app.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use hyper::{Method, StatusCode};

use tests::{HttpResponse, PrivateRedis, ServerProcess, free_port, required_env, send};

use crate::forward_auth::{issue_token, json_string_field, loopback, start_tessera};

async fn start_app(redis: &PrivateRedis, address: SocketAddr, tessera: SocketAddr, dir: &Path) -> ServerProcess {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fastapi");
    let mut command = Command::new(required_env("TESSERA_TEST_FASTAPI_PYTHON"));
    command
        .args(["-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", &address.port().to_string()])
        .arg("--app-dir")
        .arg(&example)
        .env_clear()
        .env("HOME", dir)
        .env("TESSERA_URL", format!("http://{tessera}"))
        .env("REDIS_URL", redis.url());
    let mut app = ServerProcess::spawn("uvicorn", command, &dir.join("uvicorn.out"));
    app.wait_until_listening(address).await;
    app
}

async fn me(app: SocketAddr, headers: &[(&str, &str)]) -> HttpResponse {
    tokio::time::timeout(Duration::from_secs(10), send(app, Method::GET, "/me", headers, None))
        .await
        .expect("the app answers within 10 s")
}

#[tokio::test]
async fn the_fastapi_example_verifies_through_tessera_and_shares_the_key_space() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("tessera-test-fastapi-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let redis = PrivateRedis::start();
    let tessera_address = loopback(free_port());
    let tessera = start_tessera(&redis, tessera_address, &dir).await;
    let app_address = loopback(free_port());
    let app = start_app(&redis, app_address, tessera_address, &dir).await;
    let diagnostics = || format!("{}\n{}", app.logs(), tessera.logs());

    // A token tessera issued, verified by the app through tessera: bearer or cookie.
    let token = issue_token(tessera_address).await;
    let bearer = format!("Bearer {token}");
    for headers in [[("authorization", bearer.as_str())], [("cookie", &format!("session={token}"))]] {
        let answer = me(app_address, &headers).await;
        assert_eq!(answer.status, StatusCode::OK, "{}\n{}", answer.body, diagnostics());
        assert_eq!(answer.body, r#"{"user_id":"42","username":"alice"}"#);
    }
    for headers in [vec![], vec![("authorization", "Bearer not-a-token-tessera-ever-issued")]] {
        let refused = me(app_address, &headers).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
        assert!(refused.header("www-authenticate").is_some_and(|challenge| challenge.starts_with("Bearer")));
    }

    // A session the app writes the original system's way: tessera verifies it, and logs it out.
    let login = send(
        app_address,
        Method::POST,
        "/login",
        &[],
        Some(("application/json", br#"{"user_id": 77, "username": "py"}"#.to_vec())),
    )
    .await;
    assert_eq!(login.status, StatusCode::CREATED, "{}\n{}", login.body, diagnostics());
    let python_token = json_string_field(&login.body, "token").expect("a token");
    let python_bearer = format!("Bearer {python_token}");
    let verified = send(tessera_address, Method::GET, "/auth/verify", &[("authorization", &python_bearer)], None).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(verified.header("x-auth-user-id"), Some("77"));
    assert_eq!(me(app_address, &[("authorization", &python_bearer)]).await.body, r#"{"user_id":"77","username":"py"}"#);
    let logout = send(tessera_address, Method::POST, "/api/logout", &[("authorization", &python_bearer)], None).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(me(app_address, &[("authorization", &python_bearer)]).await.status, StatusCode::UNAUTHORIZED);

    // Redis frozen: tessera answers 503, and so does the app, with Retry-After; never a pass.
    redis.freeze();
    let since = Instant::now();
    let unavailable = loop {
        let answer = me(app_address, &[("authorization", &bearer)]).await;
        if answer.status != StatusCode::OK || since.elapsed() > Duration::from_secs(3) {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE, "{}", unavailable.body);
    assert!(unavailable.header("retry-after").is_some());
    redis.thaw();
    let since = Instant::now();
    while me(app_address, &[("authorization", &bearer)]).await.status != StatusCode::OK {
        assert!(since.elapsed() < Duration::from_secs(10), "the app did not recover\n{}", diagnostics());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // tessera gone: the app cannot ask, and says 503.
    drop(tessera);
    let gone = me(app_address, &[("authorization", &bearer)]).await;
    assert_eq!(gone.status, StatusCode::SERVICE_UNAVAILABLE, "{}", gone.body);
    assert_eq!(gone.header("retry-after"), Some("1"));
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}
