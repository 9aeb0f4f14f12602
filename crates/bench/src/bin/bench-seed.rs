//! `bench-seed`: issues one token for each of the benchmark users `1..=N` (metadata from
//! `bench::user_metadata`, about 200 bytes) and writes the tokens to FILE, one a line, in
//! user order.
//!
//! - `--redis URL --users N --out FILE`: through Tessera's own code (`auth_core::Authenticator`
//!   on a `infra::Backend`), exactly as `tessera` issues them;
//! - `--http http://127.0.0.1:PORT --internal-key KEY --users N --out FILE`: through a running
//!   `tessera`'s `POST /internal/sessions`, for a store that lives inside that process (the
//!   embedded one).
//!
//! 32 issues are in flight at a time, so 10,000 users take seconds.

#![allow(clippy::print_stderr, reason = "a command-line tool that reports what it did on stderr")]

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use auth_core::{AuthPolicy, Authenticator, IssueOptions, MetadataValue, UserId};
use cache_toolkit::CacheOptions;
use config::{AppEnv, Settings};
use dao::CacheDao;
use dev_support::http::{BlockingConnection, Method, Outgoing, StatusCode};
use infra::Backend;

const USAGE: &str = "bench-seed (--redis URL | --http http://127.0.0.1:PORT --internal-key KEY) --users N --out FILE";
/// Issues in flight at a time.
const IN_FLIGHT: u64 = 32;
/// Lifetime of the benchmark's tokens: longer than any benchmark run.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let users: u64 = bench::required_flag(&args, "--users", USAGE)?.parse().context("--users must be a number")?;
    let out = Path::new(bench::required_flag(&args, "--out", USAGE)?).to_path_buf();
    let started = Instant::now();
    let tokens = match (bench::flag(&args, "--redis"), bench::flag(&args, "--http")) {
        (Some(url), None) => bench::runtime()?.block_on(seed_redis(url, users))?,
        (None, Some(base)) => seed_http(base, bench::required_flag(&args, "--internal-key", USAGE)?, users)?,
        _ => bail!("give exactly one of --redis and --http\nusage: {USAGE}"),
    };
    let mut text = tokens.join("\n");
    text.push('\n');
    std::fs::write(&out, text).with_context(|| format!("cannot write {}", out.display()))?;
    let sample = simd_json::to_string(&MetadataValue::from(bench::user_metadata(users))).unwrap_or_default();
    eprintln!(
        "bench-seed: issued {} tokens in {:.1} s into {} (metadata: {} bytes of JSON + user_id and iat)",
        tokens.len(),
        started.elapsed().as_secs_f64(),
        out.display(),
        sample.len()
    );
    Ok(())
}

/// Issues through `Authenticator::issue` on Redis; returns the tokens in user order.
async fn seed_redis(url: &str, users: u64) -> Result<Vec<String>> {
    let settings =
        Settings::from_env_pairs(AppEnv::Prod, &[("REDIS_URL", url)]).map_err(|error| anyhow!("--redis: {error}"))?;
    let backend = Backend::connect_redis(&settings.redis, CacheOptions::default()).await?;
    let policy = AuthPolicy { default_ttl: TOKEN_TTL, ..AuthPolicy::default() };
    let authenticator = Authenticator::new(CacheDao::new(backend.cache().clone()), policy);
    let mut lanes = tokio::task::JoinSet::new();
    for lane in 0..IN_FLIGHT {
        let authenticator = authenticator.clone();
        lanes.spawn(async move {
            let mut issued = Vec::new();
            for user in lane_users(lane, users) {
                let token = authenticator
                    .issue(UserId::Integer(i128::from(user)), IssueOptions::with_metadata(bench::user_metadata(user)))
                    .await
                    .with_context(|| format!("issuing the token of user {user}"))?;
                issued.push((user, token.token.expose().to_owned()));
            }
            Ok::<_, anyhow::Error>(issued)
        });
    }
    let mut issued = Vec::new();
    while let Some(lane) = lanes.join_next().await {
        issued.extend(lane.context("a seeding task panicked")??);
    }
    backend.close().await;
    Ok(in_user_order(issued))
}

/// Issues through `POST /internal/sessions` of the tessera at `base`, one keep-alive
/// connection per lane; returns the tokens in user order.
fn seed_http(base: &str, internal_key: &str, users: u64) -> Result<Vec<String>> {
    let address: SocketAddr = base
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .and_then(|rest| rest.parse().ok())
        .filter(|address: &SocketAddr| address.ip().is_loopback())
        .with_context(|| format!("--http `{base}` is not http://127.0.0.1:PORT"))?;
    let issued = std::thread::scope(|scope| {
        let lanes: Vec<_> = (0..IN_FLIGHT)
            .map(|lane| {
                scope.spawn(move || -> Result<Vec<(u64, String)>> {
                    let mut connection = Connection::open(address)?;
                    lane_users(lane, users)
                        .map(|user| {
                            let token = connection
                                .issue(internal_key, user)
                                .with_context(|| format!("issuing the token of user {user} over http"))?;
                            Ok((user, token))
                        })
                        .collect()
                })
            })
            .collect();
        let mut issued = Vec::new();
        for lane in lanes {
            issued.extend(lane.join().map_err(|_| anyhow!("a seeding thread panicked"))??);
        }
        Ok::<_, anyhow::Error>(issued)
    })?;
    Ok(in_user_order(issued))
}

/// The users lane `lane` of [`IN_FLIGHT`] issues for.
fn lane_users(lane: u64, users: u64) -> impl Iterator<Item = u64> {
    (1 + lane..=users).step_by(IN_FLIGHT as usize)
}

fn in_user_order(mut issued: Vec<(u64, String)>) -> Vec<String> {
    issued.sort_unstable_by_key(|(user, _)| *user);
    issued.into_iter().map(|(_, token)| token).collect()
}

/// One keep-alive HTTP/1.1 connection to tessera (`dev_support::http`), for
/// `POST /internal/sessions`.
struct Connection {
    http: BlockingConnection,
}

impl Connection {
    fn open(address: SocketAddr) -> Result<Self> {
        Ok(Self { http: BlockingConnection::open(address)? })
    }

    /// Issues a token for `user`; the 201's `token`.
    fn issue(&mut self, internal_key: &str, user: u64) -> Result<String> {
        let mut request = auth_core::MetadataObject::new();
        request.insert("user_id".to_owned(), MetadataValue::from(user));
        request.insert("metadata".to_owned(), MetadataValue::from(bench::user_metadata(user)));
        request.insert("ttl_seconds".to_owned(), MetadataValue::from(TOKEN_TTL.as_secs()));
        let body = simd_json::to_string(&MetadataValue::from(request))?;
        let response = self.http.send(Outgoing {
            method: Method::POST,
            path: "/internal/sessions",
            headers: &[("X-Internal-Key", internal_key)],
            body: Some(("application/json", body.into_bytes())),
        })?;
        if response.status != StatusCode::CREATED {
            bail!("POST /internal/sessions answered {}: {}", response.status, response.body);
        }
        let answer: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&response.body).context("the 201 body is not a JSON object")?;
        answer
            .get("token")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .context("the 201 body has no `token`")
    }
}
