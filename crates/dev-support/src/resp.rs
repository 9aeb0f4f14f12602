//! A minimal RESP2 client on a connection of its own, for tests that read a private Redis
//! exactly as it is (SCAN, TYPE, GET, LRANGE) without going through Tessera's code.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    time::Duration,
};

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespReply {
    Simple(String),
    Error(String),
    Integer(i64),
    /// `None`: the nil bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None`: the nil array.
    Array(Option<Vec<RespReply>>),
}

impl RespReply {
    /// The reply as text: a simple or bulk string (lossy UTF-8).
    pub fn text(&self) -> String {
        match self {
            Self::Simple(text) => text.clone(),
            Self::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            other => panic!("not a string reply: {other:?}"),
        }
    }

    /// The items of an array reply.
    pub fn items(&self) -> &[RespReply] {
        match self {
            Self::Array(Some(items)) => items,
            other => panic!("not an array reply: {other:?}"),
        }
    }
}

/// Sends one command (`["SCAN", "0"]`) to `127.0.0.1:port` and reads its whole reply.
pub fn query(port: u16, args: &[&str]) -> RespReply {
    try_query(port, args).unwrap_or_else(|error| panic!("{args:?} to port {port}: {error}"))
}

/// [`query`], where the connection may be refused or closed before the reply starts (a node a
/// failover is changing: sentinel kills the promoted node's client connections).
pub fn try_query(port: u16, args: &[&str]) -> std::io::Result<RespReply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request)?;
    let mut reader = BufReader::new(stream);
    if reader.fill_buf()?.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before replying"));
    }
    Ok(read_reply(&mut reader))
}

fn read_reply(reader: &mut impl BufRead) -> RespReply {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" => RespReply::Simple(rest.to_owned()),
        "-" => RespReply::Error(rest.to_owned()),
        ":" => RespReply::Integer(rest.parse().unwrap()),
        "$" => {
            let length: i64 = rest.parse().unwrap();
            if length < 0 {
                return RespReply::Bulk(None);
            }
            let mut payload = vec![0_u8; usize::try_from(length).unwrap() + 2];
            reader.read_exact(&mut payload).unwrap();
            payload.truncate(payload.len() - 2);
            RespReply::Bulk(Some(payload))
        }
        "*" => {
            let count: i64 = rest.parse().unwrap();
            if count < 0 {
                return RespReply::Array(None);
            }
            RespReply::Array(Some((0..count).map(|_| read_reply(reader)).collect()))
        }
        other => panic!("unexpected RESP reply type {other:?} in {line:?}"),
    }
}
