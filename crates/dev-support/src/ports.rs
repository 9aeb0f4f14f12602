//! Free loopback ports for private servers: never Redis's and Sentinel's defaults (6379,
//! 26379, where a developer's own Redis may run), and, for a cluster node, with its bus port
//! (port + 10000) free too.

use std::{
    io,
    net::{Ipv4Addr, TcpListener},
};

/// Ports never handed out: the system Redis and Sentinel defaults.
const RESERVED_PORTS: [u16; 2] = [6379, 26379];
/// A cluster node's bus listens on its port + 10000.
pub const CLUSTER_BUS_OFFSET: u16 = 10_000;

/// A loopback port that is free now and is not in `taken`; with `cluster_bus`, its port + 10000
/// must be free and below 65536 too. The port is found by binding port 0 and letting it go, so
/// another program may still take it before the server binds it: the launch then fails with
/// the reason in the server's log.
pub fn free_port_avoiding(taken: &[u16], cluster_bus: bool) -> io::Result<u16> {
    for _ in 0..200 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|listener| listener.local_addr())?.port();
        let usable = |port: u16| !RESERVED_PORTS.contains(&port) && !taken.contains(&port);
        if !usable(port) {
            continue;
        }
        if cluster_bus {
            let Some(bus) = port.checked_add(CLUSTER_BUS_OFFSET) else {
                continue;
            };
            if !usable(bus) || TcpListener::bind((Ipv4Addr::LOCALHOST, bus)).is_err() {
                continue;
            }
        }
        return Ok(port);
    }
    Err(io::Error::other(format!("found no free port on 127.0.0.1 in 200 tries (cluster bus needed: {cluster_bus})")))
}

/// [`free_port_avoiding`] nothing, for tests: a port that was free a moment ago.
pub fn free_port() -> u16 {
    free_port_avoiding(&[], false).unwrap_or_else(|error| panic!("{error}"))
}
