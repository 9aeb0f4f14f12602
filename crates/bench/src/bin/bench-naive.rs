//! `bench-naive --listen 127.0.0.1:PORT --redis redis://127.0.0.1:PORT [--pool-size N]
//! [--command-timeout-ms N]`: the original design's token check written the way a good engineer
//! would write it without Tessera, on the same hyper and fred as `tessera`: GET `token:{t}`,
//! decode the one field it needs (`user_id`) into a derived struct with serde_json, LRANGE the
//! whole `token_list:{user_id}`, and look for the token in it. 200 with `x-auth-user-id` when
//! found, 401 when not, 503 when Redis fails; the same response headers as `bench-ceiling`
//! and `tessera` (`bench::answer`), nothing more. Plain code, neither tuned nor slowed down.
//!
//! `--pool-size N` (1 to 64) is the number of connections in its fred pool, one per core when
//! absent. The pool size is the one knob an engineer tuning such a port would turn first, so
//! `cargo xtask bench` runs it with fred's defaults (no command timeout) at pool sizes 1, 2, 4
//! and 8, and once more at pool size 4 with `--command-timeout-ms 1000` (fred's per-command
//! timeout alone costs a measurable share of the throughput); the budgets are taken
//! against the fastest of these rows in the same run.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use fred::{
    clients::Pool,
    interfaces::{ClientLike, KeysInterface, ListInterface},
    types::{
        Builder,
        config::{Config, ReconnectPolicy},
    },
};
use hyper::{Request, Response, StatusCode, body::Incoming};
use serde::Deserialize;

const USAGE: &str =
    "bench-naive --listen 127.0.0.1:PORT --redis redis://127.0.0.1:PORT [--pool-size N] [--command-timeout-ms N]";
/// How long start-up waits for Redis before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest `--pool-size`: far more connections than a benchmark machine has cores.
const MAX_POOL_SIZE: usize = 64;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = bench::listen_address(&args, USAGE)?;
    let url = bench::required_flag(&args, "--redis", USAGE)?.to_owned();
    let pool_size = pool_size(&args)?;
    let command_timeout = match bench::flag(&args, "--command-timeout-ms") {
        None => None,
        Some(text) => {
            let milliseconds: u64 =
                text.parse().with_context(|| format!("--command-timeout-ms `{text}` is not a number"))?;
            Some(Duration::from_millis(milliseconds))
        }
    };
    bench::runtime()?.block_on(async move {
        let pool = connect(&url, pool_size, command_timeout).await?;
        bench::serve(listen, move |request| {
            let pool = pool.clone();
            async move { verify(&pool, &request).await }
        })
        .await
    })
}

/// `--pool-size N`, 1 to [`MAX_POOL_SIZE`]; one connection per core when absent.
fn pool_size(args: &[String]) -> Result<usize> {
    let Some(text) = bench::flag(args, "--pool-size") else {
        if args.iter().any(|arg| arg == "--pool-size") {
            bail!("--pool-size needs a number of connections\nusage: {USAGE}");
        }
        return Ok(std::thread::available_parallelism().map_or(2, usize::from));
    };
    let size: usize =
        text.parse().with_context(|| format!("--pool-size `{text}` is not a number of connections\nusage: {USAGE}"))?;
    if !(1..=MAX_POOL_SIZE).contains(&size) {
        bail!("--pool-size {size} is out of range: 1 to {MAX_POOL_SIZE} connections\nusage: {USAGE}");
    }
    Ok(size)
}

/// A pool of `pool_size` connections. Without `command_timeout` every setting on the command
/// path is fred's default: no command timeout, no extra performance tuning. The one setting
/// that is not fred's default is the reconnect policy (endless, exponential backoff up to
/// 2 s), in every row: fred's default is none, and then a Redis restart leaves every command
/// hanging for good (docs/FRED.md), which no deployment ships;
/// a policy only acts once a connection is lost, so it costs a healthy connection nothing and
/// rows of the same pool size differ in the command timeout alone.
async fn connect(url: &str, pool_size: usize, command_timeout: Option<Duration>) -> Result<Pool> {
    let mut builder = Builder::from_config(Config::from_url(url).context("bad --redis url")?);
    if let Some(timeout) = command_timeout {
        builder.with_performance_config(|performance| performance.default_command_timeout = timeout);
    }
    let pool = builder
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build_pool(pool_size)
        .context("cannot build the redis pool")?;
    tokio::time::timeout(CONNECT_TIMEOUT, pool.init())
        .await
        .context("redis did not answer within 5 s")?
        .context("cannot connect to redis")?;
    Ok(pool)
}

/// The part of the stored token metadata the check needs; serde skips the other fields.
#[derive(Deserialize)]
struct StoredToken {
    user_id: StoredUserId,
}

/// A user id as the login service stores it: a JSON integer or string.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredUserId {
    Integer(i64),
    Text(String),
}

impl StoredUserId {
    /// The id as it appears in `token_list:{user_id}` (Python's `f"{user_id}"`).
    fn key_part(self) -> String {
        match self {
            StoredUserId::Integer(number) => number.to_string(),
            StoredUserId::Text(text) => text,
        }
    }
}

async fn verify(pool: &Pool, request: &Request<Incoming>) -> Response<bench::Body> {
    let Some(token) = bench::bearer_token(request) else {
        return unauthorized();
    };
    let stored: Option<String> = match pool.get(format!("token:{token}")).await {
        Ok(stored) => stored,
        Err(_) => return bench::answer(StatusCode::SERVICE_UNAVAILABLE, None),
    };
    let Some(stored) = stored else {
        return unauthorized();
    };
    let Ok(stored) = serde_json::from_str::<StoredToken>(&stored) else {
        return unauthorized();
    };
    let user_id = stored.user_id.key_part();
    let tokens: Vec<String> = match pool.lrange(format!("token_list:{user_id}"), 0, -1).await {
        Ok(tokens) => tokens,
        Err(_) => return bench::answer(StatusCode::SERVICE_UNAVAILABLE, None),
    };
    if tokens.iter().any(|listed| listed == token) {
        bench::answer(StatusCode::OK, Some(&user_id))
    } else {
        unauthorized()
    }
}

/// 401 with `WWW-Authenticate: Bearer`, as `tessera` refuses a token.
fn unauthorized() -> Response<bench::Body> {
    let mut response = bench::answer(StatusCode::UNAUTHORIZED, None);
    response.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
    response
}
