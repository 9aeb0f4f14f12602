//! Forward auth through a real nginx and a real Caddy, each running the shipped example file
//! (`examples/deploy/nginx/tessera.conf`, `examples/deploy/caddy/Caddyfile`): they ask the
//! `tessera` binary's `/auth/verify` about every request and only a 2xx lets it through to an
//! upstream that runs in this process, with the user id (and one metadata field) as headers the
//! gateway copied from tessera's answer — the token from `Authorization` or from the session
//! cookie. When tessera's Redis is frozen or gone, the gateway must answer an error and the
//! upstream must never see the request (fail closed).

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, task::JoinHandle};

use tests::{HttpResponse, PrivateRedis, ServerProcess, free_port, required_env, send};

const INTERNAL_KEY: &str = "forward-auth-internal-key-0123";
/// The session cookie tessera reads the token from (`TESSERA_TOKEN_COOKIE`).
const COOKIE: &str = "session";

/// How long Redis may take to come back into use after a thaw or a restart.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn nginx_auth_request_lets_only_valid_tokens_through_and_fails_closed_without_redis() {
    let dir = Scratch::new("tessera-test-forward-auth");
    let mut redis = PrivateRedis::start();
    let tessera_address = loopback(free_port());
    let tessera = start_tessera(&redis, tessera_address, dir.path()).await;
    let upstream = Upstream::start().await;
    let nginx_address = loopback(free_port());
    let nginx = start_nginx(dir.path(), nginx_address, tessera_address, upstream.address).await;
    let diagnostics = || format!("{}\n{}", nginx.logs(), tessera.logs());

    let token = issue_token(tessera_address).await;
    let bearer = format!("Bearer {token}");

    // (a) A valid token reaches the upstream with the user id nginx took from tessera's answer;
    // the client's own X-Auth-User-Id is overwritten, not passed along.
    let response = through(nginx_address, &[("authorization", &bearer), ("x-auth-user-id", "7")]).await;
    assert_eq!(response.status, StatusCode::OK, "{}\n{}", response.body, diagnostics());
    assert_eq!(response.body, "upstream saw user 42 (alice)");
    assert_eq!(upstream.hits(), 1);
    // The same token in the session cookie: nginx passes the Cookie header to tessera.
    let cookie = format!("theme=dark; {COOKIE}={token}");
    let response = through(nginx_address, &[("cookie", &cookie), ("x-auth-user-id", "7")]).await;
    assert_eq!(response.status, StatusCode::OK, "the cookie: {}\n{}", response.body, diagnostics());
    assert_eq!(response.body, "upstream saw user 42 (alice)");
    assert_eq!(upstream.hits(), 2);
    let upstream_hits = 2;

    // (b) An invalid token, (c) no token: 401 from nginx with tessera's `WWW-Authenticate`, and
    // the upstream is not reached.
    let cases: [(&str, &[(&str, &str)]); 3] = [
        ("an unknown token", &[("authorization", "Bearer not-a-token-tessera-ever-issued")]),
        ("a token under another scheme", &[("authorization", &format!("Basic {token}"))]),
        ("no Authorization header", &[]),
    ];
    for (case, headers) in cases {
        let response = through(nginx_address, headers).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{case}: {}\n{}", response.body, diagnostics());
        let challenge = response.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{case}: nginx passes tessera's challenge on, got {challenge:?}");
        assert_eq!(upstream.hits(), upstream_hits, "{case}: the upstream must not be reached");
    }

    // (d) Redis cannot answer: tessera says 503 and nginx lets nothing through.
    // First a frozen Redis (connections open, no answers: the command timeout decides)...
    redis.freeze();
    let out = RedisOut { tessera: tessera_address, nginx: nginx_address, error_log: dir.path().join("error.log") };
    let frozen = out.refused(&bearer, &upstream, "frozen").await;
    redis.thaw();
    let thawed = Instant::now();
    let response = poll_until(nginx_address, &bearer, |status| status == StatusCode::OK).await;
    assert_eq!(response.body, "upstream saw user 42 (alice)", "the same token works again after a thaw");
    eprintln!("forward_auth: frozen redis → nginx {frozen}; the token worked again {:?} after thaw", thawed.elapsed());
    let hits = upstream.hits();

    // ...then a Redis that is gone (killed: connections refused).
    redis.stop();
    let stopped = out.refused(&bearer, &upstream, "stopped").await;
    assert_eq!(upstream.hits(), hits);

    // (e) Redis restarted. The private Redis keeps nothing across a restart, so once the store
    // answers the old token is simply unknown (401, not a 5xx); a fresh token goes through.
    redis.restart();
    let restarted = Instant::now();
    let response = poll_until(nginx_address, &bearer, |status| !status.is_server_error()).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED, "the restarted Redis has no sessions: {}", response.body);
    let answering = restarted.elapsed();
    let fresh = format!("Bearer {}", issue_token(tessera_address).await);
    let response = through(nginx_address, &[("authorization", &fresh)]).await;
    assert_eq!(response.status, StatusCode::OK, "{}\n{}", response.body, diagnostics());
    assert_eq!(response.body, "upstream saw user 42 (alice)");
    assert_eq!(upstream.hits(), hits + 1);
    eprintln!(
        "forward_auth: stopped redis → nginx {stopped}; answering {answering:?} after restart, \
         a fresh token went through {:?} after restart",
        restarted.elapsed()
    );
}

/// The same through Caddy's `forward_auth` (the shipped Caddyfile): Caddy returns tessera's
/// 401 and 503 to the client as they are, and the application sees the principal's headers
/// only, never those a client sent itself (a session without a username included).
#[tokio::test]
async fn caddy_forward_auth_lets_only_valid_tokens_through_and_fails_closed_without_redis() {
    let dir = Scratch::new("tessera-test-caddy");
    let redis = PrivateRedis::start();
    let tessera_address = loopback(free_port());
    let tessera = start_tessera(&redis, tessera_address, dir.path()).await;
    let upstream = Upstream::start().await;
    let caddy_address = loopback(free_port());
    let caddy = start_caddy(dir.path(), caddy_address, tessera_address, upstream.address).await;
    let diagnostics = || format!("{}\n{}", caddy.logs(), tessera.logs());

    let token = issue_token(tessera_address).await;
    let bearer = format!("Bearer {token}");
    let spoofed = [("x-auth-user-id", "7"), ("x-auth-username", "mallory")];
    let response = through(caddy_address, &[&[("authorization", bearer.as_str())][..], &spoofed].concat()).await;
    assert_eq!(response.status, StatusCode::OK, "{}\n{}", response.body, diagnostics());
    assert_eq!(response.body, "upstream saw user 42 (alice)", "the client's identity headers are replaced");
    let cookie = format!("{COOKIE}={token}");
    let response = through(caddy_address, &[("cookie", cookie.as_str())]).await;
    assert_eq!(response.status, StatusCode::OK, "the cookie: {}\n{}", response.body, diagnostics());
    assert_eq!(response.body, "upstream saw user 42 (alice)");
    let nameless = issue_token_with(tessera_address, br#"{"user_id": 43}"#).await;
    let nameless = format!("Bearer {nameless}");
    let response = through(caddy_address, &[&[("authorization", nameless.as_str())][..], &spoofed].concat()).await;
    // tessera sends the header empty for a session without the field, so the client's is replaced.
    assert_eq!(response.body, "upstream saw user 43 ()", "a username the session lacks is not the client's");
    assert_eq!(upstream.hits(), 3);

    for (case, headers) in [
        ("an unknown token", vec![("authorization", "Bearer not-a-token-tessera-ever-issued")]),
        ("no token", vec![]),
        ("an unknown cookie", vec![("cookie", "session=not-a-token-tessera-ever-issued")]),
    ] {
        let response = through(caddy_address, &headers).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{case}: {}\n{}", response.body, diagnostics());
        let challenge = response.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{case}: Caddy passes tessera's challenge on, got {challenge:?}");
        assert_eq!(upstream.hits(), 3, "{case}: the upstream must not be reached");
    }

    redis.freeze();
    let since = Instant::now();
    let response = loop {
        let response = through(caddy_address, &[("authorization", &bearer)]).await;
        if response.status != StatusCode::OK || since.elapsed() > Duration::from_secs(3) {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let hits = upstream.hits();
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "fail closed: {}\n{}", response.body, diagnostics());
    assert!(response.header("retry-after").is_some(), "tessera's Retry-After reaches the client");
    let again = through(caddy_address, &[("authorization", &bearer)]).await;
    assert_eq!(again.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(upstream.hits(), hits, "the upstream is never reached while tessera answers 503");
    redis.thaw();
    let response = poll_until(caddy_address, &bearer, |status| status == StatusCode::OK).await;
    assert_eq!(response.body, "upstream saw user 42 (alice)", "the same token works again after a thaw");
}

/// Caddy in the foreground on the shipped Caddyfile, its addresses replaced, with no admin
/// endpoint and its data and config directories under `dir`.
async fn start_caddy(dir: &Path, address: SocketAddr, tessera: SocketAddr, upstream: SocketAddr) -> ServerProcess {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/deploy/caddy/Caddyfile");
    let mut site = std::fs::read_to_string(&shipped).unwrap();
    for (from, to) in [
        // Any Host header, on loopback only.
        (":80 {", format!("http://:{} {{\n\tbind {}", address.port(), address.ip())),
        ("forward_auth tessera:8080", format!("forward_auth {tessera}")),
        ("reverse_proxy app:3000", format!("reverse_proxy {upstream}")),
    ] {
        assert_eq!(site.matches(from).count(), 1, "{} must say `{from}` once", shipped.display());
        site = site.replace(from, &to);
    }
    let config = dir.join("Caddyfile");
    std::fs::write(&config, format!("{{\n\tadmin off\n}}\n\n{site}")).unwrap();
    let mut command = Command::new(required_env("TESSERA_TEST_CADDY"));
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&config)
        .env_clear()
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
    let mut caddy = ServerProcess::spawn("caddy", command, &dir.join("caddy.out"));
    caddy.wait_until_listening(address).await;
    caddy
}

/// The checks made while Redis is out of service.
struct RedisOut {
    tessera: SocketAddr,
    nginx: SocketAddr,
    error_log: PathBuf,
}

impl RedisOut {
    /// What nginx logs when `auth_request` gets a status other than 2xx, 401 or 403.
    const NGINX_SAW_503: &str = "auth request unexpected status: 503";

    /// Tessera's `/auth/verify` answers 503 with `Retry-After`, and nginx, having seen that 503
    /// (its error log says so), answers an error of its own — never a 2xx, never a 401 that
    /// would send a client with a good token to log in again — without reaching the upstream.
    /// Returns what nginx answered and how long it took.
    async fn refused(&self, bearer: &str, upstream: &Upstream, state: &str) -> String {
        let hits = upstream.hits();
        // A verdict the near cache holds may be served until the connection has been silent
        // for 750 ms (its documented bound), then the command timeout (1 s) gives 503; never 200
        // beyond 2 s.
        let since = Instant::now();
        let direct = loop {
            let direct = send(self.tessera, Method::GET, "/auth/verify", &[("authorization", bearer)], None).await;
            if direct.status != StatusCode::OK || since.elapsed() > Duration::from_secs(2) {
                break direct;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(direct.status, StatusCode::SERVICE_UNAVAILABLE, "{state} redis, tessera directly: {}", direct.body);
        assert!(direct.header("retry-after").is_some(), "{state} redis: 503 without Retry-After");
        let logged = self.nginx_saw_503();
        let started = Instant::now();
        let response = through(self.nginx, &[("authorization", bearer)]).await;
        let took = started.elapsed();
        assert!(
            response.status.is_server_error(),
            "{state} redis: nginx must fail closed with a 5xx, got {}: {}",
            response.status,
            response.body
        );
        assert_eq!(upstream.hits(), hits, "{state} redis: the upstream must not be reached");
        assert_eq!(self.nginx_saw_503(), logged + 1, "{state} redis: nginx's auth subrequest got tessera's 503");
        format!("{} in {took:?}", response.status)
    }

    fn nginx_saw_503(&self) -> usize {
        std::fs::read_to_string(&self.error_log).unwrap().matches(Self::NGINX_SAW_503).count()
    }
}

/// Requests `/app/page` through nginx (bounded) until `done(status)`, for at most
/// [`RECOVERY_DEADLINE`]; returns the response that satisfied it.
async fn poll_until(nginx: SocketAddr, bearer: &str, done: impl Fn(StatusCode) -> bool) -> HttpResponse {
    let started = Instant::now();
    loop {
        let response = through(nginx, &[("authorization", bearer)]).await;
        if done(response.status) {
            return response;
        }
        assert!(started.elapsed() < RECOVERY_DEADLINE, "still {} after {RECOVERY_DEADLINE:?}", response.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /app/page` through nginx, within 10 s.
async fn through(nginx: SocketAddr, headers: &[(&str, &str)]) -> HttpResponse {
    tokio::time::timeout(Duration::from_secs(10), send(nginx, Method::GET, "/app/page", headers, None))
        .await
        .expect("nginx answers within 10 s")
}

/// A session for user 42 (username `alice`) from tessera's internal route; returns its token.
pub(crate) async fn issue_token(tessera: SocketAddr) -> String {
    issue_token_with(tessera, br#"{"user_id": 42, "metadata": {"username": "alice"}}"#).await
}

async fn issue_token_with(tessera: SocketAddr, body: &[u8]) -> String {
    let body = body.to_vec();
    let response = send(
        tessera,
        Method::POST,
        "/internal/sessions",
        &[("x-internal-key", INTERNAL_KEY)],
        Some(("application/json", body)),
    )
    .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    json_string_field(&response.body, "token").unwrap_or_else(|| panic!("no token in {}", response.body))
}

/// The value of the string field `name` in a flat JSON object (tokens need no unescaping).
pub(crate) fn json_string_field(json: &str, name: &str) -> Option<String> {
    let after_name = &json[json.find(&format!("\"{name}\""))? + name.len() + 2..];
    let value = after_name.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(value[..value.find('"')?].to_owned())
}

/// The built binary against `redis`, with a clean environment, internal routes on and the
/// `username` metadata field forwarded as `X-Auth-Username`.
pub(crate) async fn start_tessera(redis: &PrivateRedis, address: SocketAddr, dir: &Path) -> ServerProcess {
    let mut command = Command::new(required_env("TESSERA_TEST_BIN"));
    command.env_clear().current_dir(dir).envs([
        ("REDIS_URL", redis.url()),
        ("TESSERA_STORE", "redis".to_owned()),
        ("TESSERA_LISTEN", address.to_string()),
        ("TESSERA_INTERNAL_KEY", INTERNAL_KEY.to_owned()),
        ("TESSERA_FORWARD_HEADERS", "username=X-Auth-Username".to_owned()),
        ("TESSERA_TOKEN_COOKIE", COOKIE.to_owned()),
        ("TESSERA_REDIS_COMMAND_TIMEOUT_MS", "500".to_owned()),
        ("TESSERA_REDIS_CONNECT_TIMEOUT_MS", "500".to_owned()),
        ("TESSERA_REDIS_RECONNECT_MAX_MS", "400".to_owned()),
    ]);
    let mut tessera = ServerProcess::spawn("tessera", command, &dir.join("tessera.out"));
    tessera.wait_until_listening(address).await;
    tessera
}

/// nginx in the foreground with every file it writes (pid, logs, temp paths) under `dir`.
async fn start_nginx(dir: &Path, address: SocketAddr, tessera: SocketAddr, upstream: SocketAddr) -> ServerProcess {
    let config = dir.join("nginx.conf");
    std::fs::write(&config, nginx_config(dir, address, tessera, upstream)).unwrap();
    let error_log = dir.join("error.log");
    let mut command = Command::new(required_env("TESSERA_TEST_NGINX"));
    command.arg("-p").arg(dir).arg("-c").arg(&config).arg("-e").arg(&error_log).args(["-g", "daemon off;"]);
    let mut nginx = ServerProcess::spawn("nginx", command, &dir.join("nginx.out")).with_log(&error_log);
    nginx.wait_until_listening(address).await;
    nginx
}

/// The shipped `examples/deploy/nginx/tessera.conf`, as is but for the three addresses, inside
/// an `http { }` block with paths under `dir`: what the README tells operators to run is what
/// this test runs.
fn nginx_config(dir: &Path, address: SocketAddr, tessera: SocketAddr, upstream: SocketAddr) -> String {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/deploy/nginx/tessera.conf");
    let mut server = std::fs::read_to_string(&shipped).unwrap();
    for (from, to) in [
        ("listen 80;", format!("listen {address};")),
        ("http://app:3000", format!("http://{upstream}")),
        ("http://tessera:8080", format!("http://{tessera}")),
    ] {
        assert_eq!(server.matches(from).count(), 1, "{} must say `{from}` once", shipped.display());
        server = server.replace(from, &to);
    }
    let dir = dir.display();
    format!(
        r#"worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body_temp;
    proxy_temp_path {dir}/proxy_temp;
    fastcgi_temp_path {dir}/fastcgi_temp;
    uwsgi_temp_path {dir}/uwsgi_temp;
    scgi_temp_path {dir}/scgi_temp;
{server}
}}
"#
    )
}

/// The protected application: a hyper server in this process that counts its requests and
/// answers with the identity headers it received.
struct Upstream {
    address: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Upstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                let service = service_fn(move |request: Request<Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let header = |name: &str| {
                        request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or("-").to_owned()
                    };
                    let body =
                        format!("upstream saw user {} ({})", header("x-auth-user-id"), header("x-auth-username"));
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { address, hits, task }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh directory for this test's files, removed on drop (declared first, so it outlives
/// the processes writing into it).
struct Scratch(PathBuf);

impl Scratch {
    fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
