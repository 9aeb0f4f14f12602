//! `bench-naive --listen 127.0.0.1:PORT --redis redis://127.0.0.1:PORT`: the original design's
//! token check written the way a team would write it without Tessera, on the same hyper and
//! fred as `tessera`: GET `token:{t}`, parse the JSON with serde_json, take `user_id`
//! (formatted as Python's f-string would), LRANGE the whole `token_list:{user_id}`, and look
//! for the token in it. 200 with `x-auth-user-id` when found, 401 when not, 503 when Redis
//! fails. Plain code, neither tuned nor slowed down.

use std::time::Duration;

use anyhow::{Context, Result};
use fred::{
    clients::Pool,
    interfaces::{ClientLike, KeysInterface, ListInterface},
    types::{
        Builder,
        config::{Config, ReconnectPolicy},
    },
};
use hyper::{Request, Response, StatusCode, body::Incoming};
use serde_json::{Map, Value};

const USAGE: &str = "bench-naive --listen 127.0.0.1:PORT --redis redis://127.0.0.1:PORT";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = bench::listen_address(&args, USAGE)?;
    let url = bench::required_flag(&args, "--redis", USAGE)?.to_owned();
    bench::runtime()?.block_on(async move {
        let pool = connect(&url).await?;
        bench::serve(listen, move |request| {
            let pool = pool.clone();
            async move { verify(&pool, &request).await }
        })
        .await
    })
}

/// A pool of one connection per core, with the command timeout and the endless reconnect
/// policy any sane deployment sets (docs/FRED.md).
async fn connect(url: &str) -> Result<Pool> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let pool = Builder::from_config(Config::from_url(url).context("bad --redis url")?)
        .with_connection_config(|connection| connection.connection_timeout = Duration::from_secs(2))
        .with_performance_config(|performance| performance.default_command_timeout = Duration::from_secs(1))
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build_pool(cores)
        .context("cannot build the redis pool")?;
    tokio::time::timeout(Duration::from_secs(5), pool.init())
        .await
        .context("redis did not answer within 5 s")?
        .context("cannot connect to redis")?;
    Ok(pool)
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
    let Ok(metadata) = serde_json::from_str::<Map<String, Value>>(&stored) else {
        return unauthorized();
    };
    let Some(user_id) = metadata.get("user_id").and_then(python_format) else {
        return unauthorized();
    };
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

/// `f"{value}"` in Python for the JSON scalars a user id can be.
fn python_format(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(true) => Some("True".to_owned()),
        Value::Bool(false) => Some("False".to_owned()),
        Value::Null => Some("None".to_owned()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn unauthorized() -> Response<bench::Body> {
    let mut response = bench::answer(StatusCode::UNAUTHORIZED, None);
    response.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
    response
}
