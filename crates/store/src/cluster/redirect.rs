//! What a cluster's refusal asks of the client, read from the error reply. Every reply here
//! means the command was **not** executed, so any command, a write included, may be sent again
//! (Redis Cluster specification, "Redirection and resharding"; docs/CLUSTER.md):
//!
//! - `MOVED <slot> <host>:<port>`: the slot belongs to that node now; the map is stale.
//! - `ASK <slot> <host>:<port>`: the slot is being migrated and this key is (or will be) on
//!   that node; for this one command, send `ASKING` and the command there. The map is not
//!   changed: the slot still belongs to the node that answered until the migration ends.
//! - `TRYAGAIN`: a multi-key command whose keys are split by an ongoing migration.
//! - `CLUSTERDOWN`: the cluster cannot serve the slot now (no primary for it yet).

use fred::{error::Error as FredError, types::config::Server};

/// A refusal that the cluster router answers by sending the command again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    Moved { slot: u16, server: Server },
    Ask { slot: u16, server: Server },
    TryAgain,
    ClusterDown,
}

impl Redirect {
    /// The redirect `error` carries, if it is one.
    pub fn of(error: &FredError) -> Option<Self> {
        Self::parse(error.details())
    }

    /// Reads an error reply's text (`MOVED 3999 127.0.0.1:6381`, with or without a leading `-`).
    pub fn parse(reply: &str) -> Option<Self> {
        let mut words = reply.trim_start_matches('-').split_ascii_whitespace();
        let kind = words.next()?;
        match kind {
            "TRYAGAIN" => return Some(Self::TryAgain),
            "CLUSTERDOWN" => return Some(Self::ClusterDown),
            "MOVED" | "ASK" => {}
            _ => return None,
        }
        let slot: u16 = words.next()?.parse().ok().filter(|slot| usize::from(*slot) < super::SLOTS)?;
        let endpoint = words.next()?;
        // An IPv6 endpoint is `[::1]:6379` or `::1:6379`: the port follows the last colon.
        let (host, port) = endpoint.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().ok()?;
        if host.is_empty() || words.next().is_some() {
            return None;
        }
        let server = Server::new(host, port);
        Some(if kind == "MOVED" { Self::Moved { slot, server } } else { Self::Ask { slot, server } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_redirect_and_nothing_else() {
        let at = |port| Server::new("127.0.0.1", port);
        let cases = [
            ("MOVED 3999 127.0.0.1:6381", Some(Redirect::Moved { slot: 3999, server: at(6381) })),
            ("-ASK 0 127.0.0.1:7000", Some(Redirect::Ask { slot: 0, server: at(7000) })),
            ("ASK 16383 [::1]:7000", Some(Redirect::Ask { slot: 16_383, server: Server::new("::1", 7000) })),
            ("MOVED 12 ::1:7000", Some(Redirect::Moved { slot: 12, server: Server::new("::1", 7000) })),
            ("TRYAGAIN Multiple keys request during rehashing of slot", Some(Redirect::TryAgain)),
            ("CLUSTERDOWN Hash slot not served", Some(Redirect::ClusterDown)),
            ("MOVED 16384 127.0.0.1:6381", None),
            ("MOVED 12 127.0.0.1", None),
            ("MOVED 12 127.0.0.1:port", None),
            ("MOVED 12 :6379", None),
            ("MOVED 12 127.0.0.1:6379 extra", None),
            ("MOVED", None),
            ("READONLY You can't write against a read only replica.", None),
            ("WRONGTYPE Operation against a key holding the wrong kind of value", None),
            ("ERR MOVED 1 127.0.0.1:1", None),
        ];
        for (reply, expected) in cases {
            assert_eq!(Redirect::parse(reply), expected, "{reply}");
        }
    }
}
