//! No secret reaches a log: the `tessera` binary, its output captured as an operator's log
//! store would keep it (every level down to `trace`), driven through every path that logs —
//! verifications, issues, logouts and revocations while Redis is paused, frozen, killed and
//! restarted, slow operations (a 1 ms threshold makes every one slow), sliding-expiry writes,
//! near-cache misses, introspection and the CLI — then searched for every token issued and for
//! its SHA-256 digest (the hashed storage form). Each run also checks the failure paths really
//! ran (503s answered, warnings written), so it cannot pass by logging nothing.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use hyper::{Method, StatusCode};
use sha2::{Digest, Sha256};
use simd_json::prelude::{ValueAsScalar, ValueObjectAccess};
use tokio::io::AsyncWriteExt;

use tests::{PrivateRedis, ServerProcess, free_port, required_env, send, tessera_command};

const KEY: &str = "secrets-in-logs-internal-key-0123456789";

/// The SHA-256 of `token` in lowercase hex: what hashed storage keeps instead of it.
pub(crate) fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Everything a token can be recognised by: itself and its digest in hex.
fn forms_of(token: &str) -> [String; 2] {
    [token.to_owned(), sha256_hex(token)]
}

fn json(body: &str) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", body.as_bytes().to_vec()))
}

fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tessera-secrets-{name}-{}-{}.log", std::process::id(), free_port()))
}

struct Run {
    redis: PrivateRedis,
    server: ServerProcess,
    address: std::net::SocketAddr,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
}

impl Run {
    async fn start(storage: &'static str, near_cache: &'static str) -> Self {
        let redis = PrivateRedis::start();
        let port = free_port();
        let address: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let env: Vec<(&'static str, String)> = vec![
            ("REDIS_URL", redis.url()),
            ("TESSERA_LISTEN", address.to_string()),
            ("TESSERA_INTERNAL_KEY", KEY.to_owned()),
            ("TESSERA_TOKEN_STORAGE", storage.to_owned()),
            ("TESSERA_NEAR_CACHE", near_cache.to_owned()),
            ("TESSERA_SLIDING_EXPIRY", "true".to_owned()),
            ("TESSERA_REDIS_COMMAND_TIMEOUT_MS", "200".to_owned()),
            ("TESSERA_REDIS_CONNECT_TIMEOUT_MS", "300".to_owned()),
            ("TESSERA_REDIS_RECONNECT_MAX_MS", "200".to_owned()),
            ("TESSERA_REVOCATION_WAIT_MS", "0".to_owned()),
            ("TESSERA_SLOW_OPERATION_MS", "1".to_owned()),
            ("TESSERA_LOG", "trace".to_owned()),
        ];
        let mut command = std::process::Command::new(required_env("TESSERA_TEST_BIN"));
        command.env_clear().current_dir(std::env::temp_dir()).envs(env.iter().map(|(name, value)| (name, value)));
        let log = log_path(&format!("{storage}-{near_cache}"));
        let mut server = ServerProcess::spawn("tessera", command, &log);
        server.wait_until_listening(address).await;
        Self { redis, server, address, env, log }
    }

    async fn issue(&self, user: u64) -> (String, String) {
        let body = format!(r#"{{"user_id":{user},"metadata":{{"username":"u{user}"}}}}"#);
        let issued =
            send(self.address, Method::POST, "/internal/sessions", &[("x-internal-key", KEY)], json(&body)).await;
        assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
        let mut bytes = issued.body.into_bytes();
        let answer = simd_json::to_owned_value(&mut bytes).unwrap();
        let field = |name: &str| answer.get(name).and_then(|value| value.as_str()).unwrap().to_owned();
        (field("token"), field("session_id"))
    }

    async fn verify(&self, token: &str) -> StatusCode {
        let bearer = format!("Bearer {token}");
        send(self.address, Method::GET, "/auth/verify", &[("authorization", &bearer)], None).await.status
    }

    /// Every way a token is used over HTTP; the statuses.
    async fn use_everywhere(&self, token: &str, user: u64, session: &str) -> Vec<StatusCode> {
        let bearer = format!("Bearer {token}");
        let introspect = format!(r#"{{"token":"{token}"}}"#);
        vec![
            self.verify(token).await,
            send(self.address, Method::GET, "/api/me", &[("authorization", &bearer)], None).await.status,
            send(self.address, Method::POST, "/internal/introspect", &[("x-internal-key", KEY)], json(&introspect))
                .await
                .status,
            send(
                self.address,
                Method::GET,
                &format!("/internal/users/{user}/sessions"),
                &[("x-internal-key", KEY)],
                None,
            )
            .await
            .status,
            send(
                self.address,
                Method::DELETE,
                &format!("/internal/users/{user}/sessions/{session}"),
                &[("x-internal-key", KEY)],
                None,
            )
            .await
            .status,
        ]
    }

    /// The CLI's token commands against the same Redis; their standard error, which is their log.
    async fn cli(&self, token: &str, user: u64) -> String {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let mut output = String::new();
        let mut inspect = tessera_command(&env);
        inspect.args(["token", "inspect"]).stdin(Stdio::piped());
        let mut child = inspect.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(token.as_bytes()).await.unwrap();
        drop(stdin);
        let inspected = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await.unwrap().unwrap();
        output.push_str(&String::from_utf8_lossy(&inspected.stderr));
        let user = user.to_string();
        for args in [&["token", "list", "--user-id", &user][..], &["token", "revoke", "--user-id", &user]] {
            let mut command = tessera_command(&env);
            command.args(args);
            let ran = tokio::time::timeout(Duration::from_secs(20), command.output()).await.unwrap().unwrap();
            output.push_str(&String::from_utf8_lossy(&ran.stderr));
        }
        output
    }
}

/// Waits until `token` verifies with `expected` (the store answers again), at most 10 s.
async fn until_verified(run: &Run, token: &str, expected: StatusCode) {
    let started = Instant::now();
    while run.verify(token).await != expected {
        assert!(started.elapsed() < Duration::from_secs(10), "the store did not answer again\n{}", run.server.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn no_token_in_any_log(storage: &'static str, near_cache: &'static str) {
    let mut run = Run::start(storage, near_cache).await;
    let mut tokens = Vec::new();
    for user in 1..=6_u64 {
        let (token, session) = run.issue(user).await;
        assert_eq!(run.verify(&token).await, StatusCode::OK);
        assert_eq!(run.verify(&token).await, StatusCode::OK, "again: a near-cache hit or a sliding-expiry write");
        tokens.push((user, token, session));
    }

    // Paused long enough for every use below: every command times out at 200 ms.
    run.redis.query(&["CLIENT", "PAUSE", "6000", "ALL"]);
    let mut refused = 0;
    for (user, token, session) in &tokens[..2] {
        refused +=
            run.use_everywhere(token, *user, session).await.iter().filter(|status| status.is_server_error()).count();
    }
    let logout = format!("Bearer {}", tokens[2].1);
    let logout = send(run.address, Method::POST, "/api/logout", &[("authorization", &logout)], None).await;
    assert!(logout.status.is_server_error(), "logout while paused: {}", logout.status);
    let cli_paused = run.cli(&tokens[3].1, tokens[3].0).await;
    assert!(refused >= 8, "the paused store answered {refused} of 10 uses with 503");
    until_verified(&run, &tokens[0].1, StatusCode::OK).await;

    // Frozen (SIGSTOP): connections open, nothing answers.
    run.redis.freeze();
    for (_, token, _) in &tokens[..3] {
        assert_eq!(run.verify(token).await, StatusCode::SERVICE_UNAVAILABLE);
    }
    run.redis.thaw();
    until_verified(&run, &tokens[0].1, StatusCode::OK).await;

    // Killed and restarted (the data is gone: the tokens are unknown after it).
    run.redis.stop();
    for (_, token, _) in &tokens[..3] {
        assert_eq!(run.verify(token).await, StatusCode::SERVICE_UNAVAILABLE);
    }
    run.redis.restart();
    until_verified(&run, &tokens[0].1, StatusCode::UNAUTHORIZED).await;
    let (fresh, session) = run.issue(7).await;
    let statuses = run.use_everywhere(&fresh, 7, &session).await;
    let cli_up = run.cli(&tokens[4].1, tokens[4].0).await;
    tokens.push((7, fresh, session));
    assert!(statuses.iter().all(StatusCode::is_success), "{statuses:?}");

    let server_log = std::fs::read_to_string(&run.log).unwrap();
    drop(run);
    let everything = format!("{server_log}\n{cli_paused}\n{cli_up}");
    for evidence in ["slow cache operation", "store unavailable", "tessera::audit"] {
        assert!(everything.contains(evidence), "the logging paths ran: no `{evidence}` in\n{everything}");
    }
    for (_, token, _) in &tokens {
        for form in forms_of(token) {
            if let Some(at) = everything.find(&form) {
                let line = everything[..at].rsplit('\n').next().unwrap_or_default();
                panic!("{storage}/{near_cache}: a token (or its digest) is in the log, in the line starting {line:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_in_any_log_plain_storage_without_the_near_cache() {
    no_token_in_any_log("plain", "off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_in_any_log_plain_storage_with_the_near_cache() {
    no_token_in_any_log("plain", "on").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_in_any_log_migrate_storage() {
    no_token_in_any_log("migrate", "off").await;
}
