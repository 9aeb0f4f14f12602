//! The benchmark's HTTP client over one keep-alive connection (`dev_support::http`: enough to
//! ask a benchmark server whether it is up, to send it a fixed number of `GET /auth/verify`
//! one after another, and to issue and revoke sessions for the revocation row), and the token
//! lists the benchmark loads: the seeded ones, random well-formed unknown ones, and malformed
//! ones. Tokens are picked by a generator seeded with 42, so a run is repeatable.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use dev_support::http::{BlockingConnection, Method, Outgoing};
use rand::{Rng, RngCore, SeedableRng, rngs::OsRng, rngs::StdRng};
/// Length of a token Tessera issues: 32 random bytes in unpadded base64url.
const TOKEN_CHARS: usize = 43;

/// Tessera's `GET /metrics` on 127.0.0.1:`port`, as text.
pub(super) fn metrics(port: u16, internal_key: &str) -> Result<String> {
    let (status, body) =
        HttpClient::connect(port)?.request("GET", "/metrics", &[("X-Internal-Key", internal_key.to_owned())], b"")?;
    if status != 200 {
        bail!("GET /metrics on port {port} answered {status}");
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The value of a metric in Prometheus text, by its name with its labels as written
/// (`tessera_embedded_keys`, `tessera_cache_events_total{event="near_hits"}`).
pub(super) fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// One keep-alive connection to 127.0.0.1:PORT (`dev_support::http`).
#[derive(Debug)]
pub(super) struct HttpClient {
    port: u16,
    connection: BlockingConnection,
}

impl HttpClient {
    pub(super) fn connect(port: u16) -> Result<HttpClient> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let connection = BlockingConnection::open(address)?;
        Ok(HttpClient { port, connection })
    }

    /// `GET path` (with `Authorization: Bearer` when given); the status, body dropped.
    pub(super) fn get(&mut self, path: &str, bearer: Option<&str>) -> Result<u16> {
        let authorization = bearer.map(|token| ("Authorization", format!("Bearer {token}")));
        Ok(self.request("GET", path, authorization.as_slice(), b"")?.0)
    }

    /// `METHOD path` with `headers` and `body` (sent with the `Content-Type` among `headers`);
    /// the status and the body.
    pub(super) fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        let method = Method::from_bytes(method.as_bytes()).with_context(|| format!("bad method {method}"))?;
        let host = format!("127.0.0.1:{}", self.port);
        let is_content_type = |name: &str| name.eq_ignore_ascii_case("content-type");
        let mut all: Vec<(&str, &str)> = vec![("Host", &host)];
        all.extend(
            headers.iter().filter(|(name, _)| !is_content_type(name)).map(|(name, value)| (*name, value.as_str())),
        );
        let content_type = headers
            .iter()
            .find(|(name, _)| is_content_type(name))
            .map_or("application/octet-stream", |(_, value)| value);
        let body = (!body.is_empty()).then(|| (content_type, body.to_vec()));
        let response = self.connection.send(Outgoing { method, path, headers: &all, body })?;
        Ok((response.status.as_u16(), response.body.into_bytes()))
    }
}

/// Sends `count` `GET /auth/verify` one after another, each with a token picked from `tokens`
/// by a generator seeded with 42, on one connection; returns how many got each status.
pub(super) fn verify_requests(port: u16, tokens: &[String], count: u64) -> Result<BTreeMap<u16, u64>> {
    if tokens.is_empty() {
        bail!("no tokens to send");
    }
    let mut client = HttpClient::connect(port)?;
    let mut picker = StdRng::seed_from_u64(42);
    let mut statuses = BTreeMap::new();
    for _ in 0..count {
        let token = &tokens[picker.gen_range(0..tokens.len())];
        let status = client.get("/auth/verify", Some(token))?;
        *statuses.entry(status).or_insert(0) += 1;
    }
    Ok(statuses)
}

/// `count` well-formed tokens nobody issued: 32 bytes from the OS, unpadded base64url, as
/// Tessera's own (the chance that one was issued is nil).
pub(super) fn unknown_tokens(count: usize) -> Result<Vec<String>> {
    let mut bytes = vec![0u8; count * 32];
    OsRng.try_fill_bytes(&mut bytes).context("cannot read the OS's random source")?;
    Ok(bytes.chunks(32).map(base64url).collect())
}

/// `count` tokens Tessera refuses before any I/O: every other one has a `*` (not base64url)
/// at a varying place, the rest are 8 characters (too short).
pub(super) fn malformed_tokens(count: usize) -> Result<Vec<String>> {
    let mut tokens = unknown_tokens(count)?;
    for (index, token) in tokens.iter_mut().enumerate() {
        if index % 2 == 0 {
            let at = index / 2 % TOKEN_CHARS;
            token.replace_range(at..at + 1, "*");
        } else {
            token.truncate(8);
        }
    }
    Ok(tokens)
}

/// Unpadded base64url, as `secrets.token_urlsafe` and Tessera write tokens.
pub(super) fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The lines of a token file.
pub(super) fn read_tokens(path: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned).collect())
}

/// Writes `tokens`, one a line.
pub(super) fn write_tokens(path: &Path, tokens: &[String]) -> Result<()> {
    let mut text = tokens.join("\n");
    text.push('\n');
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
