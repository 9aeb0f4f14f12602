//! The token API end to end: the real server on port 0 against standalone Redis, Redis
//! Cluster and the embedded store (the backend is in each test's path), plus what only Redis
//! can show: keys written the Python system's way, corrupt stored metadata, fail-closed.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};

use cache_toolkit::{CacheClient, CacheOptions, ListEnd};
use config::{AppEnv, Settings};
use infra::Backend;
use tests::{PrivateRedis, TestApp, Topology, raw_status, send, spawn_app};

pub(crate) const INTERNAL_KEY: &str = "internal-key-for-tests-0123456789";

/// Request headers, in order (a name may repeat).
type Headers<'a> = &'a [(&'a str, &'a str)];

pub(crate) async fn app_on(backend: tests::Backend, extra: &[(&str, &str)]) -> TestApp {
    let url;
    let mut pairs =
        vec![("TESSERA_INTERNAL_KEY", INTERNAL_KEY), ("TESSERA_FORWARD_HEADERS", "username=X-Auth-Username")];
    match backend {
        tests::Backend::Embedded => pairs.push(("TESSERA_STORE", "embedded")),
        tests::Backend::Redis(topology) => {
            url = topology.url();
            pairs.push(("REDIS_URL", &url));
        }
    }
    pairs.extend_from_slice(extra);
    spawn_app(&pairs).await
}

pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub(crate) fn unique_user() -> u64 {
    rand_u64() % 1_000_000_000_000
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}

/// Issues a token through the internal API; returns the response body's fields.
pub(crate) async fn issue(app: &TestApp, body: &str) -> (String, String) {
    let response = send(
        app.address,
        Method::POST,
        "/internal/sessions",
        &[("x-internal-key", INTERNAL_KEY)],
        Some(("application/json", body.as_bytes().to_vec())),
    )
    .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    (json_field(&response.body, "token"), json_field(&response.body, "session_id"))
}

/// A top-level string field of a compact JSON object (enough for these responses).
pub(crate) fn json_field(json: &str, name: &str) -> String {
    let marker = format!("\"{name}\":\"");
    let start = json.find(&marker).unwrap_or_else(|| panic!("no {name} in {json}")) + marker.len();
    json[start..].split('"').next().unwrap().to_owned()
}

pub(crate) async fn verify(app: &TestApp, headers: &[(&str, &str)]) -> tests::HttpResponse {
    send(app.address, Method::GET, "/auth/verify", headers, None).await
}

/// Store operations the app has made so far, read from its own `/metrics`.
async fn store_operations(app: &TestApp) -> u64 {
    metric(app, "tessera_store_operation_seconds_count").await
}

/// The value of the `/metrics` sample named `sample` (its name and labels, as written there).
pub(crate) async fn metric(app: &TestApp, sample: &str) -> u64 {
    let response = send(app.address, Method::GET, "/metrics", &[("x-internal-key", INTERNAL_KEY)], None).await;
    assert_eq!(response.status, StatusCode::OK);
    response
        .body
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in {}", response.body))
}

macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test] async fn $case() { super::$case(tests::Backend::Embedded).await; })*
        }
        mod standalone {
            $(#[tokio::test] async fn $case() { super::$case(tests::Backend::Redis(tests::Topology::Standalone)).await; })*
        }
        mod cluster {
            $(#[tokio::test] async fn $case() { super::$case(tests::Backend::Redis(tests::Topology::Cluster)).await; })*
        }
    };
}

on_every_backend!(
    issue_verify_me_logout_then_refused,
    bad_input_is_refused_without_touching_the_store,
    internal_routes_need_the_internal_key,
    paths_cannot_slip_past_the_whitelist,
    sessions_are_listed_revoked_and_introspected,
    limits_and_request_ids,
    answers_are_nosniff_and_never_cached,
    introspection_claims_come_from_the_record_never_from_metadata,
    a_token_cookie_serves_browser_apps,
);

async fn issue_verify_me_logout_then_refused(backend: tests::Backend) {
    let app = app_on(backend, &[]).await;
    let user = unique_user();
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let response = send(
        app.address,
        Method::POST,
        "/internal/sessions",
        &[("x-internal-key", INTERNAL_KEY)],
        Some((
            "application/json",
            format!(r#"{{"user_id":{user},"metadata":{{"username":"alice","plan":"pro"}}}}"#).into_bytes(),
        )),
    )
    .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    assert!(
        response.body.contains(r#""token_type":"Bearer""#) && response.body.contains(r#""expires_in":1800"#),
        "{}",
        response.body
    );
    let expires_at: u64 =
        response.body.split("\"expires_at\":").nth(1).unwrap().split([',', '}']).next().unwrap().parse().unwrap();
    assert!((started + 1800..=started + 1802).contains(&expires_at), "{expires_at}");
    let token = json_field(&response.body, "token");
    assert_eq!(token.len(), 43);

    let verified = verify(&app, &[("authorization", &bearer(&token))]).await;
    assert_eq!(verified.status, StatusCode::OK);
    assert_eq!(verified.header("x-auth-user-id"), Some(user.to_string().as_str()));
    assert_eq!(verified.header("x-auth-username"), Some("alice"));
    assert!(verified.header("x-request-id").is_some());

    let me = send(app.address, Method::GET, "/api/me", &[("authorization", &bearer(&token))], None).await;
    assert_eq!(me.status, StatusCode::OK);
    for fragment in [format!("\"user_id\":{user}"), "\"username\":\"alice\"".to_owned(), "\"plan\":\"pro\"".to_owned()]
    {
        assert!(me.body.contains(&fragment), "{} lacks {fragment}", me.body);
    }

    let logout = send(app.address, Method::POST, "/api/logout", &[("authorization", &bearer(&token))], None).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let refused = verify(&app, &[("authorization", &bearer(&token))]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.header("www-authenticate"), Some("Bearer error=\"invalid_token\""));
    assert!(refused.body.contains(r#""error":"invalid_token""#), "{}", refused.body);
    let me = send(app.address, Method::GET, "/api/me", &[("authorization", &bearer(&token))], None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn bad_input_is_refused_without_touching_the_store(backend: tests::Backend) {
    let app = app_on(backend, &[]).await;
    let long = format!("Bearer {}", "a".repeat(8 * 1024));
    let cases: &[(&str, Headers<'_>, StatusCode)] = &[
        ("no header", &[], StatusCode::UNAUTHORIZED),
        ("Bearer alone", &[("authorization", "Bearer")], StatusCode::UNAUTHORIZED),
        ("Bearer and spaces", &[("authorization", "Bearer    ")], StatusCode::UNAUTHORIZED),
        ("Basic scheme", &[("authorization", "Basic dXNlcjpwYXNzd29yZA==")], StatusCode::UNAUTHORIZED),
        ("Token scheme", &[("authorization", "Token abcdefghijklmnopqrstuvwxyz")], StatusCode::UNAUTHORIZED),
        ("bare token", &[("authorization", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")], StatusCode::UNAUTHORIZED),
        (
            "two Authorization headers",
            &[
                ("authorization", "Bearer abcdefghijklmnopqrstuvwxyz"),
                ("authorization", "Bearer abcdefghijklmnopqrstuvwxyz"),
            ],
            StatusCode::BAD_REQUEST,
        ),
        ("an 8 KiB token", &[("authorization", long.as_str())], StatusCode::UNAUTHORIZED),
        ("a * in the token", &[("authorization", "Bearer abcdefghij*klmnopqrstuvwxyz")], StatusCode::UNAUTHORIZED),
        ("a : in the token", &[("authorization", "Bearer token:abcdefghijklmnopqrstuvwxyz")], StatusCode::UNAUTHORIZED),
        ("a space in the token", &[("authorization", "Bearer abcdefghij klmnopqrstuvwxyz")], StatusCode::UNAUTHORIZED),
        ("a short token", &[("authorization", "Bearer abc")], StatusCode::UNAUTHORIZED),
        ("a glob token", &[("authorization", "Bearer ****************")], StatusCode::UNAUTHORIZED),
    ];
    let before = store_operations(&app).await;
    for (what, headers, expected) in cases {
        for path in ["/auth/verify", "/api/me"] {
            let response = send(app.address, Method::GET, path, headers, None).await;
            assert_eq!(response.status, *expected, "{what} on {path}: {}", response.body);
            assert!(response.body.contains("\"error\":"), "{what}: JSON error expected, got {}", response.body);
        }
    }
    let unicode = send(app.address, Method::GET, "/auth/verify", &[], None).await;
    assert_eq!(unicode.status, StatusCode::UNAUTHORIZED);
    for (what, head) in [
        ("unicode token", "GET /auth/verify HTTP/1.1\r\nAuthorization: Bearer ключ-abcdefghijklmnopqrstu"),
        ("newline in the token", "GET /auth/verify HTTP/1.1\r\nAuthorization: Bearer abcdefghij\nklmnopqrstuvwxyz"),
        ("NUL in the token", "GET /auth/verify HTTP/1.1\r\nAuthorization: Bearer abcdefghij\0klmnopqrstuvwxyz"),
    ] {
        let status = raw_status(app.address, head).await;
        assert!(status == 400 || status == 401, "{what}: {status}");
    }
    assert_eq!(store_operations(&app).await, before, "nothing rejectable may reach the store");
    app.stop().await;
}

async fn internal_routes_need_the_internal_key(backend: tests::Backend) {
    let app = app_on(backend, &[]).await;
    let near_miss = format!("{}X", &INTERNAL_KEY[..INTERNAL_KEY.len() - 1]);
    let longer = format!("{INTERNAL_KEY}0");
    let shorter = &INTERNAL_KEY[..INTERNAL_KEY.len() - 1];
    let query = format!("/internal/sessions?internal_key={INTERNAL_KEY}&key={INTERNAL_KEY}");
    let body = || Some(("application/json", br#"{"user_id":1}"#.to_vec()));
    let cases: &[(&str, &str, Headers<'_>)] = &[
        ("missing", "/internal/sessions", &[]),
        ("wrong", "/internal/sessions", &[("x-internal-key", "wrong-key-wrong-key-wrong")]),
        ("near miss", "/internal/sessions", &[("x-internal-key", near_miss.as_str())]),
        ("one character longer", "/internal/sessions", &[("x-internal-key", longer.as_str())]),
        ("one character shorter", "/internal/sessions", &[("x-internal-key", shorter)]),
        ("in the query string", query.as_str(), &[]),
        (
            "X-Forwarded-For loopback",
            "/internal/sessions",
            &[("x-forwarded-for", "127.0.0.1"), ("x-real-ip", "127.0.0.1")],
        ),
        (
            "a bearer that is not the key",
            "/internal/sessions",
            &[("authorization", "Bearer wrong-key-wrong-key-wrong")],
        ),
    ];
    for (what, path, headers) in cases {
        let response = send(app.address, Method::POST, path, headers, body()).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{what}: {}", response.body);
    }
    for path in ["/metrics", "/internal/users/1/sessions"] {
        assert_eq!(send(app.address, Method::GET, path, &[], None).await.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let as_header =
        send(app.address, Method::POST, "/internal/sessions", &[("x-internal-key", INTERNAL_KEY)], body()).await;
    assert_eq!(as_header.status, StatusCode::CREATED);
    let as_bearer =
        send(app.address, Method::POST, "/internal/sessions", &[("authorization", &bearer(INTERNAL_KEY))], body())
            .await;
    assert_eq!(as_bearer.status, StatusCode::CREATED);
    app.stop().await;

    let rotated =
        app_on(backend, &[("TESSERA_INTERNAL_KEY", "old-key-0123456789abcdef,new-key-0123456789abcdef")]).await;
    for key in ["old-key-0123456789abcdef", "new-key-0123456789abcdef"] {
        let response =
            send(rotated.address, Method::POST, "/internal/sessions", &[("x-internal-key", key)], body()).await;
        assert_eq!(response.status, StatusCode::CREATED, "rotation: {key}");
    }
    rotated.stop().await;

    let off = app_on(backend, &[("TESSERA_INTERNAL_KEY", "")]).await;
    let response =
        send(off.address, Method::POST, "/internal/sessions", &[("x-internal-key", INTERNAL_KEY)], body()).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND, "no key configured: internal routes are off");
    off.stop().await;
    // Settings refuse to make internal paths public; if such settings got through anyway (a
    // library user's layer, a wrong order), the internal handlers still refuse an unmarked call.
    let url = backend.redis_url();
    let mut pairs = vec![("TESSERA_INTERNAL_KEY", INTERNAL_KEY)];
    match &url {
        Some(url) => pairs.push(("REDIS_URL", url.as_str())),
        None => pairs.push(("TESSERA_STORE", "embedded")),
    }
    let opened = tests::spawn_app_with(&pairs, |settings| {
        settings.http.public_paths.extend(["/internal/sessions".to_owned(), "/metrics".to_owned()]);
    })
    .await;
    let minted = send(opened.address, Method::POST, "/internal/sessions", &[], body()).await;
    assert_eq!(minted.status, StatusCode::NOT_FOUND, "a public internal path mints nothing: {}", minted.body);
    let metrics = send(opened.address, Method::GET, "/metrics", &[], None).await;
    assert_eq!(metrics.status, StatusCode::NOT_FOUND, "a public /metrics shows nothing");
    opened.stop().await;
}

async fn paths_cannot_slip_past_the_whitelist(backend: tests::Backend) {
    let app = app_on(backend, &[]).await;
    let before = store_operations(&app).await;
    for path in [
        "//api/me",
        "/healthz/../api/me",
        "/%2e%2e/api/me",
        "/API/me",
        "/api/me/",
        "/healthz%2F..%2Fapi/me",
        "/healthz/",
        "/readyz/../internal/sessions",
        "/./api/me",
        "/api//me",
    ] {
        let status = raw_status(app.address, &format!("GET {path} HTTP/1.1")).await;
        assert!(status == 401 || status == 400, "{path} without a token answered {status}");
    }
    assert_eq!(raw_status(app.address, "GET /healthz HTTP/1.1").await, 200);
    assert_eq!(store_operations(&app).await, before, "refused before any lookup");
    let (token, _) = issue(&app, r#"{"user_id":"slip"}"#).await;
    let odd = send(app.address, Method::GET, "/API/me", &[("authorization", &bearer(&token))], None).await;
    assert_eq!(odd.status, StatusCode::NOT_FOUND, "with a token an unknown path is just not found");
    app.stop().await;
}

async fn sessions_are_listed_revoked_and_introspected(backend: tests::Backend) {
    let app = app_on(backend, &[]).await;
    let user = format!("user-{}", unique_user());
    let mut tokens = Vec::new();
    for index in 0..3 {
        tokens.push(
            issue(&app, &format!(r#"{{"user_id":"{user}","metadata":{{"username":"u{index}"}},"ttl_seconds":600}}"#))
                .await,
        );
    }
    let key = [("x-internal-key", INTERNAL_KEY)];
    let sessions_path = format!("/internal/users/{user}/sessions");
    let listed = send(app.address, Method::GET, &sessions_path, &key, None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    for (token, session_id) in &tokens {
        assert!(listed.body.contains(session_id.as_str()), "{} lacks {session_id}", listed.body);
        assert!(!listed.body.contains(token.as_str()), "a token leaked in the session list");
    }
    assert!(
        listed.body.contains(&format!(r#""user_id":"{user}""#)) && listed.body.contains(r#""expires_in":"#),
        "{}",
        listed.body
    );

    let (revoked_token, revoked_session) = &tokens[1];
    let deleted = send(app.address, Method::DELETE, &format!("{sessions_path}/{revoked_session}"), &key, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(verify(&app, &[("authorization", &bearer(revoked_token))]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(verify(&app, &[("authorization", &bearer(&tokens[0].0))]).await.status, StatusCode::OK);
    let again = send(app.address, Method::DELETE, &format!("{sessions_path}/{revoked_session}"), &key, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    let form = format!("token={}", tokens[0].0);
    let active = send(
        app.address,
        Method::POST,
        "/internal/introspect",
        &key,
        Some(("application/x-www-form-urlencoded", form.into_bytes())),
    )
    .await;
    assert_eq!(active.status, StatusCode::OK, "{}", active.body);
    for fragment in [
        "\"active\":true",
        &format!("\"sub\":\"{user}\""),
        "\"token_type\":\"Bearer\"",
        "\"username\":\"u0\"",
        "\"exp\":",
        "\"iat\":",
    ] {
        assert!(active.body.contains(fragment), "{} lacks {fragment}", active.body);
    }
    let json = format!(r#"{{"token":"{}"}}"#, tokens[2].0);
    let active =
        send(app.address, Method::POST, "/internal/introspect", &key, Some(("application/json", json.into_bytes())))
            .await;
    assert!(active.body.contains("\"active\":true"), "{}", active.body);
    let inactive = send(
        app.address,
        Method::POST,
        "/internal/introspect",
        &key,
        Some(("application/x-www-form-urlencoded", format!("token={revoked_token}").into_bytes())),
    )
    .await;
    assert_eq!(inactive.body, r#"{"active":false}"#);
    let missing = send(
        app.address,
        Method::POST,
        "/internal/introspect",
        &key,
        Some(("application/x-www-form-urlencoded", b"x=1".to_vec())),
    )
    .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let wrong_type =
        send(app.address, Method::POST, "/internal/introspect", &key, Some(("text/plain", b"token=x".to_vec()))).await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let all = send(app.address, Method::DELETE, &sessions_path, &key, None).await;
    assert_eq!(all.body, r#"{"revoked":2}"#);
    for (token, _) in &tokens {
        assert_eq!(verify(&app, &[("authorization", &bearer(token))]).await.status, StatusCode::UNAUTHORIZED);
    }
    let listed = send(app.address, Method::GET, &sessions_path, &key, None).await;
    assert!(listed.body.contains(r#""sessions":[]"#), "{}", listed.body);

    let metrics = send(app.address, Method::GET, "/metrics", &key, None).await;
    for fragment in [
        "tessera_http_requests_total{route=\"auth_verify\",status=\"200\"}",
        "tessera_http_requests_total{route=\"auth_verify\",status=\"401\"}",
        "tessera_auth_outcomes_total{outcome=\"valid\"}",
        "tessera_auth_outcomes_total{outcome=\"invalid\"}",
        "tessera_store_operation_seconds_bucket{le=\"+Inf\"}",
        "tessera_store_errors_total{kind=\"unavailable\"} 0",
        "tessera_cache_events_total{event=\"near_hits\"}",
        "tessera_cache_events_total{event=\"bloom_rejections\"}",
        "tessera_cache_events_total{event=\"lock_losses\"}",
        "tessera_near_cache_flushes_total{cause=\"flushed\"}",
        "tessera_near_cache_bytes",
    ] {
        assert!(metrics.body.contains(fragment), "metrics lack {fragment}:\n{}", metrics.body);
    }
    app.stop().await;
}

async fn limits_and_request_ids(backend: tests::Backend) {
    let app = app_on(backend, &[("TESSERA_MAX_BODY_BYTES", "1024")]).await;
    let key = [("x-internal-key", INTERNAL_KEY)];
    let big = format!(r#"{{"user_id":1,"metadata":{{"pad":"{}"}}}}"#, "x".repeat(2048));
    let response =
        send(app.address, Method::POST, "/internal/sessions", &key, Some(("application/json", big.into_bytes()))).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    for (body, what) in [
        ("not json", "not JSON"),
        ("[1]", "not an object"),
        (r#"{"metadata":{}}"#, "no user_id"),
        (r#"{"user_id":null}"#, "null user_id"),
        (r#"{"user_id":1.5}"#, "float user_id"),
        (r#"{"user_id":""}"#, "empty user_id"),
        (r#"{"user_id":1,"metadata":[1]}"#, "metadata not an object"),
        (r#"{"user_id":1,"ttl_seconds":0}"#, "zero ttl"),
        (r#"{"user_id":1,"ttl_seconds":-5}"#, "negative ttl"),
        (r#"{"user_id":1,"ttl_seconds":99999999999}"#, "huge ttl"),
    ] {
        let response = send(
            app.address,
            Method::POST,
            "/internal/sessions",
            &key,
            Some(("application/json", body.as_bytes().to_vec())),
        )
        .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{what}: {}", response.body);
    }
    let huge_header = "h".repeat(20 * 1024);
    let response = send(app.address, Method::GET, "/healthz", &[("x-padding", huge_header.as_str())], None).await;
    assert_eq!(response.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let propagated = send(app.address, Method::GET, "/healthz", &[("x-request-id", "req-abc.123")], None).await;
    assert_eq!(propagated.header("x-request-id"), Some("req-abc.123"));
    let replaced = send(app.address, Method::GET, "/healthz", &[("x-request-id", "bad id with spaces")], None).await;
    assert_eq!(replaced.header("x-request-id").map(str::len), Some(32), "an unusable id is replaced");
    app.stop().await;
}

/// A cache client on a test topology with no prefix: the keys exactly as another system sees them.
pub(crate) async fn raw_cache(url: &str) -> (Backend, CacheClient) {
    let settings = Settings::from_env_pairs(AppEnv::Test, &[("REDIS_URL", url)]).unwrap();
    let backend = Backend::connect_redis(&settings.redis, CacheOptions::default()).await.unwrap();
    let cache = backend.cache().clone();
    (backend, cache)
}

mod python_compatibility {
    #[tokio::test]
    async fn standalone() {
        super::python_compatibility(tests::Topology::Standalone).await;
    }

    #[tokio::test]
    async fn cluster() {
        super::python_compatibility(tests::Topology::Cluster).await;
    }
}

async fn python_compatibility(topology: Topology) {
    let app = app_on(tests::Backend::Redis(topology), &[]).await;
    let (backend, raw) = raw_cache(&topology.url()).await;
    let user = unique_user();

    // Written as the Python system writes it: orjson compact JSON with EX, then LPUSH.
    let python_token = format!("Drmhze6EPcv0fN_81Bj-{:023}", unique_user());
    let metadata = format!(r#"{{"user_id":{user},"username":"alice","roles":["admin"],"score":1.5}}"#);
    raw.set_value(&format!("token:{python_token}"), &metadata, Some(Duration::from_secs(600))).await.unwrap();
    raw.push_to_list(&format!("token_list:{user}"), &python_token, ListEnd::Left).await.unwrap();
    let verified = verify(&app, &[("authorization", &bearer(&python_token))]).await;
    assert_eq!(verified.status, StatusCode::OK);
    assert_eq!(verified.header("x-auth-user-id"), Some(user.to_string().as_str()));
    assert_eq!(verified.header("x-auth-username"), Some("alice"));
    let me = send(app.address, Method::GET, "/api/me", &[("authorization", &bearer(&python_token))], None).await;
    assert_eq!(me.body, metadata, "metadata comes back exactly as stored");

    // The Python system's logout: LREM, then DEL.
    raw.list_remove(&format!("token_list:{user}"), 0, &python_token).await.unwrap();
    raw.delete_key(&format!("token:{python_token}")).await.unwrap();
    assert_eq!(verify(&app, &[("authorization", &bearer(&python_token))]).await.status, StatusCode::UNAUTHORIZED);

    // A token issued by Tessera, read the way the Python system reads it.
    let (token, _) = issue(&app, &format!(r#"{{"user_id":{user},"metadata":{{"username":"bob"}}}}"#)).await;
    let stored = raw.get_value(&format!("token:{token}")).await.unwrap().expect("token key");
    assert!(stored.starts_with('{') && stored.contains(&format!("\"user_id\":{user}")), "{stored}");
    assert!(stored.contains("\"username\":\"bob\""), "{stored}");
    assert!(raw.get_list(&format!("token_list:{user}")).await.unwrap().contains(&token));
    assert!(matches!(raw.get_ttl(&format!("token:{token}")).await.unwrap(), cache_toolkit::Ttl::ExpiresIn(_)));
    assert!(matches!(raw.get_ttl(&format!("token_list:{user}")).await.unwrap(), cache_toolkit::Ttl::ExpiresIn(_)));

    // A string user id names the list by its text.
    let (text_token, _) = issue(&app, &format!(r#"{{"user_id":"alice-{user}"}}"#)).await;
    assert!(raw.get_list(&format!("token_list:alice-{user}")).await.unwrap().contains(&text_token));

    // Stored metadata that is not usable: 401, never 5xx.
    for (what, value) in [
        ("not JSON", "this is not json"),
        ("a JSON array", "[1,2,3]"),
        ("no user_id", r#"{"username":"x"}"#),
        ("user_id null", r#"{"user_id":null}"#),
    ] {
        let corrupt = format!("Corrupt0000000000000-{:022}", unique_user());
        raw.set_value(&format!("token:{corrupt}"), value, Some(Duration::from_secs(60))).await.unwrap();
        raw.push_to_list(&format!("token_list:{user}"), &corrupt, ListEnd::Left).await.unwrap();
        let response = verify(&app, &[("authorization", &bearer(&corrupt))]).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{what}: {}", response.body);
    }
    let wrong_type = format!("WrongType00000000000-{:022}", unique_user());
    raw.push_to_list(&format!("token:{wrong_type}"), "x", ListEnd::Left).await.unwrap();
    assert_eq!(verify(&app, &[("authorization", &bearer(&wrong_type))]).await.status, StatusCode::UNAUTHORIZED);
    backend.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_stopped_redis_gives_503_in_bounded_time_and_the_same_token_works_when_it_is_back() {
    let mut redis = PrivateRedis::start_durable();
    let url = redis.url();
    let app = spawn_app(&[
        ("REDIS_URL", &url),
        ("TESSERA_INTERNAL_KEY", INTERNAL_KEY),
        ("TESSERA_REDIS_COMMAND_TIMEOUT_MS", "500"),
        ("TESSERA_REDIS_RECONNECT_MAX_MS", "300"),
    ])
    .await;
    let (token, _) = issue(&app, r#"{"user_id":7}"#).await;
    let authorization = bearer(&token);
    assert_eq!(verify(&app, &[("authorization", &authorization)]).await.status, StatusCode::OK);

    let before = redis.commands_processed();
    let rejected = verify(&app, &[("authorization", "Bearer no*good")]).await;
    assert_eq!(rejected.status, StatusCode::UNAUTHORIZED);
    assert_eq!(redis.commands_processed() - before, 1, "only our own INFO: a malformed token costs no command");

    redis.stop();
    for path in ["/auth/verify", "/api/me"] {
        let started = Instant::now();
        let response = send(app.address, Method::GET, path, &[("authorization", &authorization)], None).await;
        let took = started.elapsed();
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {}", response.body);
        assert_eq!(response.header("retry-after"), Some("1"));
        assert!(took < Duration::from_millis(500 + 1_500), "{path}: 503 after {took:?}");
    }
    redis.restart();
    let back = Instant::now();
    loop {
        let status = verify(&app, &[("authorization", &authorization)]).await.status;
        if status == StatusCode::OK {
            break;
        }
        assert_ne!(status, StatusCode::UNAUTHORIZED, "the token must not be reported invalid");
        assert!(back.elapsed() < Duration::from_secs(5), "still {status} 5 s after Redis came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

/// Calls per command between two readings of `INFO commandstats` (the INFO itself left out).
fn calls_between(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> Vec<(String, u64)> {
    after
        .iter()
        .map(|(name, calls)| (name.clone(), calls - before.get(name).copied().unwrap_or(0)))
        .filter(|(name, calls)| *calls > 0 && name != "info")
        .collect()
}

fn calls(expected: &[(&str, u64)]) -> Vec<(String, u64)> {
    expected.iter().map(|(name, calls)| ((*name).to_owned(), *calls)).collect()
}

/// Near cache off, standalone: a token's first verification is one EVALSHA (GET and LPOS run
/// inside it); once its user is known, GET and LPOS are sent together, no script.
#[tokio::test]
async fn a_valid_token_costs_one_round_trip_on_standalone() {
    let redis = PrivateRedis::start();
    let pairs = [("REDIS_URL", redis.url()), ("TESSERA_INTERNAL_KEY", INTERNAL_KEY.to_owned())];
    let mut pairs: Vec<(&str, &str)> = pairs.iter().map(|(name, value)| (*name, value.as_str())).collect();
    pairs.push(("TESSERA_NEAR_CACHE", "off"));
    let app = spawn_app(&pairs).await;
    let (token, _) = issue(&app, r#"{"user_id":8}"#).await;
    let before = redis.command_calls();
    assert_eq!(verify(&app, &[("authorization", &bearer(&token))]).await.status, StatusCode::OK);
    let after = redis.command_calls();
    assert_eq!(
        calls_between(&before, &after),
        calls(&[("evalsha", 1), ("get", 1), ("lpos", 1)]),
        "one EVALSHA on the wire; GET and LPOS run inside it"
    );
    assert_eq!(verify(&app, &[("authorization", &bearer(&token))]).await.status, StatusCode::OK);
    let again = redis.command_calls();
    assert_eq!(
        calls_between(&after, &again),
        calls(&[("get", 1), ("lpos", 1)]),
        "verified again: its user is known, GET and LPOS are sent together"
    );
    let after = again;
    let unknown = format!("Unknown0000000000000-{:022}", unique_user());
    assert_eq!(verify(&app, &[("authorization", &bearer(&unknown))]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        calls_between(&after, &redis.command_calls()),
        calls(&[("evalsha", 1), ("get", 1)]),
        "an unknown token: one EVALSHA, whose GET finds nothing"
    );
    app.stop().await;
}

/// Near cache off: a token verified before is read with GET and LPOS sent together, the pair
/// bounded once by the command timeout (the two commands carry no timer of their own). With
/// Redis frozen it gets 503 within that bound, never a hang and never a 200, and it verifies
/// again once Redis answers.
#[tokio::test]
async fn a_token_verified_before_gets_503_within_the_command_timeout_from_a_frozen_redis() {
    let redis = PrivateRedis::start();
    let url = redis.url();
    let pairs = [
        ("REDIS_URL", url.as_str()),
        ("TESSERA_INTERNAL_KEY", INTERNAL_KEY),
        ("TESSERA_NEAR_CACHE", "off"),
        ("TESSERA_REDIS_COMMAND_TIMEOUT_MS", "500"),
    ];
    let app = spawn_app(&pairs).await;
    let (token, _) = issue(&app, r#"{"user_id":12}"#).await;
    let authorization = [("authorization", bearer(&token))];
    let authorization: Vec<(&str, &str)> = authorization.iter().map(|(name, value)| (*name, value.as_str())).collect();
    assert_eq!(verify(&app, &authorization).await.status, StatusCode::OK);
    let before = redis.command_calls();
    assert_eq!(verify(&app, &authorization).await.status, StatusCode::OK);
    assert_eq!(
        calls_between(&before, &redis.command_calls()),
        calls(&[("get", 1), ("lpos", 1)]),
        "the pair, no script"
    );

    redis.freeze();
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(5), verify(&app, &authorization)).await;
    let took = started.elapsed();
    redis.thaw();
    let response = response.expect("an answer within 5 s, not a hang on the frozen Redis");
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{}", response.body);
    assert!(took >= Duration::from_millis(400) && took < Duration::from_millis(2_000), "503 after {took:?}");
    let thawed = Instant::now();
    while verify(&app, &authorization).await.status != StatusCode::OK {
        assert!(thawed.elapsed() < Duration::from_secs(5), "not verified again 5 s after the thaw");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

/// Near cache off, standalone, every Redis reply 100 ms late: a token's first verification (the
/// script) and a later one (GET and LPOS sent together) each take one round trip, not two.
#[tokio::test]
async fn a_verification_is_one_round_trip_however_it_is_sent() {
    const LAG: Duration = Duration::from_millis(100);
    let redis = PrivateRedis::start();
    let link = tests::LaggingLink::start(redis.port()).await;
    let url = format!("redis://127.0.0.1:{}", link.port());
    let pairs = [("REDIS_URL", url.as_str()), ("TESSERA_INTERNAL_KEY", INTERNAL_KEY), ("TESSERA_NEAR_CACHE", "off")];
    let app = spawn_app(&pairs).await;
    let (token, _) = issue(&app, r#"{"user_id":81}"#).await;
    link.set_lag(LAG);
    for what in ["first verification (the script)", "verified again (GET and LPOS together)"] {
        let started = Instant::now();
        assert_eq!(verify(&app, &[("authorization", &bearer(&token))]).await.status, StatusCode::OK, "{what}");
        let took = started.elapsed();
        assert!(took >= LAG && took < LAG * 9 / 5, "{what}: {took:?} with replies {LAG:?} late: not one round trip");
    }
    app.stop().await;
}

/// With the near cache on (the default on Redis 7), a token verified before costs Redis
/// nothing: INFO commandstats shows no command for ten more verifications.
#[tokio::test]
async fn a_token_verified_before_costs_no_command_with_the_near_cache() {
    let redis = PrivateRedis::start();
    let app = spawn_app(&[("REDIS_URL", &redis.url()), ("TESSERA_INTERNAL_KEY", INTERNAL_KEY)]).await;
    let (token, _) = issue(&app, r#"{"user_id":9}"#).await;
    assert_eq!(verify(&app, &[("authorization", &bearer(&token))]).await.status, StatusCode::OK);
    let before = redis.command_calls();
    for _ in 0..10 {
        assert_eq!(verify(&app, &[("authorization", &bearer(&token))]).await.status, StatusCode::OK);
    }
    // The near cache's own heartbeat (PEXPIRE of its canaries) is not a verification.
    let spent: Vec<_> =
        calls_between(&before, &redis.command_calls()).into_iter().filter(|(name, _)| name != "pexpire").collect();
    assert_eq!(spent, calls(&[]), "ten verifications answered from memory");
    app.stop().await;
}

/// Store operations per valid verification, from the app's own metrics, with the near cache
/// off: one script call on standalone; on a cluster (the two keys are in different slots, so
/// no script), one pipelined GET + LPOS once the token's user is known; on the embedded store,
/// one lookup in process memory (the token's record, decoded once and kept; whether its list
/// holds it is remembered against the list until the list changes). With the near cache on
/// (Redis only): none.
async fn round_trips_per_verification(backend: tests::Backend) {
    for near_cache in ["off", "on"] {
        if backend == tests::Backend::Embedded && near_cache == "on" {
            continue;
        }
        let app = app_on(backend, &[("TESSERA_NEAR_CACHE", near_cache)]).await;
        let (token, _) = issue(&app, r#"{"user_id":"trips"}"#).await;
        verify(&app, &[("authorization", &bearer(&token))]).await;
        let before = store_operations(&app).await;
        for _ in 0..10 {
            assert_eq!(verify(&app, &[("authorization", &bearer(&token))]).await.status, StatusCode::OK);
        }
        let expected = if near_cache == "on" { 0 } else { 1 };
        assert_eq!(store_operations(&app).await - before, 10 * expected, "{backend}, near cache {near_cache}");
        app.stop().await;
    }
}

/// What the verification script must get right: a user id beyond 2^53, a decoy `user_id` in a
/// nested object, an id with escapes and unicode, a list key of the wrong type, a key prefix.
async fn script_edge_cases(topology: Topology) {
    let (backend, raw) = raw_cache(&topology.url()).await;
    for prefix in ["", "edge:"] {
        let app = app_on(tests::Backend::Redis(topology), &[("TESSERA_KEY_PREFIX", prefix)]).await;
        let seed = unique_user();
        let big = 9_007_199_254_740_993_u64 + seed;
        // (what, stored metadata, lists holding the token, expected status, expected X-Auth-User-Id)
        type Case = (String, String, Vec<String>, StatusCode, Option<String>);
        let cases: Vec<Case> = vec![
            (
                "big integer id".to_owned(),
                format!(r#"{{"user_id":{big},"n":1}}"#),
                vec![format!("token_list:{big}")],
                StatusCode::OK,
                Some(big.to_string()),
            ),
            (
                "decoy user_id, token in the real list".to_owned(),
                format!(r#"{{"meta":{{"user_id":{seed}}},"user_id":{}}}"#, seed + 1),
                vec![format!("token_list:{}", seed + 1)],
                StatusCode::OK,
                Some((seed + 1).to_string()),
            ),
            (
                "decoy user_id, token only in the decoy's list".to_owned(),
                format!(r#"{{"meta":{{"user_id":{seed}}},"user_id":{}}}"#, seed + 2),
                vec![format!("token_list:{seed}")],
                StatusCode::UNAUTHORIZED,
                None,
            ),
            (
                "escaped unicode id".to_owned(),
                format!(r#"{{"user_id":"al\"ice-ü-{seed}"}}"#),
                vec![format!("token_list:al\"ice-ü-{seed}")],
                StatusCode::OK,
                None,
            ),
        ];
        for (index, (what, metadata, lists, status, user_header)) in cases.into_iter().enumerate() {
            let token = format!("Edge{index}{:0>38}", format!("{seed}{}", prefix.len()));
            raw.set_value(&format!("{prefix}token:{token}"), &metadata, Some(Duration::from_secs(60))).await.unwrap();
            for list in &lists {
                raw.push_to_list(&format!("{prefix}{list}"), &token, ListEnd::Left).await.unwrap();
            }
            let response = verify(&app, &[("authorization", &bearer(&token))]).await;
            assert_eq!(response.status, status, "{topology} prefix {prefix:?}: {what}");
            if let Some(user) = user_header {
                assert_eq!(response.header("x-auth-user-id"), Some(user.as_str()), "{what}");
            }
        }
        let token = format!("WrongList{:0>34}", format!("{seed}{}", prefix.len()));
        raw.set_value(&format!("{prefix}token:{token}"), &format!(r#"{{"user_id":"wl-{seed}"}}"#), None).await.unwrap();
        raw.set_value(&format!("{prefix}token_list:wl-{seed}"), "not a list", None).await.unwrap();
        let response = verify(&app, &[("authorization", &bearer(&token))]).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{topology}: a list key of the wrong type");
        let (issued, _) = issue(&app, r#"{"user_id":"prefixed"}"#).await;
        assert_eq!(verify(&app, &[("authorization", &bearer(&issued))]).await.status, StatusCode::OK, "{prefix:?}");
        app.stop().await;
    }
    backend.close().await;
}

mod verification_path {
    #[tokio::test]
    async fn standalone_round_trips() {
        super::round_trips_per_verification(tests::Backend::Redis(tests::Topology::Standalone)).await;
    }

    #[tokio::test]
    async fn cluster_round_trips() {
        super::round_trips_per_verification(tests::Backend::Redis(tests::Topology::Cluster)).await;
    }

    #[tokio::test]
    async fn embedded_operations() {
        super::round_trips_per_verification(tests::Backend::Embedded).await;
    }

    #[tokio::test]
    async fn standalone_edge_cases() {
        super::script_edge_cases(tests::Topology::Standalone).await;
    }

    #[tokio::test]
    async fn cluster_edge_cases() {
        super::script_edge_cases(tests::Topology::Cluster).await;
    }
}

/// Every answer is `nosniff`; every answer that could carry a token, a principal, sessions or
/// introspection data — and every refusal — tells caches not to store it. Only the API
/// document may be cached.
async fn answers_are_nosniff_and_never_cached(backend: tests::Backend) {
    let app = app_on(backend, &[]).await;
    let user = unique_user();
    let issued = send(
        app.address,
        Method::POST,
        "/internal/sessions",
        &[("x-internal-key", INTERNAL_KEY)],
        Some(("application/json", format!(r#"{{"user_id":{user}}}"#).into_bytes())),
    )
    .await;
    assert_eq!(issued.status, StatusCode::CREATED);
    let token = json_field(&issued.body, "token");
    let key = [("x-internal-key", INTERNAL_KEY)];
    let auth = [("authorization", bearer(&token))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let introspect = format!(r#"{{"token":"{token}"}}"#).into_bytes();
    let answers = [
        ("issue", issued),
        ("verify", verify(&app, &auth).await),
        ("verify refused", verify(&app, &[("authorization", "Bearer unknown-token-unknown-token")]).await),
        ("me", send(app.address, Method::GET, "/api/me", &auth, None).await),
        (
            "introspect",
            send(app.address, Method::POST, "/internal/introspect", &key, Some(("application/json", introspect))).await,
        ),
        ("sessions", send(app.address, Method::GET, &format!("/internal/users/{user}/sessions"), &key, None).await),
        ("internal refused", send(app.address, Method::GET, "/internal/users/1/sessions", &[], None).await),
        ("metrics", send(app.address, Method::GET, "/metrics", &key, None).await),
        ("healthz", send(app.address, Method::GET, "/healthz", &[], None).await),
        ("not found", send(app.address, Method::GET, "/nowhere", &auth, None).await),
    ];
    for (what, answer) in &answers {
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"), "{what}: {:?}", answer.headers);
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{what}: {:?}", answer.headers);
    }
    let document = send(app.address, Method::GET, "/openapi.json", &[], None).await;
    assert_eq!(document.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(document.header("cache-control"), None, "the API document may be cached");
    app.stop().await;
}

/// RFC 7662's claims a resource server acts on (`scope`, `client_id`, `aud`, `iss`, `nbf`,
/// `jti`) are never taken from metadata; `iat` is the record's own, and metadata may not set
/// it (nor `user_id` nor `ttl_seconds`) at issue.
async fn introspection_claims_come_from_the_record_never_from_metadata(backend: tests::Backend) {
    let app = app_on(backend, &[]).await;
    let user = unique_user();
    let key = [("x-internal-key", INTERNAL_KEY)];
    let hostile = r#""scope":"admin","client_id":"evil","aud":"everyone","iss":"me","nbf":1,"jti":"x","sub":"0","exp":9999999999,"active":false,"token_type":"mac","username":"alice""#;
    let (token, _) = issue(&app, &format!(r#"{{"user_id":{user},"metadata":{{{hostile}}}}}"#)).await;
    let body = format!(r#"{{"token":"{token}"}}"#).into_bytes();
    let answer = send(app.address, Method::POST, "/internal/introspect", &key, Some(("application/json", body))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let mut bytes = answer.body.clone().into_bytes();
    let claims = simd_json::to_owned_value(&mut bytes).unwrap();
    use simd_json::prelude::{ValueAsScalar, ValueObjectAccess};
    for claim in ["scope", "client_id", "aud", "iss", "nbf", "jti"] {
        assert!(claims.get(claim).is_none(), "{claim} came from metadata: {}", answer.body);
    }
    assert_eq!(claims.get("active").and_then(|value| value.as_bool()), Some(true), "{}", answer.body);
    assert_eq!(claims.get("sub").and_then(|value| value.as_str()), Some(user.to_string().as_str()));
    assert_eq!(claims.get("token_type").and_then(|value| value.as_str()), Some("Bearer"));
    assert_eq!(claims.get("username").and_then(|value| value.as_str()), Some("alice"), "other metadata stays");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let exp = claims.get("exp").and_then(|value| value.as_u64()).unwrap();
    assert!(exp <= now + 1_800 + 5, "exp is the token's own, not metadata's: {exp}");
    let iat = claims.get("iat").and_then(|value| value.as_u64()).unwrap();
    assert!(iat + 60 >= now && iat <= now, "iat is when it was issued: {iat}");
    for field in ["iat", "user_id", "ttl_seconds"] {
        let refused = send(
            app.address,
            Method::POST,
            "/internal/sessions",
            &key,
            Some(("application/json", format!(r#"{{"user_id":{user},"metadata":{{"{field}":1}}}}"#).into_bytes())),
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{field}: {}", refused.body);
        assert!(refused.body.contains(field), "{}", refused.body);
    }
    app.stop().await;
}

/// `TESSERA_TOKEN_COOKIE`: `/auth/verify`, `/api/me` and `/api/logout` take the token from the
/// cookie when there is no `Authorization` header (the header wins when both are there, even a
/// wrong one), a malformed `Cookie` header is no token, and logout clears the cookie.
async fn a_token_cookie_serves_browser_apps(backend: tests::Backend) {
    let app = app_on(backend, &[("TESSERA_TOKEN_COOKIE", "__Host-session")]).await;
    let user = unique_user();
    let (token, _) = issue(&app, &format!(r#"{{"user_id":{user},"metadata":{{"username":"cookie"}}}}"#)).await;
    let cookie = format!("theme=dark; __Host-session={token}");
    let verified = verify(&app, &[("cookie", &cookie)]).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(verified.header("x-auth-user-id"), Some(user.to_string().as_str()));
    let me = send(app.address, Method::GET, "/api/me", &[("cookie", &cookie)], None).await;
    assert!(me.body.contains("\"username\":\"cookie\""), "{}", me.body);
    let wrong = verify(&app, &[("authorization", "Bearer unknown-token-unknown-token"), ("cookie", &cookie)]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "the header wins");
    for malformed in ["__Host-session", "=;=;", "__Host-session=", "__host-session=x"] {
        let refused = verify(&app, &[("cookie", malformed)]).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{malformed:?}: {}", refused.body);
    }
    let logout = send(app.address, Method::POST, "/api/logout", &[("cookie", &cookie)], None).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.body);
    let cleared = logout.header("set-cookie").unwrap_or_default();
    assert!(cleared.starts_with("__Host-session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    for attribute in ["Path=/", "HttpOnly", "Secure", "SameSite=Lax"] {
        assert!(cleared.contains(attribute), "{cleared} lacks {attribute}");
    }
    assert_eq!(verify(&app, &[("cookie", &cookie)]).await.status, StatusCode::UNAUTHORIZED, "logged out");
    let without = app_on(backend, &[]).await;
    let (fresh, _) = issue(&without, &format!(r#"{{"user_id":{user}}}"#)).await;
    let fresh_cookie = format!("__Host-session={fresh}");
    assert_eq!(verify(&without, &[("cookie", &fresh_cookie)]).await.status, StatusCode::UNAUTHORIZED, "off unless set");
    assert_eq!(verify(&without, &[("authorization", &bearer(&fresh))]).await.status, StatusCode::OK);
    app.stop().await;
    without.stop().await;
}
