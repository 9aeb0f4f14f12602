//! The `tessera` command line, run as the built binary: help and version, one-line usage
//! errors with exit code 2, `check-config` with each value's origin and warnings about
//! misspelt names, and the `token` commands against the Redis `cargo xtask test` started —
//! sharing the store with the server, refusing the embedded store, exit 1 when Redis is away.

use std::{
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use hyper::{Method, StatusCode};
use tokio::io::AsyncWriteExt;

use dev_support::signal::{self, Signal};
use tests::{free_port, spawn_app, tessera_command};

/// Runs `tessera ARGS` with only `env` set; `stdin` is written to its standard input.
async fn tessera(env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = tessera_command(env);
    command.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = command.spawn().unwrap();
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
        drop(pipe);
    }
    tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await.expect("tessera exits").unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts exit code `code` and a single `tessera: …` line on stderr; returns that line.
fn one_line_failure(output: &Output, code: i32, context: &str) -> String {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{context}: {text}");
    assert_eq!(text.lines().count(), 1, "{context}: one line expected, got {text:?}");
    assert!(text.starts_with("tessera: "), "{context}: {text}");
    assert!(!text.contains("panicked"), "{context}: {text}");
    text
}

/// The text of `"name":"…"` or the number of `"name":…` in a flat JSON answer.
fn json_field(json: &str, name: &str) -> String {
    let rest = json.split(&format!("\"{name}\":")).nth(1).unwrap_or_else(|| panic!("no `{name}` in {json}"));
    match rest.strip_prefix('"') {
        Some(text) => text.split('"').next().unwrap().to_owned(),
        None => rest.split([',', '}']).next().unwrap().to_owned(),
    }
}

/// Settings naming the shared Redis, with a key prefix of this test's own.
fn redis_env(prefix: &str) -> Vec<(&'static str, String)> {
    vec![("REDIS_URL", tests::Topology::Standalone.url()), ("TESSERA_KEY_PREFIX", prefix.to_owned())]
}

fn unique_prefix(test: &str) -> String {
    format!("cli-{test}-{}-{}:", std::process::id(), free_port())
}

fn as_pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(name, value)| (*name, value.as_str())).collect()
}

#[tokio::test]
async fn help_and_version_print_on_stdout_and_exit_0() {
    let cases: &[(&[&str], &str)] = &[
        (&["--help"], "check-config"),
        (&["--help"], "Exit codes: 0 success, 2 usage or settings error, 1 runtime failure"),
        (&["--version"], "tessera 0.0.0"),
        (&["token", "--help"], "inspect"),
        (&["token", "issue", "--help"], "--ttl <TTL>"),
        (&["help", "token"], "revoke"),
    ];
    for (args, expected) in cases {
        let output = tessera(&[], args, None).await;
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
        assert!(stdout(&output).contains(expected), "{args:?}: {}", stdout(&output));
        assert!(stderr(&output).is_empty(), "{args:?}: {}", stderr(&output));
    }
}

#[tokio::test]
async fn usage_errors_exit_2_with_one_line_and_never_echo_a_token() {
    // A Redis no one listens on: none of these may get as far as connecting.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let env = [("REDIS_URL", url.as_str())];
    let cases: &[(&[&str], &str)] = &[
        (&["bogus"], "unrecognized subcommand 'bogus' (see tessera --help)"),
        (&["token"], "requires a subcommand"),
        (&["token", "issue"], "--user-id <USER_ID>"),
        (&["token", "issue", "--user-id", "1", "--ttl", "30"], "has no unit"),
        (&["token", "issue", "--user-id", "1", "--ttl", "5x"], "is not a duration"),
        (&["token", "issue", "--user-id", "1", "--ttl", "0m"], "is zero"),
        (&["token", "issue", "--user-id", "1", "--metadata", "[1]"], "must be a JSON object"),
        (&["token", "issue", "--user-id", "1", "--metadata", "{x"], "not valid JSON"),
        (&["token", "revoke", "--user-id", "1", "--session", "xyz"], "not a session id"),
        (&["token", "inspect", "tok-on-the-command-line-0123"], "never from the command line"),
    ];
    for (args, expected) in cases {
        let started = Instant::now();
        let output = tessera(&env, args, None).await;
        let line = one_line_failure(&output, 2, &format!("{args:?}"));
        assert!(line.contains(expected), "{args:?}: `{line}` should say `{expected}`");
        assert!(!line.contains("tok-on-the-command-line"), "the token was echoed: {line}");
        assert!(stdout(&output).is_empty(), "{args:?}: {}", stdout(&output));
        assert!(started.elapsed() < Duration::from_secs(5), "{args:?} took {:?}", started.elapsed());
    }
    let output = tessera(&env, &["token", "inspect"], Some("")).await;
    assert!(one_line_failure(&output, 2, "empty stdin").contains("no token on standard input"));
}

#[tokio::test]
async fn check_config_reports_each_value_with_its_origin_and_warns_about_unknown_names() {
    let dir = std::env::temp_dir().join(format!("tessera-test-check-config-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dev.toml"), "log_format = \"json\"\nredis_port = 7001\n").unwrap();
    std::fs::write(
        dir.join(".env.dev"),
        "REDIS_PORT=7002\nREDIS_PASSWORD=pw-in-dotenv-31\nTESSERA_SLIDNG_EXPIRY=true\nSECRET_KEY=python-only\n",
    )
    .unwrap();
    let config_dir = dir.to_str().unwrap();
    let env = [
        ("TESSERA_CONFIG_DIR", config_dir),
        ("REDIS_URL", "redis-cluster://:pw-in-url-32@10.9.8.7:7000?node=10.9.8.6:7001"),
        ("TESSERA_INTERNAL_KEY", "internal-key-in-env-33"),
        ("TESSERA_LISTN", "127.0.0.1:9"),
        ("TESSERA_TEST_REDIS_URL", "redis://127.0.0.1:1"),
    ];
    let output = tessera(&env, &["check-config"], None).await;
    std::fs::remove_dir_all(&dir).unwrap();
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{err}");

    let toml = format!("file {config_dir}/dev.toml");
    let dotenv = format!("file {config_dir}/.env.dev");
    let expected: &[(&str, &str, &str)] = &[
        ("APP_ENV", "dev", "default"),
        ("TESSERA_CONFIG_DIR", config_dir, "environment"),
        ("TESSERA_LOG_FORMAT", "json", &toml),
        ("REDIS_PORT", "7002", &dotenv),
        ("REDIS_PASSWORD", "[redacted]", &dotenv),
        ("REDIS_URL", "[redacted]", "environment"),
        ("TESSERA_INTERNAL_KEY", "[redacted]", "environment"),
        ("TESSERA_LISTEN", "127.0.0.1:8080", "default"),
        ("TESSERA_SLIDING_EXPIRY", "false", "default"),
        ("TESSERA_STORE", "redis", "default"),
    ];
    for (name, value, origin) in expected {
        let line = out
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{out}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[1], *value, "{line}");
        assert_eq!(fields[2..].join(" "), *origin, "{line}");
    }
    assert!(out.lines().next().unwrap().starts_with("SETTING"), "{out}");
    assert!(out.contains("store: redis cluster 10.9.8.7:7000,10.9.8.6:7001\n"), "{out}");
    let everything = format!("{out}{err}");
    for secret in ["pw-in-dotenv", "pw-in-url", "internal-key-in-env"] {
        assert!(!everything.contains(secret), "{secret} leaked:\n{everything}");
    }
    let warnings: Vec<&str> = err.lines().collect();
    assert_eq!(
        warnings,
        [
            "tessera: warning: unknown setting TESSERA_LISTN (from environment) is ignored; did you mean TESSERA_LISTEN?"
                .to_owned(),
            format!(
                "tessera: warning: unknown setting TESSERA_SLIDNG_EXPIRY (from {dotenv}) is ignored; did you mean \
                 TESSERA_SLIDING_EXPIRY?"
            ),
        ],
        "only the misspelt TESSERA_ names: not SECRET_KEY, not the test harness's"
    );
}

#[tokio::test]
async fn check_config_with_a_bad_setting_exits_2_with_the_settings_error() {
    let output = tessera(&[("REDIS_PORT", "abc"), ("REDIS_PASSWORD", "pw-bad-34")], &["check-config"], None).await;
    let line = one_line_failure(&output, 2, "REDIS_PORT=abc");
    assert!(line.starts_with("tessera: invalid setting REDIS_PORT (from environment)"), "{line}");
    assert!(stdout(&output).is_empty());
    assert!(!line.contains("pw-bad"));
}

#[tokio::test]
async fn token_commands_issue_inspect_list_and_revoke_in_the_server_s_store() {
    let prefix = unique_prefix("lifecycle");
    let env = redis_env(&prefix);
    let env = as_pairs(&env);
    let issue = ["token", "issue", "--user-id", "42", "--metadata", r#"{"username":"alice"}"#, "--ttl", "1h"];
    let output = tessera(&env, &issue, None).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let issued = stdout(&output);
    let token = json_field(&issued, "token");
    let session = json_field(&issued, "session_id");
    assert_eq!(json_field(&issued, "expires_in"), "3600", "{issued}");
    assert_eq!(json_field(&issued, "token_type"), "Bearer");
    let audit = stderr(&output);
    assert!(audit.contains("event=\"issue\"") && audit.contains(&session), "the issue is audited: {audit}");
    assert!(!audit.contains(&token), "a token reached the log: {audit}");

    // The server on the same Redis and prefix accepts it: one store, one set of rules.
    let mut server_env = env.clone();
    server_env.push(("TESSERA_STORE", "redis"));
    let app = spawn_app(&server_env).await;
    let bearer = format!("Bearer {token}");
    let me = tests::send(app.address, Method::GET, "/api/me", &[("authorization", &bearer)], None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert!(me.body.contains(r#""username":"alice""#), "{}", me.body);

    let inspected = tessera(&env, &["token", "inspect"], Some(&format!("{token}\n"))).await;
    assert_eq!(inspected.status.code(), Some(0), "{}", stderr(&inspected));
    let body = stdout(&inspected);
    assert_eq!(json_field(&body, "active"), "true", "{body}");
    assert_eq!(json_field(&body, "sub"), "42", "{body}");
    assert_eq!(json_field(&body, "username"), "alice", "{body}");

    let listed = tessera(&env, &["token", "list", "--user-id", "42"], None).await;
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let sessions = stdout(&listed);
    assert!(sessions.starts_with(r#"{"user_id":42,"sessions":[{"session_id":""#), "{sessions}");
    assert!(sessions.contains(&session) && !sessions.contains(&token), "{sessions}");

    let revoked = tessera(&env, &["token", "revoke", "--user-id", "42", "--session", &session], None).await;
    assert_eq!(revoked.status.code(), Some(0), "{}", stderr(&revoked));
    assert_eq!(stdout(&revoked).trim(), r#"{"revoked":1}"#);
    let me = tests::send(app.address, Method::GET, "/api/me", &[("authorization", &bearer)], None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "revoked from the command line, refused by the server");
    let inspected = tessera(&env, &["token", "inspect"], Some(&token)).await;
    assert_eq!(stdout(&inspected).trim(), r#"{"active":false}"#);

    let again = tessera(&env, &["token", "revoke", "--user-id", "42", "--session", &session], None).await;
    let line = one_line_failure_after_audit(&again, 1);
    assert!(line.contains(&format!("user 42 has no session {session}")), "{line}");

    for _ in 0..2 {
        let output = tessera(&env, &["token", "issue", "--user-id", "42"], None).await;
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_eq!(json_field(&stdout(&output), "expires_in"), "1800", "ACCESS_TOKEN_EXPIRE_MINUTES by default");
    }
    let all = tessera(&env, &["token", "revoke", "--user-id", "42"], None).await;
    assert_eq!(stdout(&all).trim(), r#"{"revoked":2}"#, "{}", stderr(&all));
    let listed = tessera(&env, &["token", "list", "--user-id", "42"], None).await;
    assert_eq!(stdout(&listed).trim(), r#"{"user_id":42,"sessions":[]}"#);
    app.stop().await;
}

/// The last stderr line of a command that logged audit events before failing.
fn one_line_failure_after_audit(output: &Output, code: i32) -> String {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{text}");
    let failures: Vec<&str> = text.lines().filter(|line| line.starts_with("tessera: ")).collect();
    assert_eq!(failures.len(), 1, "{text}");
    failures[0].to_owned()
}

#[tokio::test]
async fn inspect_never_renews_a_token_even_with_sliding_expiry() {
    let prefix = unique_prefix("sliding");
    let mut env = redis_env(&prefix);
    env.push(("TESSERA_SLIDING_EXPIRY", "true".to_owned()));
    let env = as_pairs(&env);
    let output = tessera(&env, &["token", "issue", "--user-id", "alice", "--ttl", "90s"], None).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let token = json_field(&stdout(&output), "token");
    let inspected = tessera(&env, &["token", "inspect"], Some(&token)).await;
    assert_eq!(json_field(&stdout(&inspected), "active"), "true", "{}", stderr(&inspected));
    let listed = stdout(&tessera(&env, &["token", "list", "--user-id", "alice"], None).await);
    let left: u64 = json_field(&listed, "expires_in").parse().unwrap();
    assert!(left <= 90, "inspect renewed the token to the 30-minute default: {left} s left");
    let revoked = tessera(&env, &["token", "revoke", "--user-id", "alice"], None).await;
    assert_eq!(stdout(&revoked).trim(), r#"{"revoked":1}"#);
}

#[tokio::test]
async fn token_commands_refuse_the_embedded_store() {
    for env in [&[][..], &[("TESSERA_STORE", "embedded"), ("REDIS_URL", "redis://127.0.0.1:1")][..]] {
        let output = tessera(env, &["token", "issue", "--user-id", "1"], None).await;
        let line = one_line_failure(&output, 2, &format!("{env:?}"));
        assert!(line.contains("embedded one, which lives only inside a running server"), "{line}");
        assert!(stdout(&output).is_empty());
    }
}

#[tokio::test]
async fn token_commands_exit_1_when_redis_is_unreachable() {
    let port = free_port();
    let url = format!("redis://:pw-away-35@127.0.0.1:{port}");
    let env = [("REDIS_URL", url.as_str()), ("TESSERA_REDIS_CONNECT_TIMEOUT_MS", "500")];
    let started = Instant::now();
    let output = tessera(&env, &["token", "list", "--user-id", "1"], None).await;
    let line = one_line_failure(&output, 1, "unreachable");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(!line.contains("pw-away"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn serve_runs_the_server_like_no_command() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = tessera_command(&[("TESSERA_LISTEN", &listen)]).arg("serve").spawn().unwrap();
    let address: std::net::SocketAddr = listen.parse().unwrap();
    let started = Instant::now();
    while tokio::net::TcpStream::connect(address).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "tessera serve did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tests::get(address, "/healthz").await.status, StatusCode::OK);
    let pid = child.id().unwrap();
    signal::send(pid, Signal::Terminate).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(5), child.wait()).await.expect("exit").unwrap();
    assert_eq!(exit.code(), Some(0));
}
