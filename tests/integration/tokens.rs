//! Token format and storage end to end (README "Tokens: format and storage"): v2 tokens and
//! their checksum (a bad one costs no Redis command), every storage mode through the HTTP API
//! on each backend, `migrate` moving a token the Python system wrote (and never leaving one
//! without a TTL, however close to its end it is used), and `hashed` leaving no token anywhere
//! in the database.

use std::time::Duration;

use hyper::{Method, StatusCode};

use auth_core::{SessionId, Token};
use cache_toolkit::{ListEnd, Ttl};
use tests::{Backend, PrivateRedis, RespReply, Topology, send, spawn_app};

use crate::auth_api::{INTERNAL_KEY, app_on, bearer, issue, raw_cache, unique_user, verify};

const KEY: [(&str, &str); 1] = [("x-internal-key", INTERNAL_KEY)];

/// A token written the Python system's way (orjson JSON with EX, then LPUSH).
fn python_token() -> String {
    format!("Pyth0n{:037}", unique_user())
}

#[tokio::test]
async fn v2_tokens_are_issued_when_asked_and_a_bad_checksum_costs_no_redis_command() {
    let redis = PrivateRedis::start();
    let url = redis.url();
    let app =
        spawn_app(&[("REDIS_URL", &url), ("TESSERA_INTERNAL_KEY", INTERNAL_KEY), ("TESSERA_TOKEN_FORMAT", "v2")]).await;
    let (token, session_id) = issue(&app, r#"{"user_id":21}"#).await;
    assert!(token.starts_with("tsr_") && token.len() == 52, "{token}");
    assert_eq!(Token::parse(&token).unwrap().session_id().as_str(), session_id);
    assert_eq!(verify(&app, &[("authorization", &bearer(&token))]).await.status, StatusCode::OK);

    // Tokens without the prefix (the Python system's) keep working.
    let python = python_token();
    redis.query(&["SET", &format!("token:{python}"), r#"{"user_id":21}"#, "EX", "600"]);
    redis.query(&["LPUSH", "token_list:21", &python]);
    assert_eq!(verify(&app, &[("authorization", &bearer(&python))]).await.status, StatusCode::OK);

    let last = token.len() - 1;
    let flipped = if token.ends_with('A') { 'B' } else { 'A' };
    let bad_checksum = format!("{}{flipped}", &token[..last]);
    let cases = [
        ("one character changed", bad_checksum),
        ("one character more", format!("{token}A")),
        ("one character less", token[..last].to_owned()),
        ("the prefix and random text", format!("tsr_{}", "x".repeat(48))),
    ];
    for (what, presented) in cases {
        let before = redis.commands_processed();
        let refused = verify(&app, &[("authorization", &bearer(&presented))]).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(redis.commands_processed() - before, 1, "{what}: only our own INFO, no command from tessera");
    }
    assert_eq!(verify(&app, &[("authorization", &bearer(&token))]).await.status, StatusCode::OK);
    app.stop().await;
}

macro_rules! in_every_mode_on_every_backend {
    ($($module:ident: $backend:expr),* $(,)?) => {
        mod storage_modes {
            $(
                mod $module {
                    #[tokio::test]
                    async fn plain() { super::super::sessions_in_storage_mode($backend, "plain").await; }
                    #[tokio::test]
                    async fn hashed() { super::super::sessions_in_storage_mode($backend, "hashed").await; }
                    #[tokio::test]
                    async fn migrate() { super::super::sessions_in_storage_mode($backend, "migrate").await; }
                }
            )*
        }
    };
}

in_every_mode_on_every_backend!(
    embedded: tests::Backend::Embedded,
    standalone: tests::Backend::Redis(tests::Topology::Standalone),
    cluster: tests::Backend::Redis(tests::Topology::Cluster),
);

/// Issue, verify, list, revoke one, log out, revoke all — in one storage mode, both formats.
async fn sessions_in_storage_mode(backend: Backend, storage: &str) {
    let app = app_on(backend, &[("TESSERA_TOKEN_STORAGE", storage), ("TESSERA_TOKEN_FORMAT", "v2")]).await;
    let raw = match backend.redis_url() {
        None => None,
        Some(url) => Some(raw_cache(&url).await),
    };
    let user = format!("{storage}-{}", unique_user());
    let mut tokens = Vec::new();
    for index in 0..3 {
        let body = format!(r#"{{"user_id":"{user}","metadata":{{"n":{index}}},"ttl_seconds":600}}"#);
        tokens.push(issue(&app, &body).await);
    }
    for (token, session_id) in &tokens {
        let verified = verify(&app, &[("authorization", &bearer(token))]).await;
        assert_eq!(verified.status, StatusCode::OK, "{storage}");
        assert_eq!(verified.header("x-auth-user-id"), Some(user.as_str()));
        assert_eq!(Token::parse(token).unwrap().session_id().as_str(), session_id, "{storage}");
    }
    if let Some((_, raw)) = &raw {
        let list = raw.get_list(&format!("token_list:{user}")).await.unwrap();
        assert_eq!(list.len(), 3, "{storage}: {list:?}");
        for (token, session_id) in &tokens {
            let plain_key = raw.get_value(&format!("token:{token}")).await.unwrap();
            if storage == "plain" {
                assert!(plain_key.is_some() && list.contains(token), "{storage}: the Python system's keys");
            } else {
                assert!(plain_key.is_none() && !list.contains(token), "{storage}: no token at rest");
                let entry = format!("sha256:{}", hashed_digest_of(&list, session_id));
                assert!(raw.get_value(&format!("token:{entry}")).await.unwrap().is_some(), "{storage}");
            }
        }
    }

    let sessions_path = format!("/internal/users/{user}/sessions");
    let listed = send(app.address, Method::GET, &sessions_path, &KEY, None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    for (token, session_id) in &tokens {
        assert!(listed.body.contains(session_id.as_str()), "{storage}: {} lacks {session_id}", listed.body);
        assert!(!listed.body.contains(token.as_str()), "a token leaked in the session list");
    }

    let (revoked, revoked_session) = &tokens[1];
    let deleted = send(app.address, Method::DELETE, &format!("{sessions_path}/{revoked_session}"), &KEY, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{storage}");
    assert_eq!(verify(&app, &[("authorization", &bearer(revoked))]).await.status, StatusCode::UNAUTHORIZED);

    let (logged_out, _) = &tokens[0];
    let logout = send(app.address, Method::POST, "/api/logout", &[("authorization", &bearer(logged_out))], None).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{storage}");
    assert_eq!(verify(&app, &[("authorization", &bearer(logged_out))]).await.status, StatusCode::UNAUTHORIZED);

    let (remaining, remaining_session) = &tokens[2];
    let me = send(app.address, Method::GET, "/api/me", &[("authorization", &bearer(remaining))], None).await;
    assert!(me.status == StatusCode::OK && me.body.contains(r#""n":2"#), "{storage}: {}", me.body);
    let listed = send(app.address, Method::GET, &sessions_path, &KEY, None).await;
    assert_eq!(listed.body.matches("\"session_id\"").count(), 1, "{storage}: {}", listed.body);
    assert!(listed.body.contains(remaining_session.as_str()), "{}", listed.body);

    let all = send(app.address, Method::DELETE, &sessions_path, &KEY, None).await;
    assert_eq!(all.body, r#"{"revoked":1}"#, "{storage}");
    assert_eq!(verify(&app, &[("authorization", &bearer(remaining))]).await.status, StatusCode::UNAUTHORIZED);
    if let Some((backend, raw)) = raw {
        assert!(raw.get_list(&format!("token_list:{user}")).await.unwrap().is_empty(), "{storage}");
        backend.close().await;
    }
    app.stop().await;
}

/// The hex digest of the hashed list entry whose session id is `session_id`.
fn hashed_digest_of(list: &[String], session_id: &str) -> String {
    list.iter()
        .filter_map(|entry| entry.strip_prefix("sha256:"))
        .find(|digest| SessionId::from_token_digest_hex(digest).is_some_and(|id| id.as_str() == session_id))
        .unwrap_or_else(|| panic!("no hashed entry for session {session_id} in {list:?}"))
        .to_owned()
}

mod migrate_moves_a_python_token {
    #[tokio::test]
    async fn standalone() {
        super::migrate_moves_a_python_token_on_first_use(tests::Topology::Standalone).await;
    }

    #[tokio::test]
    async fn cluster() {
        super::migrate_moves_a_python_token_on_first_use(tests::Topology::Cluster).await;
    }
}

/// Standalone moves with one script; a cluster with separate commands.
async fn migrate_moves_a_python_token_on_first_use(topology: Topology) {
    let app = app_on(tests::Backend::Redis(topology), &[("TESSERA_TOKEN_STORAGE", "migrate")]).await;
    let (backend, raw) = raw_cache(&topology.url()).await;
    let user = unique_user();
    let list = format!("token_list:{user}");
    let python = python_token();
    let session_id = Token::parse(&python).unwrap().session_id();
    let metadata = format!(r#"{{"user_id":{user},"username":"alice","roles":["admin"]}}"#);
    raw.set_value(&format!("token:{python}"), &metadata, Some(Duration::from_secs(600))).await.unwrap();
    raw.push_to_list(&list, &python, ListEnd::Left).await.unwrap();
    let (issued, _) = issue(&app, &format!(r#"{{"user_id":{user}}}"#)).await;

    let verified = verify(&app, &[("authorization", &bearer(&python))]).await;
    assert_eq!(verified.status, StatusCode::OK, "{topology}");
    assert_eq!(raw.get_value(&format!("token:{python}")).await.unwrap(), None, "the plain key is gone");
    let entries = raw.get_list(&list).await.unwrap();
    assert!(!entries.contains(&python), "the plain entry is gone: {entries:?}");
    assert_eq!(entries.len(), 2, "{entries:?}");
    let hashed_key = format!("token:sha256:{}", hashed_digest_of(&entries, session_id.as_str()));
    assert_eq!(raw.get_value(&hashed_key).await.unwrap().as_deref(), Some(metadata.as_str()), "moved verbatim");
    match raw.get_ttl(&hashed_key).await.unwrap() {
        Ttl::ExpiresIn(left) => assert!(left <= Duration::from_secs(600) && left > Duration::from_secs(60), "{left:?}"),
        other => panic!("the moved token keeps its expiry, got {other:?}"),
    }

    for _ in 0..2 {
        assert_eq!(verify(&app, &[("authorization", &bearer(&python))]).await.status, StatusCode::OK, "still valid");
    }
    let me = send(app.address, Method::GET, "/api/me", &[("authorization", &bearer(&python))], None).await;
    assert_eq!(me.body, metadata);
    let listed = send(app.address, Method::GET, &format!("/internal/users/{user}/sessions"), &KEY, None).await;
    assert!(listed.body.contains(session_id.as_str()), "the same session id after the move: {}", listed.body);
    assert_eq!(verify(&app, &[("authorization", &bearer(&issued))]).await.status, StatusCode::OK);

    let logout = send(app.address, Method::POST, "/api/logout", &[("authorization", &bearer(&python))], None).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(verify(&app, &[("authorization", &bearer(&python))]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(raw.get_value(&hashed_key).await.unwrap(), None);
    assert_eq!(raw.get_list(&list).await.unwrap().len(), 1, "only the issued token is left");
    backend.close().await;
    app.stop().await;
}

mod migrate_never_leaves_a_token_without_a_ttl {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn standalone() {
        super::migrate_never_leaves_a_token_without_a_ttl(tests::Topology::Standalone).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster() {
        super::migrate_never_leaves_a_token_without_a_ttl(tests::Topology::Cluster).await;
    }
}

/// Python-written tokens of 1 to 3 ms are verified in `migrate` storage from the moment they
/// are written until they are gone, many at once: the move to the hashed form runs in every
/// token's last milliseconds, where Redis's PTTL answers 0. Afterwards no key of theirs, plain
/// or hashed, is without a TTL (a PTTL of 0 taken for "no expiry" made immortal tokens).
async fn migrate_never_leaves_a_token_without_a_ttl(topology: Topology) {
    use auth_core::{AuthPolicy, Authenticator, Verification};
    use dao::{CacheDao, TokenStorage};

    const TASKS: u64 = 8;
    const TOKENS_PER_TASK: u64 = 60;
    let (backend, raw) = raw_cache(&topology.url()).await;
    let auth = Authenticator::new(CacheDao::with_storage(raw.clone(), TokenStorage::Migrate), AuthPolicy::default());
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (raw, auth) = (raw.clone(), auth.clone());
        tasks.spawn(async move {
            let mut written = Vec::new();
            for index in 0..TOKENS_PER_TASK {
                let user = unique_user();
                let token = python_token();
                let ttl = Duration::from_millis(1 + (task + index) % 3);
                raw.push_to_list(&format!("token_list:{user}"), &token, ListEnd::Left).await.unwrap();
                raw.set_value(&format!("token:{token}"), &format!(r#"{{"user_id":{user}}}"#), Some(ttl)).await.unwrap();
                let started = std::time::Instant::now();
                while let Ok(Verification::Valid(_)) = auth.verify(&token).await {
                    assert!(started.elapsed() < Duration::from_secs(2), "a {ttl:?} token still valid after 2 s");
                }
                written.push(token);
            }
            written
        });
    }
    let mut checked = 0;
    for token in tasks.join_all().await.into_iter().flatten() {
        let digest = crate::secrets_in_logs::sha256_hex(&token);
        for key in [format!("token:{token}"), format!("token:sha256:{digest}")] {
            let ttl = raw.get_ttl(&key).await.unwrap();
            assert_ne!(ttl, Ttl::NoExpiry, "{key} was left without a TTL");
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * TASKS * TOKENS_PER_TASK);
    backend.close().await;
}

/// Every key name, string value and list entry of the whole database, read with SCAN, TYPE,
/// GET and LRANGE.
fn everything_stored(redis: &PrivateRedis) -> Vec<String> {
    let mut texts = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let reply = redis.query(&["SCAN", &cursor, "COUNT", "1000"]);
        let [next, keys] = reply.items() else { panic!("unexpected SCAN reply {reply:?}") };
        for key in keys.items() {
            let key = key.text();
            match redis.query(&["TYPE", &key]).text().as_str() {
                "string" => texts.push(redis.query(&["GET", &key]).text()),
                "list" => texts.extend(redis.query(&["LRANGE", &key, "0", "-1"]).items().iter().map(RespReply::text)),
                "none" => {}
                other => panic!("unexpected type {other} at {key}"),
            }
            texts.push(key);
        }
        cursor = next.text();
        if cursor == "0" {
            return texts;
        }
    }
}

#[tokio::test]
async fn hashed_storage_keeps_no_token_anywhere_in_the_database() {
    let redis = PrivateRedis::start();
    let url = redis.url();
    let mut tokens = Vec::new();
    for format in ["v1", "v2"] {
        let app = spawn_app(&[
            ("REDIS_URL", &url),
            ("TESSERA_INTERNAL_KEY", INTERNAL_KEY),
            ("TESSERA_TOKEN_STORAGE", "hashed"),
            ("TESSERA_TOKEN_FORMAT", format),
            ("TESSERA_SLIDING_EXPIRY", "true"),
        ])
        .await;
        for user in ["1", "1", "\"alice\"", "2"] {
            let (token, _) = issue(&app, &format!(r#"{{"user_id":{user},"metadata":{{"plan":"pro"}}}}"#)).await;
            assert_eq!(verify(&app, &[("authorization", &bearer(&token))]).await.status, StatusCode::OK);
            tokens.push(token);
        }
        let listed = send(app.address, Method::GET, "/internal/users/1/sessions", &KEY, None).await;
        assert_eq!(listed.status, StatusCode::OK);
        app.stop().await;
    }
    let stored = everything_stored(&redis);
    assert!(stored.iter().filter(|text| text.starts_with("token:sha256:")).count() >= tokens.len(), "{stored:?}");
    for token in &tokens {
        let body = token.strip_prefix("tsr_").unwrap_or(token);
        for text in &stored {
            assert!(!text.contains(body), "a token is stored in `{text}`");
        }
    }

    // The same reading finds a token stored plain: the check above can fail.
    let plain = spawn_app(&[("REDIS_URL", &url), ("TESSERA_INTERNAL_KEY", INTERNAL_KEY)]).await;
    let (token, _) = issue(&plain, r#"{"user_id":3}"#).await;
    let found = everything_stored(&redis).iter().filter(|text| text.contains(&token)).count();
    assert_eq!(found, 2, "a plain token is in its key name and in its list");
    plain.stop().await;
}
