//! The three topologies, assembled from single servers, each returning the URL a client uses:
//! standalone (one server), cluster (six nodes: three masters, three replicas) and sentinel (a
//! master, a replica and one sentinel watching them as `tessera`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::server::{self, Server};
use super::state;
use crate::install::RedisTools;
use crate::process;

const CLUSTER_NODES: usize = 6;
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);
const CLUSTER_CREATE_TIMEOUT: Duration = Duration::from_secs(60);
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(10);
/// The service name clients ask the sentinel for.
const SENTINEL_SERVICE: &str = "tessera";

/// Hands out servers of one topology: a free port each (never one another server of this
/// topology took), a directory each, and a `PID_FILE=` line in `state.env` before launch.
#[derive(Debug)]
pub(super) struct Launcher<'a> {
    tools: &'a RedisTools,
    dir: PathBuf,
    taken: Vec<u16>,
}

impl<'a> Launcher<'a> {
    pub(super) fn new(tools: &'a RedisTools, dir: &Path) -> Launcher<'a> {
        Launcher { tools, dir: dir.to_path_buf(), taken: Vec::new() }
    }

    /// A new server named `name` (its directory under the topology's), recorded in the state.
    fn server(&mut self, name: &str, cluster_bus: bool) -> Result<Server> {
        let port = crate::process::free_port(&self.taken, cluster_bus)?;
        self.taken.push(port);
        if cluster_bus {
            self.taken.push(port + 10_000);
        }
        let server = Server { port, dir: self.dir.join(name) };
        std::fs::create_dir_all(&server.dir).with_context(|| format!("cannot create {}", server.dir.display()))?;
        state::append(&self.dir, "PID_FILE", &server.pid_file().to_string_lossy())?;
        Ok(server)
    }
}

pub(super) fn standalone(launcher: &mut Launcher<'_>) -> Result<String> {
    let server = launcher.server("server", false)?;
    server::launch(launcher.tools, &server, &[])?;
    Ok(format!("redis://{}", server.address()))
}

/// Six cluster-enabled nodes, joined by `redis-cli --cluster create` with one replica per
/// master; ready once every node reports `cluster_state:ok`, all 16384 slots assigned and all
/// six nodes known, and sees three of them as replicas (so tests meet the final roles).
pub(super) fn cluster(launcher: &mut Launcher<'_>) -> Result<String> {
    let mut nodes = Vec::with_capacity(CLUSTER_NODES);
    for index in 1..=CLUSTER_NODES {
        let node = launcher.server(&format!("node-{index}"), true)?;
        let nodes_conf = node.dir.join("nodes.conf").to_string_lossy().into_owned();
        let options = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            nodes_conf.as_str(),
            "--cluster-node-timeout",
            "5000",
            // What docs/CLUSTER.md asks of a production cluster: a dead primary's slots alone stop.
            "--cluster-require-full-coverage",
            "no",
        ];
        server::launch(launcher.tools, &node, &options)?;
        nodes.push(node);
    }

    let mut create = std::process::Command::new(&launcher.tools.cli);
    create.args(["--cluster", "create"]).args(nodes.iter().map(Server::address)).args([
        "--cluster-replicas",
        "1",
        "--cluster-yes",
    ]);
    let output = process::output_within(&mut create, CLUSTER_CREATE_TIMEOUT)?;
    let text = process::combined_output(&output);
    if !output.status.success() || text.contains("[ERR]") {
        bail!("`{}` failed with {}:\n{text}", process::describe(&create), output.status);
    }

    let known_nodes = format!("cluster_known_nodes:{CLUSTER_NODES}");
    server::wait_for(CLUSTER_TIMEOUT, "all cluster nodes to agree the cluster is ok", || {
        for node in &nodes {
            let info = server::cli(launcher.tools, node.port, &["cluster", "info"])?;
            let lines: Vec<&str> = info.lines().map(str::trim).collect();
            for expected in ["cluster_state:ok", "cluster_slots_assigned:16384", &known_nodes] {
                if !lines.contains(&expected) {
                    bail!("node {} lacks `{expected}` in CLUSTER INFO:\n{}", node.address(), info.trim());
                }
            }
            let view = server::cli(launcher.tools, node.port, &["cluster", "nodes"])?;
            let replicas = view
                .lines()
                .filter_map(|line| line.split_whitespace().nth(2))
                .filter(|flags| flags.split(',').any(|flag| flag == "slave"))
                .count();
            if replicas != CLUSTER_NODES / 2 {
                bail!("node {} sees {replicas} replicas, not 3:\n{}", node.address(), view.trim());
            }
        }
        Ok(())
    })?;

    let seeds: Vec<String> = nodes[1..3].iter().map(|node| format!("node={}", node.address())).collect();
    Ok(format!("redis-cluster://{}?{}", nodes[0].address(), seeds.join("&")))
}

/// A master, a replica of it, and one sentinel monitoring the master as `tessera` (quorum 1);
/// ready once the replica is linked and the sentinel names the master.
pub(super) fn sentinel(launcher: &mut Launcher<'_>) -> Result<String> {
    let master = launcher.server("master", false)?;
    server::launch(launcher.tools, &master, &[])?;
    let master_port = master.port.to_string();

    let replica = launcher.server("replica", false)?;
    server::launch(launcher.tools, &replica, &["--replicaof", "127.0.0.1", &master_port])?;
    server::wait_for(SENTINEL_TIMEOUT, "the replica to link to its master", || {
        let info = server::cli(launcher.tools, replica.port, &["info", "replication"])?;
        if !info.lines().any(|line| line.trim() == "master_link_status:up") {
            bail!("replica {} is not linked yet:\n{}", replica.address(), info.trim());
        }
        Ok(())
    })?;

    let sentinel = launcher.server("sentinel", false)?;
    server::launch_sentinel(launcher.tools, &sentinel, SENTINEL_SERVICE, master.port)?;
    server::wait_for(SENTINEL_TIMEOUT, "the sentinel to name the master", || {
        let args = ["sentinel", "get-master-addr-by-name", SENTINEL_SERVICE];
        let reply = server::cli(launcher.tools, sentinel.port, &args)?;
        if !reply.lines().any(|line| line.trim() == master_port) {
            bail!("sentinel {} answered `{}`", sentinel.address(), reply.trim());
        }
        Ok(())
    })?;

    Ok(format!("redis-sentinel://{}/0?sentinelServiceName={SENTINEL_SERVICE}", sentinel.address()))
}
