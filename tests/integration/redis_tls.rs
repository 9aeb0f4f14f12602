//! TLS to Redis against real `redis-server`s started with `--tls-port` and certificates each
//! test makes: a trusted CA connects (standalone, a one-node cluster, a six-node cluster through
//! a dead primary, sentinel), the near cache
//! works over it; a wrong CA, a certificate for another name, a missing client certificate and
//! a plaintext URL to the TLS port all fail at start-up with one clear line — never a silent
//! plaintext connection. The real `tessera` binary is run both ways.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use cache_toolkit::{CacheOptions, NearCacheSettings};
use config::{AppEnv, Settings};
use hyper::StatusCode;
use infra::{Backend, InfraError};
use tokio::net::TcpStream;

use tests::{
    ClientCertificates, PrivateCluster, PrivateRedis, RespReply, ServerTls, TestCertificates, free_port, get,
    tessera_command as tessera,
};

/// Generous for a loaded 2-core CI box; a handshake failure answers long before it.
const CONNECT_TIMEOUT_MS: &str = "5000";

/// The usual server: the certificate for `localhost` and `127.0.0.1`, clients checked against the CA.
fn server_tls(certificates: &TestCertificates, client_certificates: ClientCertificates) -> ServerTls {
    ServerTls { certificate: certificates.server(), ca: certificates.ca(), client_certificates }
}

async fn connect(pairs: &[(&str, &str)]) -> Result<Backend, InfraError> {
    let mut all = vec![("TESSERA_REDIS_CONNECT_TIMEOUT_MS", CONNECT_TIMEOUT_MS)];
    all.extend_from_slice(pairs);
    let settings = Settings::from_env_pairs(AppEnv::Test, &all).unwrap();
    Backend::connect_redis(&settings.redis, CacheOptions::default()).await
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A failed start-up error: one line, naming the address, saying it is a certificate problem,
/// and arriving well before the connect timeout (a handshake failure is not a hang).
fn assert_certificate_error(result: Result<Backend, InfraError>, started: Instant, address: &str, problem: &str) {
    let error = result.expect_err("the handshake must fail");
    let text = error.to_string();
    assert!(matches!(error, InfraError::TlsHandshake { .. }), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(address) && text.contains("TLS certificate problem") && text.contains(problem), "{text}");
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn the_private_ca_connects_and_set_get_goes_through_tls() {
    let certificates = TestCertificates::create();
    let redis = PrivateRedis::start_tls(&server_tls(&certificates, ClientCertificates::Optional));
    let url = format!("rediss://localhost:{}", redis.tls_port());
    let backend = connect(&[("REDIS_URL", &url), ("TESSERA_REDIS_CA_FILE", path(&certificates.ca()))]).await.unwrap();
    backend.cache().set_value("tls:key", "over tls", None).await.unwrap();
    assert_eq!(backend.cache().get_value("tls:key").await.unwrap().as_deref(), Some("over tls"));
    assert_eq!(redis.query(&["GET", "tls:key"]).text(), "over tls", "the value reached the server");
    backend.close().await;
}

#[tokio::test]
async fn the_near_cache_works_over_tls() {
    let certificates = TestCertificates::create();
    let redis = PrivateRedis::start_tls(&server_tls(&certificates, ClientCertificates::Optional));
    let url = format!("rediss://localhost:{}", redis.tls_port());
    let ca = certificates.ca();
    let pairs = [("REDIS_URL", url.as_str()), ("TESSERA_REDIS_CA_FILE", path(&ca))];
    let reader = connect(&pairs).await.unwrap();
    let near = reader.cache().with_near_cache(NearCacheSettings::default()).await.unwrap();
    assert!(near.near_cache_enabled());
    let writer = connect(&pairs).await.unwrap();
    writer.cache().set_value("tls:near", "first", None).await.unwrap();
    assert_eq!(near.get_value("tls:near").await.unwrap().as_deref(), Some("first"));
    writer.cache().set_value("tls:near", "second", None).await.unwrap();
    // The invalidation travels over the reader's TLS connection; bounded polling.
    let deadline = Instant::now() + Duration::from_secs(5);
    while near.get_value("tls:near").await.unwrap().as_deref() != Some("second") {
        assert!(Instant::now() < deadline, "the near cache kept the old value over TLS");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.close().await;
    reader.close().await;
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_stops_start_up() {
    let certificates = TestCertificates::create();
    let redis = PrivateRedis::start_tls(&server_tls(&certificates, ClientCertificates::Optional));
    let address = format!("localhost:{}", redis.tls_port());
    let url = format!("rediss://{address}");
    let started = Instant::now();
    let result = connect(&[("REDIS_URL", &url), ("TESSERA_REDIS_CA_FILE", path(&certificates.other_ca()))]).await;
    assert_certificate_error(result, started, &address, "not signed by a trusted CA");
}

#[tokio::test]
async fn a_private_ca_is_not_in_the_system_roots() {
    let certificates = TestCertificates::create();
    let redis = PrivateRedis::start_tls(&server_tls(&certificates, ClientCertificates::Optional));
    let address = format!("localhost:{}", redis.tls_port());
    let started = Instant::now();
    let result = connect(&[("REDIS_URL", &format!("rediss://{address}"))]).await;
    assert_certificate_error(result, started, &address, "not signed by a trusted CA");
}

#[tokio::test]
async fn a_certificate_for_another_host_name_stops_start_up() {
    let certificates = TestCertificates::create();
    let ca = certificates.ca();
    let redis = PrivateRedis::start_tls(&ServerTls {
        certificate: certificates.localhost_only_server(),
        ca: ca.clone(),
        client_certificates: ClientCertificates::Optional,
    });
    // The certificate names DNS:localhost only; 127.0.0.1 is the same server, another name.
    let address = format!("127.0.0.1:{}", redis.tls_port());
    let started = Instant::now();
    let result = connect(&[("REDIS_URL", &format!("rediss://{address}")), ("TESSERA_REDIS_CA_FILE", path(&ca))]).await;
    assert_certificate_error(result, started, &address, "does not name the host");
    // The same server under the name its certificate carries is accepted.
    let by_name = format!("rediss://localhost:{}", redis.tls_port());
    connect(&[("REDIS_URL", &by_name), ("TESSERA_REDIS_CA_FILE", path(&ca))]).await.unwrap().close().await;
}

#[tokio::test]
async fn a_required_client_certificate_is_presented_and_its_absence_is_named() {
    let certificates = TestCertificates::create();
    let redis = PrivateRedis::start_tls(&server_tls(&certificates, ClientCertificates::Required));
    let address = format!("localhost:{}", redis.tls_port());
    let url = format!("rediss://{address}");
    let ca = certificates.ca();
    let client = certificates.client();

    let with_identity = connect(&[
        ("REDIS_URL", &url),
        ("TESSERA_REDIS_CA_FILE", path(&ca)),
        ("TESSERA_REDIS_CERT_FILE", path(&client.cert)),
        ("TESSERA_REDIS_KEY_FILE", path(&client.key)),
    ])
    .await
    .unwrap();
    with_identity.cache().set_value("tls:mutual", "yes", None).await.unwrap();
    assert_eq!(with_identity.cache().get_value("tls:mutual").await.unwrap().as_deref(), Some("yes"));
    with_identity.close().await;

    // TLS 1.3 sends the client's refusal after the handshake: the first command sees it.
    let started = Instant::now();
    let result = connect(&[("REDIS_URL", &url), ("TESSERA_REDIS_CA_FILE", path(&ca))]).await;
    assert_certificate_error(result, started, &address, "requires a client certificate");
}

#[tokio::test]
async fn a_plaintext_url_to_the_tls_port_does_not_connect() {
    let certificates = TestCertificates::create();
    let redis = PrivateRedis::start_tls(&server_tls(&certificates, ClientCertificates::Optional));
    let address = format!("127.0.0.1:{}", redis.tls_port());
    let started = Instant::now();
    let error = connect(&[("REDIS_URL", &format!("redis://{address}")), ("TESSERA_REDIS_CONNECT_TIMEOUT_MS", "2000")])
        .await
        .expect_err("a TLS port never answers plaintext");
    let text = error.to_string();
    assert!(matches!(error, InfraError::Connect { .. } | InfraError::ConnectTimeout { .. }), "{text}");
    assert!(text.contains(&address), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_tls_url_to_a_plaintext_port_does_not_connect() {
    let certificates = TestCertificates::create();
    let redis = PrivateRedis::start_tls(&server_tls(&certificates, ClientCertificates::Optional));
    let address = format!("localhost:{}", redis.port());
    let url = format!("rediss://{address}");
    let error = connect(&[
        ("REDIS_URL", &url),
        ("TESSERA_REDIS_CA_FILE", path(&certificates.ca())),
        ("TESSERA_REDIS_CONNECT_TIMEOUT_MS", "2000"),
    ])
    .await
    .expect_err("a plaintext port never completes a handshake");
    let text = error.to_string();
    assert!(text.contains(&address) && text.lines().count() == 1, "{text}");
}

#[tokio::test]
async fn a_one_node_cluster_over_tls() {
    let certificates = TestCertificates::create();
    let node = PrivateRedis::start_cluster_node_tls(&server_tls(&certificates, ClientCertificates::Optional));
    // The seed is reached as `localhost`; the node announces itself as 127.0.0.1, which its
    // certificate also names, and fred verifies that announced address.
    let url = format!("rediss-cluster://localhost:{}", node.tls_port());
    let backend = connect(&[("REDIS_URL", &url), ("TESSERA_REDIS_CA_FILE", path(&certificates.ca()))]).await.unwrap();
    assert!(
        backend.describe().contains("cluster") && backend.describe().ends_with("over TLS"),
        "{}",
        backend.describe()
    );
    for key in ["tls:{a}", "tls:{b}", "tls:{c}"] {
        backend.cache().set_value(key, key, None).await.unwrap();
        assert_eq!(backend.cache().get_value(key).await.unwrap().as_deref(), Some(key));
    }
    backend.close().await;
}

/// Six nodes in TLS (client ports, cluster bus, replication), the near cache on: every shard
/// answers, one primary is killed, the other shards keep answering without a failure and the
/// dead one answers again soon after its replica is promoted, all over TLS. The pools per
/// primary are built from the TLS settings, and the promoted replica's pool connects with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_six_node_cluster_over_tls_survives_a_dead_primary() {
    const SHARDS: usize = 3;
    const DEAD_SHARD: usize = 1;
    /// The dead shard answers again within this of the promotion (the next read of the slot
    /// map, every 100 ms while a primary is not connected, and a TLS connection to it).
    const RECOVERY_BUDGET: Duration = Duration::from_millis(2_000);
    const PROMOTION_TIMEOUT: Duration = Duration::from_secs(15);

    let certificates = TestCertificates::create();
    let tls = server_tls(&certificates, ClientCertificates::Optional);
    let options = ["--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no"];
    let mut cluster = tokio::task::spawn_blocking(move || PrivateCluster::start_tls(&tls, &options)).await.unwrap();
    let tags: Vec<String> = (0..SHARDS).map(|shard| cluster.hash_tag_on_shard(shard)).collect();
    let backend = connect(&[("REDIS_URL", &cluster.tls_url()), ("TESSERA_REDIS_CA_FILE", path(&certificates.ca()))])
        .await
        .unwrap();
    assert!(backend.describe().ends_with("over TLS"), "{}", backend.describe());
    let cache = backend.cache().with_near_cache(NearCacheSettings::default()).await.unwrap();
    let round_trip = |shard: usize, round: usize| {
        let (cache, key) = (cache.clone(), format!("{{{}}}:tls:{round}", tags[shard]));
        async move {
            cache.set_value(&key, "over tls", Some(Duration::from_secs(60))).await.is_ok()
                && cache.get_value(&key).await.is_ok_and(|value| value.as_deref() == Some("over tls"))
        }
    };
    for shard in 0..SHARDS {
        assert!(round_trip(shard, 0).await, "shard {shard} over TLS");
    }

    cluster.primary(DEAD_SHARD).stop();
    let killed = Instant::now();
    let mut healthy_failures = Vec::new();
    let mut promoted_at = None;
    let mut answered_again = None;
    for round in 1.. {
        for shard in (0..SHARDS).filter(|shard| *shard != DEAD_SHARD) {
            if !round_trip(shard, round).await {
                healthy_failures.push((shard, killed.elapsed()));
            }
        }
        if promoted_at.is_none() && cluster.replica_promoted(DEAD_SHARD) {
            promoted_at = Some(Instant::now());
        }
        if let Some(promoted) = promoted_at {
            if round_trip(DEAD_SHARD, round).await {
                answered_again = Some(promoted.elapsed());
                break;
            }
            assert!(
                promoted.elapsed() < RECOVERY_BUDGET,
                "the dead shard did not answer {RECOVERY_BUDGET:?} after the promotion"
            );
        }
        assert!(killed.elapsed() < PROMOTION_TIMEOUT, "the replica was not promoted within {PROMOTION_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let promoted_after = promoted_at.unwrap().duration_since(killed);
    eprintln!(
        "TLS cluster: primary killed, replica promoted {promoted_after:?} after; the dead shard answered {:?} after \
         the promotion; healthy shards failed {} times",
        answered_again.unwrap(),
        healthy_failures.len()
    );
    assert!(healthy_failures.is_empty(), "healthy shards failed while a primary was dead: {healthy_failures:?}");
    backend.close().await;
}

#[tokio::test]
async fn sentinel_and_primary_over_tls() {
    let certificates = TestCertificates::create();
    let primary = PrivateRedis::start_tls(&server_tls(&certificates, ClientCertificates::Optional));
    let sentinel =
        PrivateRedis::start_sentinel_tls(&server_tls(&certificates, ClientCertificates::Optional), &primary, "tls");
    let url = format!("rediss-sentinel://localhost:{}/0?sentinelServiceName=tls", sentinel.tls_port());
    let backend = connect(&[("REDIS_URL", &url), ("TESSERA_REDIS_CA_FILE", path(&certificates.ca()))]).await.unwrap();
    backend.cache().set_value("tls:sentinel", "primary", None).await.unwrap();
    assert_eq!(primary.query(&["EXISTS", "tls:sentinel"]), RespReply::Integer(1), "the write reached the primary");
    backend.close().await;

    // The sentinel's certificate is checked as well: a wrong CA fails there.
    let started = Instant::now();
    let result = connect(&[("REDIS_URL", &url), ("TESSERA_REDIS_CA_FILE", path(&certificates.other_ca()))]).await;
    let error = result.expect_err("the sentinel's certificate is not trusted");
    assert!(error.to_string().contains("TLS certificate problem"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn the_binary_answers_readyz_over_tls_and_exits_with_one_line_on_a_wrong_ca() {
    let certificates = TestCertificates::create();
    let redis = PrivateRedis::start_tls(&server_tls(&certificates, ClientCertificates::Optional));
    let url = format!("rediss://localhost:{}", redis.tls_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let ca = certificates.ca();
    let mut child = tessera(&[("REDIS_URL", &url), ("TESSERA_REDIS_CA_FILE", path(&ca)), ("TESSERA_LISTEN", &listen)])
        .spawn()
        .unwrap();
    let address: std::net::SocketAddr = listen.parse().unwrap();
    let started = Instant::now();
    while TcpStream::connect(address).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "tessera did not start listening on {address}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = get(address, "/readyz").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    child.kill().await.unwrap();

    let other_ca = certificates.other_ca();
    let output =
        tessera(&[("REDIS_URL", &url), ("TESSERA_REDIS_CA_FILE", path(&other_ca)), ("TESSERA_LISTEN", &listen)])
            .output()
            .await
            .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr:?}");
    assert!(stderr.contains(&format!("localhost:{}", redis.tls_port())), "{stderr}");
    assert!(stderr.contains("TLS certificate problem"), "{stderr}");
}

#[tokio::test]
async fn the_binary_refuses_an_unreadable_ca_file_naming_the_setting_and_path() {
    let certificates = TestCertificates::create();
    let missing = certificates.path("missing.crt");
    let output = tessera(&[("REDIS_URL", "rediss://localhost:1"), ("TESSERA_REDIS_CA_FILE", path(&missing))])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("TESSERA_REDIS_CA_FILE") && stderr.contains(path(&missing)), "{stderr}");
}
