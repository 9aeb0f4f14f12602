//! Sentinel failover under load: tessera follows the primary the sentinels announce. A primary,
//! one replica and three sentinels (quorum 2) of our own; tessera is given a dead sentinel
//! first and the three live ones after it. Workers issue tokens and verify tokens already
//! acknowledged while the sentinels fail over, first gracefully (`SENTINEL FAILOVER`), then by
//! a SIGKILL of the new primary. Then: every token acknowledged with 201 is still valid, no
//! valid token was ever refused with 401, and the only failures were 503s, whose window is
//! printed. Without the sentinel watch the graceful failover loses tokens: writes keep going to
//! the old primary until the sentinels demote it (docs/SENTINEL.md).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use hyper::{Method, StatusCode};

use crate::auth_api::{INTERNAL_KEY, bearer, json_field, verify};
use tests::{PrivateRedis, RespReply, TestApp, free_port, send, spawn_app};

const SERVICE: &str = "tessera-failover";
const WORKERS: usize = 6;
/// A phase ends this long after the new primary answered; it never lasts longer than the bound.
const SETTLED: Duration = Duration::from_secs(1);
const PHASE_BOUND: Duration = Duration::from_secs(30);

/// The Redis side: two data nodes (primary and replica, in either role) and the sentinels.
struct Deployment {
    nodes: Vec<PrivateRedis>,
    sentinels: Vec<PrivateRedis>,
}

impl Deployment {
    /// The deployment and a tessera following it.
    async fn start() -> (Self, TestApp) {
        Self::start_with(&[]).await
    }

    /// The deployment and a tessera following it, with `settings` on top of the test's.
    async fn start_with(settings: &[(&str, &str)]) -> (Self, TestApp) {
        let primary = PrivateRedis::start();
        let primary_port = primary.port();
        let (replica, sentinels) = tokio::task::spawn_blocking(move || {
            let replica = PrivateRedis::start_replica_of(primary_port);
            let sentinels: Vec<PrivateRedis> = (0..3)
                .map(|_| PrivateRedis::start_sentinel(primary_port, SERVICE, 2, Duration::from_millis(1_000)))
                .collect();
            wait_until_sentinels_know_each_other(&sentinels);
            (replica, sentinels)
        })
        .await
        .unwrap();
        let mut url = format!("redis-sentinel://127.0.0.1:{}/0?sentinelServiceName={SERVICE}", free_port());
        for sentinel in &sentinels {
            url.push_str(&format!("&node=127.0.0.1:{}", sentinel.port()));
        }
        let mut all = vec![("REDIS_URL", url.as_str()), ("TESSERA_INTERNAL_KEY", INTERNAL_KEY)];
        all.extend_from_slice(settings);
        let app = spawn_app(&all).await;
        (Self { nodes: vec![primary, replica], sentinels }, app)
    }

    /// The node the sentinels' majority names as primary, by port.
    fn primary_port(&self) -> u16 {
        let reply = self.sentinels[0].query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE]);
        reply.items()[1].text().parse().unwrap()
    }

    fn node(&self, port: u16) -> &PrivateRedis {
        self.nodes.iter().find(|node| node.port() == port).unwrap()
    }

    /// Waits until `port` is the primary and the other node replicates from it, link up.
    async fn wait_for_primary(&self, port: u16) {
        let deadline = Instant::now() + PHASE_BOUND;
        loop {
            let settled = self.sentinels.iter().all(|sentinel| {
                let reply = sentinel.query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE]);
                reply.items().get(1).map(RespReply::text) == Some(port.to_string())
            }) && self.nodes.iter().filter(|node| node.port() != port).all(|node| {
                let info = node.query(&["INFO", "replication"]).text();
                info.contains(&format!("master_port:{port}")) && info.contains("master_link_status:up")
            }) && self.node(port).query(&["ROLE"]).items().first().map(RespReply::text).as_deref()
                == Some("master");
            if settled {
                return;
            }
            assert!(Instant::now() < deadline, "the failover to port {port} did not settle within {PHASE_BOUND:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn wait_until_sentinels_know_each_other(sentinels: &[PrivateRedis]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let known = sentinels.iter().all(|sentinel| {
            let fields = sentinel.query(&["SENTINEL", "MASTER", SERVICE]);
            let field = |name: &str| {
                let items = fields.items();
                items.iter().position(|item| item.text() == name).map(|at| items[at + 1].text())
            };
            field("num-other-sentinels").as_deref() == Some("2") && field("num-slaves").as_deref() == Some("1")
        });
        if known {
            return;
        }
        assert!(Instant::now() < deadline, "the sentinels did not discover each other and the replica within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sentinel watch's log, shown when a test fails (or with `--nocapture`).
fn show_logs() {
    let _ = tracing_subscriber::fmt().with_env_filter("infra=debug").with_test_writer().try_init();
}

/// What the workers saw during one phase.
#[derive(Debug, Default)]
struct Observed {
    /// Tokens acknowledged with 201.
    acknowledged: Vec<String>,
    issued: u64,
    verified: u64,
    /// Answers other than 201/200, by status, with when they came.
    unavailable: Vec<Instant>,
    refused: Vec<String>,
    other: Vec<String>,
}

/// Runs the workers until `failover` is over, then for [`SETTLED`] more; `known` are tokens
/// acknowledged earlier, verified as well. `failover` answers when the new primary first
/// answered `ROLE` as a master.
async fn under_load(app: &TestApp, known: Vec<String>, failover: impl Future<Output = Instant>) -> (Observed, Instant) {
    let observed = Arc::new(Mutex::new(Observed { acknowledged: known, ..Observed::default() }));
    let stop = Arc::new(AtomicBool::new(false));
    let address = app.address;
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (observed, stop) = (Arc::clone(&observed), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut round = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    // A user per token: the session cap never evicts one.
                    let user = (worker as u64 + 1) * 1_000_000_000 + round;
                    let body = format!(r#"{{"user_id":{user}}}"#).into_bytes();
                    let headers = [("x-internal-key", INTERNAL_KEY)];
                    let issued =
                        send(address, Method::POST, "/internal/sessions", &headers, Some(("application/json", body)))
                            .await;
                    let token = {
                        let mut seen = observed.lock().unwrap();
                        seen.issued += 1;
                        match issued.status {
                            StatusCode::CREATED => seen.acknowledged.push(json_field(&issued.body, "token")),
                            StatusCode::SERVICE_UNAVAILABLE => seen.unavailable.push(Instant::now()),
                            status => seen.other.push(format!("issue: {status} {}", issued.body)),
                        }
                        // One of the 50 newest acknowledged tokens.
                        let count = seen.acknowledged.len();
                        (count > 0).then(|| seen.acknowledged[count - 1 - (round as usize * 7) % count.min(50)].clone())
                    };
                    let Some(token) = token else { continue };
                    let authorization = bearer(&token);
                    let answer =
                        send(address, Method::GET, "/auth/verify", &[("authorization", &authorization)], None).await;
                    let mut seen = observed.lock().unwrap();
                    seen.verified += 1;
                    match answer.status {
                        StatusCode::OK => {}
                        StatusCode::SERVICE_UNAVAILABLE => seen.unavailable.push(Instant::now()),
                        StatusCode::UNAUTHORIZED => seen.refused.push(token),
                        status => seen.other.push(format!("verify: {status} {}", answer.body)),
                    }
                }
            })
        })
        .collect();
    let promoted = failover.await;
    tokio::time::sleep(SETTLED).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    (Arc::try_unwrap(observed).unwrap().into_inner().unwrap(), promoted)
}

/// Waits (bounded) until tessera issues tokens again after a failover.
async fn wait_until_serving(app: &TestApp) {
    let deadline = Instant::now() + PHASE_BOUND;
    loop {
        let body = br#"{"user_id":1}"#.to_vec();
        let headers = [("x-internal-key", INTERNAL_KEY)];
        let answer =
            send(app.address, Method::POST, "/internal/sessions", &headers, Some(("application/json", body))).await;
        if answer.status == StatusCode::CREATED {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tessera did not issue tokens again within {PHASE_BOUND:?}: {}",
            answer.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every acknowledged token, verified now: those refused.
async fn lost(app: &TestApp, acknowledged: &[String]) -> Vec<String> {
    let mut lost = Vec::new();
    for token in acknowledged {
        let status = verify(app, &[("authorization", &bearer(token))]).await.status;
        if status != StatusCode::OK {
            lost.push(format!("{token}: {status}"));
        }
    }
    lost
}

/// Prints the phase's figures; answers how long after the promotion the last 503 came.
fn report(phase: &str, started: Instant, promoted: Instant, observed: &Observed) -> Duration {
    let since_start = |at: Instant| at.duration_since(started).as_millis();
    let window = match (observed.unavailable.first(), observed.unavailable.last()) {
        (Some(first), Some(last)) => format!(
            "503 from {} ms to {} ms after the failover began ({} ms); the new primary answered as master at {} ms",
            since_start(*first),
            since_start(*last),
            last.duration_since(*first).as_millis(),
            since_start(promoted)
        ),
        _ => "no 503".to_owned(),
    };
    eprintln!(
        "sentinel {phase} failover: {} issues, {} verifications, {} tokens acknowledged, {} answers 503: {window}",
        observed.issued,
        observed.verified,
        observed.acknowledged.len(),
        observed.unavailable.len()
    );
    observed.unavailable.last().map_or(Duration::ZERO, |last| last.saturating_duration_since(promoted))
}

/// Waits until the node on `port` answers `ROLE` as a master; when it first did. The promotion
/// kills the node's client connections (sentinel's `CLIENT KILL TYPE normal`), so a question
/// cut off by it counts as "not yet".
async fn promoted(deployment: &Deployment, port: u16) -> Instant {
    let node = deployment.node(port);
    let deadline = Instant::now() + PHASE_BOUND;
    let is_master = || {
        node.try_query(&["ROLE"])
            .is_ok_and(|role| role.items().first().map(RespReply::text).as_deref() == Some("master"))
    };
    while !is_master() {
        assert!(Instant::now() < deadline, "the node on port {port} never answered ROLE as master");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Instant::now()
}

/// Commands are refused only until the sentinels have announced the promoted primary and the
/// connections are on it: the sentinels see a promotion in the replica's `INFO`, polled once a
/// second during a failover, so the announcement comes up to about a second after it (1.3 s
/// to 1.6 s measured in all). A 503 long after that would mean tessera failed to follow.
const TAIL_BOUND: Duration = Duration::from_millis(3_000);

fn assert_nothing_lost(phase: &str, observed: &Observed, lost: &[String]) {
    assert!(
        observed.refused.is_empty(),
        "{phase}: valid tokens refused with 401 during the failover: {:?}",
        observed.refused
    );
    assert!(observed.other.is_empty(), "{phase}: answers other than 201, 200 and 503: {:?}", observed.other);
    assert!(lost.is_empty(), "{phase}: {} acknowledged tokens lost: {:?}", lost.len(), &lost[..lost.len().min(5)]);
    assert!(
        observed.issued > 100 && observed.verified > 100,
        "{phase}: too little load to show anything: {observed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_and_hard_failovers_lose_no_acknowledged_token() {
    show_logs();
    let (mut deployment, app) = Deployment::start().await;
    let first_primary = deployment.primary_port();

    // Graceful: the sentinels promote the replica while the old primary still answers.
    let replica = deployment.nodes.iter().map(PrivateRedis::port).find(|port| *port != first_primary).unwrap();
    let started = Instant::now();
    let (graceful, promoted_at) = under_load(&app, Vec::new(), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(deployment.sentinels[0].query(&["SENTINEL", "FAILOVER", SERVICE]), RespReply::Simple("OK".into()));
        let promoted_at = promoted(&deployment, replica).await;
        deployment.wait_for_primary(replica).await;
        wait_until_serving(&app).await;
        promoted_at
    })
    .await;
    let tail = report("graceful", started, promoted_at, &graceful);
    let lost_tokens = lost(&app, &graceful.acknowledged).await;
    assert_nothing_lost("graceful", &graceful, &lost_tokens);
    assert!(tail <= TAIL_BOUND, "graceful: 503 until {tail:?} after the promotion");

    // Hard: the new primary dies (SIGKILL); the sentinels promote the first one again.
    assert_eq!(deployment.primary_port(), replica);
    let started = Instant::now();
    let (hard, promoted_at) = under_load(&app, graceful.acknowledged, async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        deployment.nodes.iter_mut().find(|node| node.port() == replica).unwrap().stop();
        let promoted_at = promoted(&deployment, first_primary).await;
        let deadline = Instant::now() + PHASE_BOUND;
        while deployment.primary_port() != first_primary {
            assert!(Instant::now() < deadline, "the sentinels did not name the promoted replica");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        wait_until_serving(&app).await;
        promoted_at
    })
    .await;
    let tail = report("hard", started, promoted_at, &hard);
    let lost_tokens = lost(&app, &hard.acknowledged).await;
    assert_nothing_lost("hard", &hard, &lost_tokens);
    assert!(tail <= TAIL_BOUND, "hard: 503 until {tail:?} after the promotion");
    app.stop().await;
}

/// The primary becomes a replica behind the sentinels' back (an operator's `REPLICAOF`): a
/// write that reaches it is refused (`READONLY`) and answered 503, never 201, and commands stay
/// refused while the sentinels name a node that answers `ROLE` as a replica. Once they name
/// the node that is the primary now, tessera reconnects there by itself and issues again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_reaches_a_replica_is_never_acknowledged() {
    show_logs();
    let (deployment, app) = Deployment::start().await;
    let old_primary = deployment.primary_port();
    let new_primary = deployment.nodes.iter().map(PrivateRedis::port).find(|port| *port != old_primary).unwrap();
    let before = issue_token(&app).await;
    assert_eq!(before.0, StatusCode::CREATED);

    assert_eq!(deployment.node(new_primary).query(&["REPLICAOF", "NO", "ONE"]), RespReply::Simple("OK".into()));
    let port = new_primary.to_string();
    assert_eq!(deployment.node(old_primary).query(&["REPLICAOF", "127.0.0.1", &port]), RespReply::Simple("OK".into()));

    // The sentinels still name the old primary, a replica now: nothing is acknowledged.
    let refused_until = Instant::now() + Duration::from_millis(1_500);
    let mut answers = 0;
    while Instant::now() < refused_until {
        let (status, _) = issue_token(&app).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "a write on a replica was answered {status}");
        answers += 1;
    }
    assert!(answers > 10, "only {answers} attempts");
    // Commands are refused (the gate is closed, the connections are being moved): not ready.
    let readiness = send(app.address, Method::GET, "/readyz", &[], None).await;
    assert_eq!(readiness.status, StatusCode::SERVICE_UNAVAILABLE, "/readyz while commands are refused: {readiness:?}");

    // The sentinels are told where the primary is; tessera follows without a restart.
    let started = Instant::now();
    for sentinel in &deployment.sentinels {
        assert_eq!(sentinel.query(&["SENTINEL", "REMOVE", SERVICE]), RespReply::Simple("OK".into()));
        assert_eq!(
            sentinel.query(&["SENTINEL", "MONITOR", SERVICE, "127.0.0.1", &port, "2"]),
            RespReply::Simple("OK".into())
        );
    }
    wait_until_serving(&app).await;
    eprintln!("sentinel re-pointed: tessera issued again after {} ms", started.elapsed().as_millis());
    assert_eq!(send(app.address, Method::GET, "/readyz", &[], None).await.status, StatusCode::OK);
    let (status, token) = issue_token(&app).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(deployment.node(new_primary).query(&["EXISTS", &format!("token:{token}")]), RespReply::Integer(1));
    let authorization = bearer(&before.1);
    assert_eq!(verify(&app, &[("authorization", &authorization)]).await.status, StatusCode::OK);
    app.stop().await;
}

/// Issues a token for a fresh user: the answer's status and, on 201, the token.
async fn issue_token(app: &TestApp) -> (StatusCode, String) {
    let user = crate::auth_api::unique_user();
    let body = format!(r#"{{"user_id":{user}}}"#).into_bytes();
    let headers = [("x-internal-key", INTERNAL_KEY)];
    let answer =
        send(app.address, Method::POST, "/internal/sessions", &headers, Some(("application/json", body))).await;
    let token = if answer.status == StatusCode::CREATED { json_field(&answer.body, "token") } else { String::new() };
    (answer.status, token)
}

/// A graceful failover while one of the three sentinels is frozen (SIGSTOP: connected, never
/// answering) and tessera's event connection to another is cut mid-failover (it resubscribes
/// while the old primary still answers as master). The gate must close on the leader's
/// `+selected-slave` without waiting for the frozen sentinel, must not reopen on the old primary
/// when the connection comes back, and no acknowledged token may be lost.
///
/// The frozen sentinel is thawed [`FROZEN_AFTER_PROMOTION`] after the promotion: fred 10.1's
/// own sentinel discovery (which reconnects the pool) stops at the first sentinel that accepts
/// a TCP connection, so a frozen sentinel it happens to try first blocks every reconnection
/// until it answers (docs/SENTINEL.md, "Limits"); commands stay refused meanwhile.
const FROZEN_AFTER_PROMOTION: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_with_a_frozen_sentinel_and_a_cut_event_connection_loses_no_token() {
    show_logs();
    let (deployment, app) = Deployment::start().await;
    let first_primary = deployment.primary_port();
    let replica = deployment.nodes.iter().map(PrivateRedis::port).find(|port| *port != first_primary).unwrap();
    deployment.sentinels[2].freeze();
    let started = Instant::now();
    let (observed, promoted_at) = under_load(&app, Vec::new(), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(deployment.sentinels[0].query(&["SENTINEL", "FAILOVER", SERVICE]), RespReply::Simple("OK".into()));
        // Sentinels publish their events on connections of type pubsub: tessera's listener.
        let cut = deployment.sentinels[1].query(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        assert!(matches!(cut, RespReply::Integer(killed) if killed >= 1), "no event connection to cut: {cut:?}");
        let promoted_at = promoted(&deployment, replica).await;
        let deadline = Instant::now() + PHASE_BOUND;
        while deployment.primary_port() != replica {
            assert!(Instant::now() < deadline, "the sentinels did not name the promoted replica");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(FROZEN_AFTER_PROMOTION.saturating_sub(promoted_at.elapsed())).await;
        deployment.sentinels[2].thaw();
        wait_until_serving(&app).await;
        promoted_at
    })
    .await;
    let tail = report("graceful, one sentinel frozen", started, promoted_at, &observed);
    let lost_tokens = lost(&app, &observed.acknowledged).await;
    assert_nothing_lost("graceful, one sentinel frozen", &observed, &lost_tokens);
    assert!(tail <= FROZEN_AFTER_PROMOTION + TAIL_BOUND, "503 until {tail:?} after the promotion");
    app.stop().await;
}

/// The near cache's `max_silence` (its default): how long a cached entry may be served after
/// its connection last proved alive.
const MAX_SILENCE: Duration = Duration::from_millis(750);

/// A graceful failover while a token is cached in the near cache: once the new primary answers,
/// the token is revoked there directly (as another instance that already follows it, or the
/// Python system, would). The old primary still answers, so its connections' heartbeats would
/// keep vouching for the cached entry; the revocation must be honoured within `max_silence`
/// of being written, with 503s (not 200s) while tessera moves to the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_the_new_primary_during_a_graceful_failover_is_honoured_within_max_silence() {
    show_logs();
    let (deployment, app) = Deployment::start_with(&[("TESSERA_NEAR_CACHE", "on")]).await;
    let old_primary = deployment.primary_port();
    let new_primary = deployment.nodes.iter().map(PrivateRedis::port).find(|port| *port != old_primary).unwrap();
    let (status, token) = issue_token(&app).await;
    assert_eq!(status, StatusCode::CREATED);
    let authorization = bearer(&token);
    for _ in 0..20 {
        assert_eq!(verify(&app, &[("authorization", &authorization)]).await.status, StatusCode::OK);
    }

    assert_eq!(deployment.sentinels[0].query(&["SENTINEL", "FAILOVER", SERVICE]), RespReply::Simple("OK".into()));
    let verifying = {
        let address = app.address;
        let authorization = authorization.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let deadline = Instant::now() + PHASE_BOUND;
            while Instant::now() < deadline {
                let answer =
                    send(address, Method::GET, "/auth/verify", &[("authorization", &authorization)], None).await;
                answers.push((Instant::now(), answer.status));
                if answer.status == StatusCode::UNAUTHORIZED {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            answers
        })
    };
    promoted(&deployment, new_primary).await;
    let revoked = deployment.node(new_primary).query(&["DEL", &format!("token:{token}")]);
    let revoked_at = Instant::now();
    assert_eq!(revoked, RespReply::Integer(1), "the token is on the new primary");
    let answers = verifying.await.unwrap();

    let (refused_at, _) = *answers.last().unwrap();
    assert_eq!(answers.last().unwrap().1, StatusCode::UNAUTHORIZED, "the revoked token was never refused");
    let last_valid = answers.iter().rev().find(|(_, status)| *status == StatusCode::OK).map(|(at, _)| *at);
    let served_after = last_valid.map_or(Duration::ZERO, |at| at.saturating_duration_since(revoked_at));
    let others: Vec<_> = answers
        .iter()
        .filter(|(_, status)| {
            ![StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE, StatusCode::UNAUTHORIZED].contains(status)
        })
        .collect();
    eprintln!(
        "sentinel graceful failover, token revoked on the new primary: {} verifications, {} answered 503, the last \
         200 {served_after:?} after the revocation, refused {:?} after it",
        answers.len(),
        answers.iter().filter(|(_, status)| *status == StatusCode::SERVICE_UNAVAILABLE).count(),
        refused_at.saturating_duration_since(revoked_at),
    );
    assert!(others.is_empty(), "answers other than 200, 503 and 401: {others:?}");
    assert!(served_after <= MAX_SILENCE, "the revoked token was served {served_after:?} after its revocation");
    app.stop().await;
}
