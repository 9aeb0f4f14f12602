//! Private `redis-server` processes that one test owns and may stop, freeze and restart:
//! standalone (with or without an fsync-always AOF), replicas, sentinels, cluster nodes, and
//! each of them with TLS.

use std::{
    ffi::OsString,
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    RespReply, env,
    ports::free_port,
    signal::{self, Signal},
    tls::CertificateFiles,
};

/// A `redis-server` this test owns, on its own port, killed on drop. With TLS it listens on a
/// second port as well; the plaintext one stays for the test's own INFO and commands.
#[derive(Debug)]
pub struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    durable: bool,
    /// Before the options: a sentinel's configuration file and `--sentinel`.
    leading_args: Vec<OsString>,
    /// After the standard options: TLS, cluster.
    extra_args: Vec<OsString>,
    tls_port: Option<u16>,
    child: Option<Child>,
}

/// Whether a TLS server asks for client certificates (`--tls-auth-clients`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCertificates {
    /// Verified when a client presents one; a client without one is accepted.
    Optional,
    /// A client without a certificate from the CA is refused.
    Required,
}

/// What a TLS server presents and trusts.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub certificate: CertificateFiles,
    /// The CA client certificates (and, for outgoing links, servers) must chain to.
    pub ca: PathBuf,
    pub client_certificates: ClientCertificates,
}

impl PrivateRedis {
    /// A server without persistence: a restart starts empty.
    pub fn start() -> Self {
        Self::launch(false)
    }

    /// A server with an fsync-always append-only file: its data survives a kill and restart.
    pub fn start_durable() -> Self {
        Self::launch(true)
    }

    /// A server that also speaks TLS on [`PrivateRedis::tls_port`].
    pub fn start_tls(tls: &ServerTls) -> Self {
        Self::launch_with(false, tls_args(tls), true)
    }

    /// A one-node Redis Cluster holding every slot, its client port and cluster bus in TLS
    /// (`tls-cluster yes`); ready once `cluster_state:ok`.
    pub fn start_cluster_node_tls(tls: &ServerTls) -> Self {
        let redis = Self::launch_cluster_node(Some(tls), &[]);
        assert_eq!(redis.query(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), RespReply::Simple("OK".into()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !redis.query(&["CLUSTER", "INFO"]).text().contains("cluster_state:ok") {
            assert!(Instant::now() < deadline, "the one-node cluster did not reach cluster_state:ok within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    /// A sentinel speaking TLS on [`PrivateRedis::tls_port`] and monitoring `primary`'s TLS
    /// port over TLS (`tls-replication yes`) as `service`.
    pub fn start_sentinel_tls(tls: &ServerTls, primary: &PrivateRedis, service: &str) -> Self {
        let configuration = format!(
            "tls-replication yes\nsentinel monitor {service} 127.0.0.1 {} 1\n\
             sentinel down-after-milliseconds {service} 5000\n",
            primary.tls_port()
        );
        Self::launch_sentinel(&configuration, service, tls_args(tls), Some(free_port()))
    }

    /// One of `quorum`'s sentinels monitoring the primary on `primary_port` as `service`, quick
    /// to act: the primary is judged down after `down_after`, a failover is retried after 2 s.
    pub fn start_sentinel(primary_port: u16, service: &str, quorum: u8, down_after: Duration) -> Self {
        let configuration = format!(
            "sentinel monitor {service} 127.0.0.1 {primary_port} {quorum}\n\
             sentinel down-after-milliseconds {service} {}\n\
             sentinel failover-timeout {service} 2000\n",
            down_after.as_millis()
        );
        Self::launch_sentinel(&configuration, service, Vec::new(), None)
    }

    fn launch_sentinel(configuration: &str, service: &str, extra_args: Vec<OsString>, tls_port: Option<u16>) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tessera-test-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("sentinel.conf");
        std::fs::write(&config, configuration).unwrap();
        let mut redis = Self {
            port,
            dir,
            durable: false,
            leading_args: vec![config.into(), "--sentinel".into()],
            extra_args,
            tls_port,
            child: None,
        };
        redis.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(redis.query(&["SENTINEL", "MASTER", service]), RespReply::Array(Some(_))) {
            assert!(Instant::now() < deadline, "the sentinel did not report on {service} within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    /// A cluster-enabled node that belongs to no cluster yet, announced as 127.0.0.1, its cluster
    /// bus on a free port of its own; `options` are added to the command line (e.g.
    /// `--cluster-node-timeout 2000`). [`crate::PrivateCluster`] joins such nodes.
    pub fn start_cluster_node(options: &[&str]) -> Self {
        Self::launch_cluster_node(None, options)
    }

    /// [`Self::start_cluster_node`] speaking TLS on [`PrivateRedis::tls_port`] as well, its
    /// cluster bus and replication links in TLS (`tls-cluster`, `tls-replication`): the ports
    /// it announces to TLS clients are its TLS ports.
    pub fn start_cluster_node_tls_with(tls: &ServerTls, options: &[&str]) -> Self {
        Self::launch_cluster_node(Some(tls), options)
    }

    /// A cluster-enabled node announced as 127.0.0.1 (which the test certificate names; a lone
    /// node knows no address of its own and would announce an empty one), its cluster bus on a
    /// free port of its own.
    fn launch_cluster_node(tls: Option<&ServerTls>, options: &[&str]) -> Self {
        let mut args: Vec<OsString> = tls.map(tls_args).unwrap_or_default();
        args.extend(["--cluster-enabled", "yes", "--cluster-announce-ip", "127.0.0.1"].map(OsString::from));
        if tls.is_some() {
            args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(OsString::from));
        }
        args.extend(["--cluster-port".into(), free_port().to_string().into()]);
        args.extend(options.iter().map(OsString::from));
        Self::launch_with(false, args, tls.is_some())
    }

    /// A replica of the master listening on `master_port` (`--replicaof`), returned once its
    /// link is up and the first synchronisation is done.
    pub fn start_replica_of(master_port: u16) -> Self {
        let args = ["--replicaof", "127.0.0.1", &master_port.to_string()].map(OsString::from).to_vec();
        let replica = Self::launch_with(false, args, false);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = replica.info("replication");
            if info.contains("master_link_status:up") && info.contains("master_sync_in_progress:0") {
                return replica;
            }
            assert!(Instant::now() < deadline, "the replica's link did not come up within 10 s: {info}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn launch(durable: bool) -> Self {
        Self::launch_with(durable, Vec::new(), false)
    }

    fn launch_with(durable: bool, extra_args: Vec<OsString>, tls: bool) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tessera-test-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tls_port = tls.then(free_port);
        let mut redis = Self { port, dir, durable, leading_args: Vec::new(), extra_args, tls_port, child: None };
        redis.restart();
        redis
    }

    /// The TLS port of a server started with TLS.
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("this server was started without TLS")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: like a crash) and waits until its port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A frozen server must run again to die at once and free its port.
            let _ = signal::send(child.id(), Signal::Continue);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Commands the server has processed so far (`INFO stats`), those run by Lua scripts
    /// included; the INFO itself is counted in the next reading, so a delta between two
    /// readings includes one INFO.
    pub fn commands_processed(&self) -> u64 {
        let text = self.info("stats");
        text.lines()
            .find_map(|line| line.strip_prefix("total_commands_processed:"))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or_else(|| panic!("no total_commands_processed in {text:?}"))
    }

    /// Calls per command name (`INFO commandstats`), commands run inside scripts included.
    pub fn command_calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.info("commandstats")
            .lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats.split(',').find_map(|field| field.strip_prefix("calls="))?.parse().ok()?;
                Some((name.to_owned(), calls))
            })
            .collect()
    }

    fn info(&self, section: &str) -> String {
        self.query(&["INFO", section]).text()
    }

    /// Sends one command (arguments as separate strings, so binary-safe) on a connection of
    /// its own and returns its whole reply: for tests that read the database exactly as it is.
    pub fn query(&self, args: &[&str]) -> RespReply {
        crate::resp::query(self.port, args)
    }

    /// [`Self::query`] that reports a refused or closed connection instead of panicking.
    pub fn try_query(&self, args: &[&str]) -> std::io::Result<RespReply> {
        crate::resp::try_query(self.port, args)
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers — a slow Redis.
    pub fn freeze(&self) {
        self.signal(Signal::Stop);
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal(Signal::Continue);
    }

    fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("the server is running");
        signal::send(child.id(), signal).unwrap_or_else(|error| panic!("cannot send {signal:?}: {error}"));
    }

    /// Starts the server again on the same port and waits until it answers PING.
    pub fn restart(&mut self) {
        self.stop();
        let binary = env::required(env::REDIS_SERVER);
        let persistence: &[&str] =
            if self.durable { &["--appendonly", "yes", "--appendfsync", "always"] } else { &["--appendonly", "no"] };
        let tls_port: Vec<String> =
            self.tls_port.map(|port| vec!["--tls-port".to_owned(), port.to_string()]).unwrap_or_default();
        let child = Command::new(&binary)
            .args(&self.leading_args)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(persistence)
            .arg("--dir")
            .arg(&self.dir)
            .args(tls_port)
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {binary}: {error}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers_ping(self.port) {
            assert!(Instant::now() < deadline, "redis-server on port {} did not answer PING within 10 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_args(tls: &ServerTls) -> Vec<OsString> {
    let client_certificates = match tls.client_certificates {
        ClientCertificates::Optional => "optional",
        ClientCertificates::Required => "yes",
    };
    let mut args: Vec<OsString> = Vec::new();
    args.extend(["--tls-cert-file".into(), tls.certificate.cert.clone().into()]);
    args.extend(["--tls-key-file".into(), tls.certificate.key.clone().into()]);
    args.extend(["--tls-ca-cert-file".into(), tls.ca.clone().into()]);
    args.extend(["--tls-auth-clients".into(), client_certificates.into()]);
    args
}

/// Whether a Redis on 127.0.0.1:`port` answers PING now (within 500 ms).
pub fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0_u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
