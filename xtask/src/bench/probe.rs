//! A minimal HTTP/1.1 client over one keep-alive connection (enough to ask a benchmark server
//! whether it is up, to send it a fixed number of `GET /auth/verify` one after another, and to
//! issue and revoke sessions for the revocation row), and
//! the token lists the benchmark loads: the seeded ones, random well-formed unknown ones, and
//! malformed ones. Tokens are picked by a seeded generator, so a run is repeatable.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
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

/// One keep-alive connection to 127.0.0.1:PORT.
#[derive(Debug)]
pub(super) struct HttpClient {
    port: u16,
    reader: BufReader<TcpStream>,
}

impl HttpClient {
    pub(super) fn connect(port: u16) -> Result<HttpClient> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect_timeout(&address, SOCKET_TIMEOUT)
            .with_context(|| format!("cannot connect to {address}"))?;
        stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
        stream.set_write_timeout(Some(SOCKET_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(HttpClient { port, reader: BufReader::new(stream) })
    }

    /// `GET path` (with `Authorization: Bearer` when given); the status, body read and dropped.
    pub(super) fn get(&mut self, path: &str, bearer: Option<&str>) -> Result<u16> {
        let authorization = bearer.map(|token| ("Authorization", format!("Bearer {token}")));
        Ok(self.request("GET", path, authorization.as_slice(), b"")?.0)
    }

    /// `METHOD path` with `headers` and `body` (a `Content-Length` is added for a body); the
    /// status and the body.
    pub(super) fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", self.port);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method != "GET" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).context("sending a request")?;
        stream.write_all(body).context("sending a request body")?;
        self.read_response()
    }

    fn read_response(&mut self) -> Result<(u16, Vec<u8>)> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).context("reading a status line")? == 0 {
            bail!("the server closed the connection");
        }
        let status = parse_status_line(&line).with_context(|| format!("bad status line {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.reader.read_line(&mut line).context("reading a header")? == 0 {
                bail!("the connection closed inside a response head");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else { continue };
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().with_context(|| format!("bad content-length {value:?}"))?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("a chunked response; the benchmark's client reads content-length bodies only");
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).context("reading a response body")?;
        Ok((status, body))
    }
}

/// The code in `HTTP/1.1 200 OK`.
pub(super) fn parse_status_line(line: &str) -> Option<u16> {
    let mut words = line.split_whitespace();
    words.next().filter(|version| version.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

/// Sends `count` `GET /auth/verify` one after another, each with a token picked from `tokens`
/// by a generator seeded with 42, on one connection; returns how many got each status.
pub(super) fn verify_requests(port: u16, tokens: &[String], count: u64) -> Result<BTreeMap<u16, u64>> {
    if tokens.is_empty() {
        bail!("no tokens to send");
    }
    let mut client = HttpClient::connect(port)?;
    let mut picker = SplitMix64(42);
    let mut statuses = BTreeMap::new();
    for _ in 0..count {
        let token = &tokens[picker.below(tokens.len())];
        let status = client.get("/auth/verify", Some(token))?;
        *statuses.entry(status).or_insert(0) += 1;
    }
    Ok(statuses)
}

/// A small seeded generator (SplitMix64): repeatable picks without a dependency.
#[derive(Debug)]
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub(super) fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// `count` well-formed tokens nobody issued: 32 bytes from the OS, unpadded base64url, as
/// Tessera's own (the chance that one was issued is nil).
pub(super) fn unknown_tokens(count: usize) -> Result<Vec<String>> {
    let mut bytes = vec![0u8; count * 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
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
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let word =
            chunk.iter().enumerate().fold(0u32, |word, (index, byte)| word | u32::from(*byte) << (16 - 8 * index));
        for index in 0..=chunk.len() {
            text.push(char::from(ALPHABET[(word >> (18 - 6 * index) & 0x3f) as usize]));
        }
    }
    text
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
