//! Where Redis is: parsing `REDIS_URL` (or the seed's `REDIS_HOST`/`REDIS_PORT`/`REDIS_DB` parts)
//! into a typed [`RedisTarget`]. Error texts never repeat the URL, which may carry a password.

use std::fmt;

use url::Url;

/// One `host:port` of a Redis node or sentinel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The Redis deployment Tessera talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server (`redis://` or `rediss://`, or the `REDIS_HOST` parts).
    Standalone { server: HostPort, db: u8 },
    /// A Redis Cluster, reached through any of its seed nodes (`redis-cluster://`).
    Cluster { seeds: Vec<HostPort> },
    /// A primary found through sentinels (`redis-sentinel://`).
    Sentinel { sentinels: Vec<HostPort>, service_name: String, db: u8 },
}

impl RedisTarget {
    /// The addresses to name in messages: never carries credentials.
    pub fn addresses(&self) -> String {
        let nodes = match self {
            Self::Standalone { server, .. } => return server.to_string(),
            Self::Cluster { seeds } => seeds,
            Self::Sentinel { sentinels, .. } => sentinels,
        };
        nodes.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }

    pub fn topology(&self) -> &'static str {
        match self {
            Self::Standalone { .. } => "standalone",
            Self::Cluster { .. } => "cluster",
            Self::Sentinel { .. } => "sentinel",
        }
    }
}

/// What a parsed `REDIS_URL` holds besides the target.
#[derive(Debug)]
pub(crate) struct ParsedRedisUrl {
    pub(crate) target: RedisTarget,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) tls: bool,
}

const DEFAULT_PORT: u16 = 6379;
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// Parses a Redis URL. The error is a reason, never the URL itself.
pub(crate) fn parse_redis_url(text: &str) -> Result<ParsedRedisUrl, String> {
    let url = Url::parse(text.trim()).map_err(|error| format!("not a URL ({error})"))?;
    let (kind, tls) = match url.scheme() {
        "redis" => (Kind::Standalone, false),
        "rediss" => (Kind::Standalone, true),
        "redis-cluster" => (Kind::Cluster, false),
        "rediss-cluster" => (Kind::Cluster, true),
        "redis-sentinel" => (Kind::Sentinel, false),
        "rediss-sentinel" => (Kind::Sentinel, true),
        other => {
            return Err(format!(
                "unsupported scheme `{other}`, expected redis://, rediss://, redis-cluster:// or redis-sentinel://"
            ));
        }
    };
    let first = first_host(&url, kind)?;
    refuse_unknown_parameters(&url, kind)?;
    let username = Some(url.username()).filter(|name| !name.is_empty()).map(percent_decode);
    let password = url.password().map(percent_decode);
    let target = match kind {
        Kind::Standalone => RedisTarget::Standalone { server: first, db: db_from_path(&url)? },
        Kind::Cluster => {
            let mut seeds = vec![first];
            seeds.extend(query_nodes(&url, "node", DEFAULT_PORT)?);
            RedisTarget::Cluster { seeds }
        }
        Kind::Sentinel => {
            let service_name = url
                .query_pairs()
                .find(|(name, _)| name == "sentinelServiceName")
                .map(|(_, value)| value.into_owned())
                .filter(|name| !name.is_empty())
                .ok_or("redis-sentinel:// needs ?sentinelServiceName=NAME")?;
            let mut sentinels = vec![first];
            sentinels.extend(query_nodes(&url, "node", DEFAULT_SENTINEL_PORT)?);
            RedisTarget::Sentinel { sentinels, service_name, db: db_from_path(&url)? }
        }
    };
    Ok(ParsedRedisUrl { target, username, password, tls })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Standalone,
    Cluster,
    Sentinel,
}

fn first_host(url: &Url, kind: Kind) -> Result<HostPort, String> {
    let host = url.host_str().filter(|host| !host.is_empty()).ok_or("the URL names no host")?;
    let default_port = if kind == Kind::Sentinel { DEFAULT_SENTINEL_PORT } else { DEFAULT_PORT };
    let port = url.port().unwrap_or(default_port);
    if port == 0 {
        return Err("port 0 is not a Redis port".to_owned());
    }
    Ok(HostPort { host: host.trim_matches(['[', ']']).to_owned(), port })
}

/// Each query parameter the URL's kind reads; any other is refused: ignored, a parameter such
/// as `ssl=true` would leave the operator believing the link is encrypted while the password
/// crosses it in the clear.
fn refuse_unknown_parameters(url: &Url, kind: Kind) -> Result<(), String> {
    let known: &[&str] = match kind {
        Kind::Standalone => &[],
        Kind::Cluster => &["node"],
        Kind::Sentinel => &["node", "sentinelServiceName"],
    };
    match url.query_pairs().find(|(name, _)| !known.contains(&name.as_ref())) {
        None => Ok(()),
        Some((name, _)) => {
            let name: String = name.chars().take(32).collect();
            let hint = if ["ssl", "tls", "ssl_cert_reqs", "ssl_ca_certs"].contains(&name.as_str()) {
                "; for TLS use the rediss:// scheme (rediss-cluster://, rediss-sentinel://)"
            } else {
                ""
            };
            let expected = match known {
                [] => "this scheme takes no query parameter".to_owned(),
                known => format!("expected only {}", known.join(", ")),
            };
            Err(format!("unknown URL query parameter `{name}` ({expected}){hint}"))
        }
    }
}

fn db_from_path(url: &Url) -> Result<u8, String> {
    let path = url.path().trim_matches('/');
    if path.is_empty() {
        return Ok(0);
    }
    path.parse::<u8>().map_err(|_| format!("database `{path}` in the URL path is not a number 0-255"))
}

fn query_nodes(url: &Url, name: &str, default_port: u16) -> Result<Vec<HostPort>, String> {
    url.query_pairs().filter(|(key, _)| key == name).map(|(_, value)| parse_host_port(&value, default_port)).collect()
}

fn parse_host_port(text: &str, default_port: u16) -> Result<HostPort, String> {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, _)) if !host.ends_with(']') && host.contains(':') => (text, None),
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    let host = host.trim_matches(['[', ']']);
    if host.is_empty() {
        return Err(format!("node `{text}` names no host"));
    }
    let port = match port {
        None => default_port,
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("node `{text}` has no valid port (1-65535)")),
            Ok(port) => port,
        },
    };
    Ok(HostPort { host: host.to_owned(), port })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
