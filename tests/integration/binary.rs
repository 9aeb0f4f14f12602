//! The built `tessera` binary as an operator runs it: bad settings exit non-zero with one line,
//! an unreachable Redis exits non-zero naming the address, SIGTERM drains and exits 0.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use tokio::{io::AsyncReadExt, net::TcpStream};

use dev_support::signal::{self, Signal};
use tests::{PrivateRedis, free_port, get, get_on, tessera_command as tessera};

/// Waits (at most 10 s) until something accepts connections on `address`.
async fn wait_until_listening(address: std::net::SocketAddr) {
    let started = Instant::now();
    while TcpStream::connect(address).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "tessera did not start listening on {address}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM to `child`, which must exit 0 within 5 s; what it wrote to standard output.
async fn stop_cleanly(child: &mut tokio::process::Child) -> String {
    let pid = child.id().unwrap();
    signal::send(pid, Signal::Terminate).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(5), child.wait()).await.expect("exit").unwrap();
    assert_eq!(exit.code(), Some(0));
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).await.unwrap();
    stdout
}

#[tokio::test]
async fn bad_settings_exit_non_zero_with_one_line_naming_the_setting() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("REDIS_PORT", "abc")], "REDIS_PORT"),
        (&[("REDIS_PORT", "0")], "REDIS_PORT"),
        (&[("REDIS_PORT", "70000")], "REDIS_PORT"),
        (&[("REDIS_DB", "-1")], "REDIS_DB"),
        (&[("ACCESS_TOKEN_EXPIRE_MINUTES", "0")], "ACCESS_TOKEN_EXPIRE_MINUTES"),
        (&[("REDIS_URL", "redis://:pw-in-url-9@host:notaport")], "REDIS_URL"),
        (&[("TESSERA_STORE", "memcached")], "TESSERA_STORE"),
        (&[("REDIS_PASSWORD", "pw-in-env-9"), ("REDIS_PORT", "abc")], "REDIS_PORT"),
        // A public path never opens an internal one: listing an internal path (or one that
        // normalizes to it) among the public paths is refused.
        (&[("TESSERA_PUBLIC_PATHS", "/healthz,/internal/sessions,/metrics")], "TESSERA_PUBLIC_PATHS"),
        (&[("TESSERA_PUBLIC_PATHS", "/healthz,//internal/sessions")], "TESSERA_PUBLIC_PATHS"),
    ];
    for (env, setting) in cases {
        let output = tessera(env).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{env:?}: one line expected, got {stderr:?}");
        assert!(stderr.contains(setting) && stderr.contains("from environment"), "{env:?}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
        assert!(!stderr.contains("pw-in-"), "password leaked: {stderr}");
    }
}

#[tokio::test]
async fn an_unreachable_redis_exits_non_zero_naming_the_address() {
    let port = free_port();
    let url = format!("redis://:pw-unreachable-7@127.0.0.1:{port}");
    let started = Instant::now();
    let output =
        tessera(&[("REDIS_URL", &url), ("TESSERA_REDIS_CONNECT_TIMEOUT_MS", "500"), ("TESSERA_LISTEN", "127.0.0.1:0")])
            .output()
            .await
            .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    let everything = format!("{stderr}{}", String::from_utf8_lossy(&output.stdout));
    assert!(!everything.contains("pw-unreachable-7"), "password leaked: {everything}");
    // The error alone: no warning from the pool given up (fred's about quitting clients whose
    // first connection already failed).
    assert!(!everything.contains("WARN"), "a warning beside the error: {everything}");
}

#[tokio::test]
async fn sigterm_drains_keep_alive_connections_and_exits_0_within_the_deadline() {
    let url = tests::Topology::Standalone.url();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = tessera(&[
        ("REDIS_URL", &url),
        ("TESSERA_LISTEN", &listen),
        ("TESSERA_SHUTDOWN_TIMEOUT_MS", "3000"),
        ("TESSERA_LOG_FORMAT", "json"),
    ])
    .spawn()
    .unwrap();

    let address: std::net::SocketAddr = listen.parse().unwrap();
    wait_until_listening(address).await;
    assert_eq!(get(address, "/healthz").await.status, StatusCode::OK);
    // An idle keep-alive connection must not hold shutdown up to the deadline.
    let idle = TcpStream::connect(address).await.unwrap();
    let idle_task = tokio::spawn(async move { get_on(idle, "/readyz").await });
    assert_eq!(idle_task.await.unwrap().status, StatusCode::OK);
    let _still_open = TcpStream::connect(address).await.unwrap();

    let pid = child.id().unwrap();
    let signalled = Instant::now();
    signal::send(pid, Signal::Terminate).unwrap();
    let exit =
        tokio::time::timeout(Duration::from_secs(6), child.wait()).await.expect("exit within the deadline").unwrap();
    let took = signalled.elapsed();
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");
    assert!(took < Duration::from_millis(3_000 + 1_500), "shutdown took {took:?}");
    assert!(TcpStream::connect(address).await.is_err(), "the port must be closed after exit");

    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).await.unwrap();
    for line in ["tessera listening", "SIGTERM received", "redis connections closed", "tessera stopped"] {
        assert!(stdout.contains(line), "log lacks `{line}`:\n{stdout}");
    }
}

/// On a cluster Tessera closes the pools it opened per primary once, at shutdown: closed twice
/// (by `close` and again when dropped), fred logs a warning per client, and an operator reading
/// a clean restart would see warnings with nothing to act on.
#[tokio::test]
async fn a_cluster_deployment_starts_and_stops_without_a_warning() {
    let url = tests::Topology::Cluster.url();
    for near_cache in ["on", "off"] {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut child = tessera(&[
            ("REDIS_URL", &url),
            ("TESSERA_LISTEN", &listen),
            ("TESSERA_NEAR_CACHE", near_cache),
            ("TESSERA_LOG_FORMAT", "json"),
        ])
        .spawn()
        .unwrap();
        let address: std::net::SocketAddr = listen.parse().unwrap();
        wait_until_listening(address).await;
        assert_eq!(get(address, "/readyz").await.status, StatusCode::OK);
        let stdout = stop_cleanly(&mut child).await;
        assert!(stdout.contains("redis connections closed"), "near cache {near_cache}:\n{stdout}");
        let warnings: Vec<&str> = stdout.lines().filter(|line| line.contains(r#""level":"WARN""#)).collect();
        assert!(warnings.is_empty(), "near cache {near_cache}: warnings on a clean start and stop:\n{warnings:#?}");
        // Every verification goes to Redis only with the near cache off: then fred's connection
        // tasks batch better without the runtime's LIFO slot (docs/PERFORMANCE.md).
        let runtime = stdout.lines().find(|line| line.contains("async runtime started")).unwrap_or_default();
        let lifo_slot = format!(r#""lifo_slot":{}"#, near_cache == "on");
        assert!(runtime.contains(&lifo_slot), "near cache {near_cache}: {runtime:?}, expected {lifo_slot}");
    }
}

/// A cluster whose nodes announce addresses Tessera cannot reach (here every node announces a
/// relay's port, then the relays stop and every connection is cut): the slot map is read from
/// the `REDIS_URL` addresses at every refresh meanwhile, and the log says so once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_announcing_addresses_nothing_listens_on_is_warned_about_once() {
    let options = ["--cluster-require-full-coverage", "no"];
    let cluster = tokio::task::spawn_blocking(move || tests::PrivateCluster::start(&options)).await.unwrap();
    let (cluster, relays) = cluster.behind_relays().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child =
        tessera(&[("REDIS_URL", &cluster.url()), ("TESSERA_LISTEN", &listen), ("TESSERA_LOG_FORMAT", "json")])
            .spawn()
            .unwrap();
    let address: std::net::SocketAddr = listen.parse().unwrap();
    wait_until_listening(address).await;
    assert_eq!(get(address, "/readyz").await.status, StatusCode::OK);

    drop(relays);
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.cut_client_connections();
        cluster
    })
    .await
    .unwrap();
    // Without the once-only rule the line comes at every read of the map through those
    // addresses: about every 1.4 s here (each read first waits out the 500 ms question to the
    // primaries it knows), four times in 6 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stdout = stop_cleanly(&mut child).await;
    drop(cluster);
    let said = stdout.lines().filter(|line| line.contains("no primary answers at the address")).count();
    assert_eq!(said, 1, "said {said} times in 6 s:\n{stdout}");
}

#[tokio::test]
async fn with_nothing_configured_the_dev_profile_runs_on_the_embedded_store_and_says_so() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let home = tests::fresh_home();
    let home_text = home.display().to_string();
    let mut child = tessera(&[("TESSERA_LISTEN", &listen), ("HOME", &home_text)]).spawn().unwrap();
    let address: std::net::SocketAddr = listen.parse().unwrap();
    wait_until_listening(address).await;
    let response = get(address, "/readyz").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let stdout = stop_cleanly(&mut child).await;
    // Kept in the XDG default data directory under the home, which the start-up line names.
    let data = home.join(".local").join("share").join("tessera");
    assert!(data.join("journal").is_file(), "no journal in {}", data.display());
    assert!(stdout.contains("embedded store loaded from its data directory"), "{stdout}");
    assert!(stdout.contains(&data.display().to_string()), "{stdout}");
    assert!(stdout.contains("store=embedded"), "the start-up line names the store: {stdout}");
    assert!(stdout.contains("lifo_slot=true"), "the embedded store keeps the runtime's LIFO slot: {stdout}");
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_before_exiting() {
    let redis = PrivateRedis::start();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = tessera(&[
        ("REDIS_URL", &redis.url()),
        ("TESSERA_LISTEN", &listen),
        ("TESSERA_REDIS_COMMAND_TIMEOUT_MS", "1500"),
        ("TESSERA_SHUTDOWN_TIMEOUT_MS", "5000"),
    ])
    .spawn()
    .unwrap();
    let address: std::net::SocketAddr = listen.parse().unwrap();
    wait_until_listening(address).await;
    // A frozen Redis keeps /readyz waiting for the whole command timeout: a request in flight.
    redis.freeze();
    let in_flight = tokio::spawn(async move { get(address, "/readyz").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().unwrap();
    let signalled = Instant::now();
    signal::send(pid, Signal::Terminate).unwrap();
    let response = in_flight.await.unwrap();
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "the in-flight request gets its answer");
    redis.thaw();
    let exit =
        tokio::time::timeout(Duration::from_secs(8), child.wait()).await.expect("exit within the deadline").unwrap();
    assert_eq!(exit.code(), Some(0));
    assert!(signalled.elapsed() >= Duration::from_millis(900), "exited before the request finished");
}

/// The audit trail on its own target: one event per issue, logout, revoke, revoke-all and
/// refused internal key, with user and session ids, never a token.
#[tokio::test]
async fn audit_events_name_users_and_sessions_never_tokens() {
    use hyper::Method;
    const KEY: &str = "audit-internal-key-0123456789";
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let env = [
        ("TESSERA_LISTEN", listen.as_str()),
        ("TESSERA_STORE", "embedded"),
        ("TESSERA_INTERNAL_KEY", KEY),
        ("TESSERA_LOG_FORMAT", "json"),
        ("TESSERA_LOG", "warn,tessera::audit=info"),
    ];
    let mut child = tessera(&env).spawn().unwrap();
    let address: std::net::SocketAddr = listen.parse().unwrap();
    wait_until_listening(address).await;
    let internal = [("x-internal-key", KEY)];
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let body = Some(("application/json", br#"{"user_id":77}"#.to_vec()));
        let issued = tests::send(address, Method::POST, "/internal/sessions", &internal, body).await;
        assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
        let token = issued.body.split("\"token\":\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        let session = issued.body.split("\"session_id\":\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        tokens.push((token, session));
    }
    let bearer = format!("Bearer {}", tokens[0].0);
    let logout = tests::send(address, Method::POST, "/api/logout", &[("authorization", &bearer)], None).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let one = format!("/internal/users/77/sessions/{}", tokens[1].1);
    assert_eq!(tests::send(address, Method::DELETE, &one, &internal, None).await.status, StatusCode::NO_CONTENT);
    let all = tests::send(address, Method::DELETE, "/internal/users/77/sessions", &internal, None).await;
    assert_eq!(all.status, StatusCode::OK);
    let wrong = [("x-internal-key", "not-the-key-not-the-key")];
    let refused = tests::send(address, Method::GET, "/internal/users/77/sessions", &wrong, None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let stdout = stop_cleanly(&mut child).await;
    let audit: Vec<&str> = stdout.lines().filter(|line| line.contains(r#""target":"tessera::audit""#)).collect();
    let events: Vec<&str> =
        audit.iter().map(|line| line.split(r#""event":""#).nth(1).unwrap().split('"').next().unwrap()).collect();
    assert_eq!(
        events,
        ["issue", "issue", "issue", "logout", "revoke", "revoke_all", "internal_key_refused"],
        "{stdout}"
    );
    for (token, session) in &tokens {
        assert!(!stdout.contains(token.as_str()), "a token reached the log:\n{stdout}");
        assert!(audit.iter().any(|line| line.contains(session.as_str())), "session {session} is audited");
    }
    assert!(audit.iter().filter(|line| line.contains(r#""user_id":"77""#)).count() >= 6, "{stdout}");
    assert!(!stdout.contains("not-the-key"), "a presented key reached the log");
}

/// Under an open-file limit (`ulimit -n`) below `TESSERA_MAX_CONNECTIONS`, tessera still starts
/// but says so in a warning naming the limit; with a limit that fits, it says nothing.
#[tokio::test]
async fn an_open_file_limit_below_the_connection_cap_is_warned_about() {
    for (limit, max_connections, warned) in [("256", "10000", true), ("4096", "1000", false)] {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let binary = tests::required_env("TESSERA_TEST_BIN");
        let mut command = tokio::process::Command::new("sh");
        command
            .args(["-c", &format!("ulimit -n {limit} && exec \"$0\""), &binary])
            .env_clear()
            .envs([
                ("TESSERA_LISTEN", listen.as_str()),
                ("TESSERA_MAX_CONNECTIONS", max_connections),
                ("TESSERA_DATA_DIR", "none"),
            ])
            .current_dir(std::env::temp_dir())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        wait_until_listening(listen.parse().unwrap()).await;
        let stdout = stop_cleanly(&mut child).await;
        assert_eq!(stdout.contains("open-file limit"), warned, "ulimit -n {limit}, cap {max_connections}:\n{stdout}");
        if warned {
            assert!(stdout.contains("open_file_limit=256"), "the warning names the limit:\n{stdout}");
        }
    }
}
