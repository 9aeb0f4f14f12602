//! The embedded store kept in a data directory, as one instance on one machine runs it: the
//! `tessera` binary is stopped (SIGTERM) or killed (SIGKILL) and started again on the same
//! directory, and every acknowledged session and revocation must be as it was; a second
//! process on the directory is refused naming the holder; a corrupt journal stops the start
//! naming the byte, and `tessera data recover` repairs it.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use dev_support::{
    ServerProcess,
    http::{HttpResponse, Method, Outgoing},
    signal::Signal,
};
use hyper::StatusCode;
use tests::{free_port, fresh_home, required_env};

use crate::forward_auth::json_string_field;

const INTERNAL_KEY: &str = "durable-store-test-internal-key";

/// One `tessera` on the embedded store in `dir`.
struct Instance {
    process: ServerProcess,
    address: SocketAddr,
}

async fn start(dir: &Path, fsync: &str, run: usize) -> Instance {
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut process =
        ServerProcess::spawn("tessera", command(dir, fsync, address), &dir.with_extension(format!("out-{run}")));
    process.wait_until_listening(address).await;
    Instance { process, address }
}

fn command(dir: &Path, fsync: &str, address: SocketAddr) -> Command {
    let mut command = Command::new(required_env("TESSERA_TEST_BIN"));
    command.env_clear().current_dir(std::env::temp_dir()).envs([
        ("HOME", fresh_home().display().to_string()),
        ("TESSERA_STORE", "embedded".to_owned()),
        ("TESSERA_DATA_DIR", dir.display().to_string()),
        ("TESSERA_FSYNC", fsync.to_owned()),
        ("TESSERA_LISTEN", address.to_string()),
        ("TESSERA_INTERNAL_KEY", INTERNAL_KEY.to_owned()),
    ]);
    command
}

/// A data directory of its own, not created yet (tessera creates it).
fn data_dir(name: &str) -> PathBuf {
    fresh_home().join(name)
}

async fn request(
    address: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Option<HttpResponse> {
    let body = body.map(|body| ("application/json", body.into_bytes()));
    dev_support::http::send(address, Outgoing { method, path, headers, body }).await.ok()
}

/// Issues a session for `user`; its token once the server acknowledged it.
async fn issue(address: SocketAddr, user: u64, ttl_seconds: Option<u64>) -> Option<String> {
    let ttl = ttl_seconds.map(|seconds| format!(r#", "ttl_seconds": {seconds}"#)).unwrap_or_default();
    let body = format!(r#"{{"user_id": {user}, "metadata": {{"username": "user-{user}"}}{ttl}}}"#);
    let response =
        request(address, Method::POST, "/internal/sessions", &[("x-internal-key", INTERNAL_KEY)], Some(body)).await?;
    (response.status == StatusCode::CREATED).then(|| json_string_field(&response.body, "token")).flatten()
}

/// Logs the session out; whether the server acknowledged it.
async fn revoke(address: SocketAddr, token: &str) -> bool {
    let bearer = format!("Bearer {token}");
    let response = request(address, Method::POST, "/api/logout", &[("authorization", &bearer)], None).await;
    response.is_some_and(|response| response.status.is_success())
}

async fn verify(address: SocketAddr, token: &str) -> StatusCode {
    let bearer = format!("Bearer {token}");
    let response = request(address, Method::GET, "/auth/verify", &[("authorization", &bearer)], None).await;
    response.expect("tessera answers").status
}

/// The `exp` (Unix seconds) introspection reports for `token`.
async fn expiry(address: SocketAddr, token: &str) -> u64 {
    let body = format!("token={token}");
    let response = dev_support::http::send(
        address,
        Outgoing {
            method: Method::POST,
            path: "/internal/introspect",
            headers: &[("x-internal-key", INTERNAL_KEY)],
            body: Some(("application/x-www-form-urlencoded", body.into_bytes())),
        },
    )
    .await
    .expect("introspection answers");
    let after =
        &response.body[response.body.find("\"exp\":").unwrap_or_else(|| panic!("no exp in {}", response.body)) + 6..];
    after.trim_start().split(|c: char| !c.is_ascii_digit()).next().and_then(|digits| digits.parse().ok()).expect("exp")
}

fn stop(instance: &mut Instance, signal: Signal) -> std::process::ExitStatus {
    instance.process.signal(signal);
    instance.process.wait_for_exit(Duration::from_secs(10))
}

#[tokio::test]
async fn a_clean_restart_keeps_sessions_revocations_and_expiry_times() {
    let dir = data_dir("restart");
    let mut first = start(&dir, "everysec", 1).await;
    let mut tokens = Vec::new();
    for user in 1..=40 {
        let ttl = (user % 2 == 0).then_some(3_600 + user);
        tokens.push(issue(first.address, user, ttl).await.expect("issued"));
    }
    let (revoked, kept) = tokens.split_at(10);
    for token in revoked {
        assert!(revoke(first.address, token).await);
    }
    let mut expiries = Vec::new();
    for token in kept.iter().take(6) {
        expiries.push(expiry(first.address, token).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(stop(&mut first, Signal::Terminate).success(), "{}", first.process.logs());
    let logs = first.process.logs();
    assert!(logs.contains("synced to its data directory"), "{logs}");
    // Compacted between the two runs: the snapshot holds the same sessions.
    let compact = Command::new(required_env("TESSERA_TEST_BIN"))
        .env_clear()
        .env("HOME", fresh_home())
        .args(["data", "compact", "--dir", &dir.display().to_string()])
        .output()
        .unwrap();
    assert!(compact.status.success(), "{compact:?}");
    assert!(String::from_utf8_lossy(&compact.stdout).contains("the journal went from"), "{compact:?}");

    let second = start(&dir, "everysec", 2).await;
    for token in kept {
        assert_eq!(verify(second.address, token).await, StatusCode::OK, "a session survives the restart");
    }
    for token in revoked {
        assert_eq!(verify(second.address, token).await, StatusCode::UNAUTHORIZED, "a revocation survives the restart");
    }
    let mut after = Vec::new();
    for token in kept.iter().take(6) {
        after.push(expiry(second.address, token).await);
    }
    // Deadlines are journaled to the millisecond and `exp` is a whole second: one a few ms from
    // a second's boundary may read on either side of it. A deadline counted again from the
    // restart would be at least the 2 s slept above later.
    for (before, after) in expiries.iter().zip(&after) {
        assert!(
            before.abs_diff(*after) <= 1,
            "each session expires when it did before the restart: {expiries:?} → {after:?}"
        );
    }
    let logs = second.process.logs();
    assert!(logs.contains("embedded store loaded from its data directory"), "{logs}");
    assert!(!logs.contains("memory only"), "{logs}");
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the load saw acknowledged before the kill.
#[derive(Default)]
struct Acknowledged {
    /// Issued and not asked to be revoked.
    live: Vec<String>,
    /// Revocations acknowledged.
    revoked: Vec<String>,
    /// Issued at this instant (for `everysec`).
    issued_at: Vec<(String, Instant)>,
}

/// Issues and revokes from 4 tasks (at most 400 issues each) until `stop` is set; records what
/// was acknowledged.
async fn load(address: SocketAddr, seen: Arc<Mutex<Acknowledged>>, stop: Arc<std::sync::atomic::AtomicBool>) {
    let tasks: Vec<_> = (0..4_u64)
        .map(|lane| {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            tokio::spawn(async move {
                for round in 0..400_u64 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let user = 1_000 + lane * 1_000 + round;
                    let Some(token) = issue(address, user, None).await else { continue };
                    let at = Instant::now();
                    if round % 3 == 0 {
                        if revoke(address, &token).await {
                            seen.lock().unwrap().revoked.push(token);
                        }
                        // An unacknowledged revocation may or may not hold: the token is in neither list.
                    } else {
                        let mut seen = seen.lock().unwrap();
                        seen.live.push(token.clone());
                        seen.issued_at.push((token, at));
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// Runs the load against a tessera on `dir` with `fsync`, kills it (SIGKILL) after `for_how_long`,
/// and starts it again on the same directory: the new instance, what the load saw
/// acknowledged, and when the kill came.
async fn kill_under_load(dir: &Path, fsync: &str, for_how_long: Duration) -> (Instance, Acknowledged, Instant) {
    let mut first = start(dir, fsync, 1).await;
    let seen = Arc::new(Mutex::new(Acknowledged::default()));
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let running = tokio::spawn(load(first.address, Arc::clone(&seen), Arc::clone(&stopping)));
    tokio::time::sleep(for_how_long).await;
    // Killed in the middle of the load: requests in flight get no answer.
    let killed_at = Instant::now();
    stop(&mut first, Signal::Kill);
    stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    running.await.unwrap();
    let second = start(dir, fsync, 2).await;
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (second, seen, killed_at)
}

#[tokio::test]
async fn with_fsync_always_a_kill_under_load_loses_no_acknowledged_issue_or_revocation() {
    let dir = data_dir("kill-always");
    let (second, seen, _) = kill_under_load(&dir, "always", Duration::from_millis(1_500)).await;
    assert!(
        seen.live.len() > 50 && seen.revoked.len() > 20,
        "too little load: {} / {}",
        seen.live.len(),
        seen.revoked.len()
    );
    for token in &seen.live {
        assert_eq!(verify(second.address, token).await, StatusCode::OK, "an acknowledged issue was lost");
    }
    for token in &seen.revoked {
        assert_eq!(
            verify(second.address, token).await,
            StatusCode::UNAUTHORIZED,
            "an acknowledged revocation was undone"
        );
    }
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn with_fsync_everysec_a_kill_loses_at_most_the_last_second() {
    let dir = data_dir("kill-everysec");
    let (second, seen, killed_at) = kill_under_load(&dir, "everysec", Duration::from_millis(2_500)).await;
    let older: Vec<&String> = seen
        .issued_at
        .iter()
        .filter(|(_, at)| killed_at.duration_since(*at) > Duration::from_millis(1_200))
        .map(|(token, _)| token)
        .collect();
    assert!(older.len() > 20, "too little load before the last second: {}", older.len());
    for token in older {
        assert_eq!(
            verify(second.address, token).await,
            StatusCode::OK,
            "a session acknowledged over a second before the kill was lost"
        );
    }
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_second_process_on_the_directory_exits_1_naming_the_directory_and_the_holder() {
    let dir = data_dir("lock");
    let first = start(&dir, "everysec", 1).await;
    let holder = std::fs::read_to_string(dir.join("LOCK")).unwrap().trim().to_owned();
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let output = command(&dir, "everysec", address).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|line| line.starts_with("tessera:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&dir.display().to_string()) && lines[0].contains(&format!("process {holder}")),
        "{stderr}"
    );
    drop(first);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_corrupt_journal_stops_the_start_and_tessera_data_recover_keeps_what_precedes_it() {
    let dir = data_dir("corrupt");
    let mut first = start(&dir, "everysec", 1).await;
    let early = issue(first.address, 7, None).await.expect("issued");
    for user in 8..40 {
        issue(first.address, user, None).await.expect("issued");
    }
    assert!(stop(&mut first, Signal::Terminate).success());
    let journal = dir.join("journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    let middle = bytes.len() * 3 / 4;
    bytes[middle] ^= 0x5a;
    std::fs::write(&journal, &bytes).unwrap();

    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let output = command(&dir, "everysec", address).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is corrupt at byte") && stderr.contains("tessera data recover"), "{stderr}");
    assert_eq!(std::fs::read(&journal).unwrap(), bytes, "a refused start changes nothing");

    let recover = Command::new(required_env("TESSERA_TEST_BIN"))
        .env_clear()
        .env("HOME", fresh_home())
        .args(["data", "recover", "--dir", &dir.display().to_string()])
        .output()
        .unwrap();
    assert!(recover.status.success(), "{recover:?}");
    let said = String::from_utf8_lossy(&recover.stdout);
    assert!(said.contains("kept") && said.contains("journal.corrupt-"), "{said}");

    let second = start(&dir, "everysec", 2).await;
    assert_eq!(verify(second.address, &early).await, StatusCode::OK, "what precedes the damage is kept");
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}
