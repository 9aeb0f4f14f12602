//! An acknowledged revocation survives a failover: with `TESSERA_REVOCATION_WAIT_MS`, logout,
//! revoke-session and revoke-all answer only once the master's replicas have the revocation
//! (WAIT), so killing the master right after the answer and promoting its replica keeps the
//! token refused. The replica replicates through a [`LaggingLink`] that delivers the master's
//! stream 300 ms late and loses what it still holds when the master dies: without the wait
//! (the control test) the promoted replica still accepts the revoked token.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};

use crate::auth_api::{INTERNAL_KEY, bearer, issue, unique_user, verify};
use tests::{LaggingLink, PrivateRedis, RespReply, TestApp, send, spawn_app};

const LAG: Duration = Duration::from_millis(300);

/// A master, a replica behind a lagging link, and a tessera on the master.
struct ReplicatedSetup {
    master: PrivateRedis,
    replica: PrivateRedis,
    _link: LaggingLink,
    app: TestApp,
}

async fn replicated_setup(lag: Duration, revocation_wait_ms: &str) -> ReplicatedSetup {
    replicated_setup_with(lag, &[("TESSERA_REVOCATION_WAIT_MS", revocation_wait_ms)]).await
}

/// [`replicated_setup`] with any settings on top of the Redis URL and the internal key.
async fn replicated_setup_with(lag: Duration, settings: &[(&str, &str)]) -> ReplicatedSetup {
    let master = PrivateRedis::start();
    let link = LaggingLink::start(master.port()).await;
    let link_port = link.port();
    // The replica's start-up polls with blocking sleeps; the link's tasks need the runtime meanwhile.
    let replica = tokio::task::spawn_blocking(move || PrivateRedis::start_replica_of(link_port)).await.unwrap();
    let url = master.url();
    let mut pairs = vec![("REDIS_URL", url.as_str()), ("TESSERA_INTERNAL_KEY", INTERNAL_KEY)];
    pairs.extend_from_slice(settings);
    let app = spawn_app(&pairs).await;
    link.set_lag(lag);
    ReplicatedSetup { master, replica, _link: link, app }
}

/// Issues a token and waits until the replica holds it too (otherwise a failover would lose
/// the token itself and prove nothing about its revocation).
async fn issue_replicated(setup: &ReplicatedSetup, user: u64) -> (String, String) {
    let (token, session) = issue(&setup.app, &format!(r#"{{"user_id":{user}}}"#)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.replica.query(&["EXISTS", &format!("token:{token}")]) != RespReply::Integer(1) {
        assert!(Instant::now() < deadline, "the replica never received the token");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(verify(&setup.app, &[("authorization", &bearer(&token))]).await.status, StatusCode::OK);
    (token, session)
}

/// Revokes `token` the named way and returns how long the answer took.
async fn revoke(app: &TestApp, way: &str, user: u64, token: &str, session: &str) -> Duration {
    let internal = [("x-internal-key", INTERNAL_KEY)];
    let started = Instant::now();
    let (status, expected) = match way {
        "logout" => {
            let authorization = bearer(token);
            let headers = [("authorization", authorization.as_str())];
            (send(app.address, Method::POST, "/api/logout", &headers, None).await.status, StatusCode::NO_CONTENT)
        }
        "revoke_session" => {
            let path = format!("/internal/users/{user}/sessions/{session}");
            (send(app.address, Method::DELETE, &path, &internal, None).await.status, StatusCode::NO_CONTENT)
        }
        "revoke_all" => {
            let path = format!("/internal/users/{user}/sessions");
            (send(app.address, Method::DELETE, &path, &internal, None).await.status, StatusCode::OK)
        }
        other => panic!("unknown way {other}"),
    };
    assert_eq!(status, expected, "{way}");
    started.elapsed()
}

/// Kills the master at once (SIGKILL), promotes the replica and answers what a tessera on the
/// promoted node says of `token`.
async fn status_after_failover(mut setup: ReplicatedSetup, token: &str) -> StatusCode {
    setup.master.stop();
    assert_eq!(setup.replica.query(&["REPLICAOF", "NO", "ONE"]), RespReply::Simple("OK".into()));
    let promoted = spawn_app(&[("REDIS_URL", &setup.replica.url())]).await;
    verify(&promoted, &[("authorization", &bearer(token))]).await.status
}

async fn replication_events(app: &TestApp, event: &str) -> u64 {
    let metrics = send(app.address, Method::GET, "/metrics", &[("x-internal-key", INTERNAL_KEY)], None).await.body;
    let line = format!("tessera_cache_events_total{{event=\"{event}\"}} ");
    metrics
        .lines()
        .find_map(|found| found.strip_prefix(line.as_str()))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_revocations_are_refused_after_failover() {
    for way in ["logout", "revoke_session", "revoke_all"] {
        let setup = replicated_setup(LAG, "5000").await;
        let user = unique_user();
        let (token, session) = issue_replicated(&setup, user).await;
        let took = revoke(&setup.app, way, user, &token, &session).await;
        assert!(took >= LAG, "{way} answered after {took:?}, before the lagging replica could have it");
        assert_eq!(replication_events(&setup.app, "replicas_acknowledged").await, 1, "{way}");
        assert_eq!(status_after_failover(setup, &token).await, StatusCode::UNAUTHORIZED, "{way}");
    }
}

/// The control: without the wait the same sequence loses the revocation, so the test above
/// tests something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_wait_a_failover_undoes_the_revocation() {
    let setup = replicated_setup(LAG, "0").await;
    let user = unique_user();
    let (token, session) = issue_replicated(&setup, user).await;
    let took = revoke(&setup.app, "logout", user, &token, &session).await;
    assert!(took < LAG, "logout without the wait took {took:?}");
    assert_eq!(status_after_failover(setup, &token).await, StatusCode::OK);
}

/// A replica slower than the wait: the revocation still answers success (it holds on the
/// master) after about the wait, and the metric counts it as unconfirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_slower_than_the_wait_is_reported() {
    let setup = replicated_setup(Duration::from_secs(2), "200").await;
    let user = unique_user();
    let (token, session) = issue_replicated(&setup, user).await;
    let took = revoke(&setup.app, "logout", user, &token, &session).await;
    assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(1_500), "logout took {took:?}");
    assert_eq!(replication_events(&setup.app, "replicas_unconfirmed").await, 1);
    assert_eq!(replication_events(&setup.app, "replicas_acknowledged").await, 0);
    assert_eq!(verify(&setup.app, &[("authorization", &bearer(&token))]).await.status, StatusCode::UNAUTHORIZED);
}

/// A master without replicas: nothing to wait for, so a long wait setting costs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_replicas_a_revocation_does_not_wait() {
    let master = PrivateRedis::start();
    let app = spawn_app(&[
        ("REDIS_URL", &master.url()),
        ("TESSERA_INTERNAL_KEY", INTERNAL_KEY),
        ("TESSERA_REVOCATION_WAIT_MS", "5000"),
    ])
    .await;
    for way in ["logout", "revoke_session", "revoke_all"] {
        let user = unique_user();
        let (token, session) = issue(&app, &format!(r#"{{"user_id":{user}}}"#)).await;
        let took = revoke(&app, way, user, &token, &session).await;
        assert!(took < Duration::from_millis(500), "{way} took {took:?} with no replica to wait for");
        assert_eq!(verify(&app, &[("authorization", &bearer(&token))]).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(replication_events(&app, "replicas_acknowledged").await, 0);
    assert_eq!(replication_events(&app, "replicas_unconfirmed").await, 0);
}

/// With `TESSERA_ISSUE_WAIT_MS`, a token answered 201 is on the replica too: killing the master
/// right after the answer and promoting the replica keeps it valid. The control run without
/// the wait loses it through the same lagging link (the failure the setting prevents).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_issue_wait_an_acknowledged_token_survives_failover() {
    for (issue_wait_ms, survives) in [("5000", true), ("0", false)] {
        let setup = replicated_setup_with(LAG, &[("TESSERA_ISSUE_WAIT_MS", issue_wait_ms)]).await;
        let started = Instant::now();
        let (token, _) = issue(&setup.app, &format!(r#"{{"user_id":{}}}"#, unique_user())).await;
        let took = started.elapsed();
        if survives {
            assert!(took >= LAG, "the issue answered after {took:?}, before the lagging replica could have it");
        } else {
            assert!(took < LAG, "the issue without the wait took {took:?}");
        }
        let expected = if survives { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
        assert_eq!(status_after_failover(setup, &token).await, expected, "TESSERA_ISSUE_WAIT_MS={issue_wait_ms}");
    }
}
