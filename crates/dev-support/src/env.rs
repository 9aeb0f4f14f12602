//! The environment `cargo xtask test` hands the tests: where the shared Redis topologies are
//! and which tools it installed. Both sides name the variables from here.

/// `redis://` URL of the shared standalone server.
pub const REDIS_URL: &str = "TESSERA_TEST_REDIS_URL";
/// `redis-cluster://` URL of the shared 6-node cluster.
pub const REDIS_CLUSTER_URL: &str = "TESSERA_TEST_REDIS_CLUSTER_URL";
/// `redis-sentinel://` URL of the shared sentinel set-up.
pub const REDIS_SENTINEL_URL: &str = "TESSERA_TEST_REDIS_SENTINEL_URL";
/// Absolute path of `redis-server`, for tests that run (and stop, and restart) their own.
pub const REDIS_SERVER: &str = "TESSERA_TEST_REDIS_SERVER";
/// Absolute path of the `tessera` binary built for the run.
pub const TESSERA_BIN: &str = "TESSERA_TEST_BIN";
/// Absolute path of `nginx`.
pub const NGINX: &str = "TESSERA_TEST_NGINX";
/// Absolute path of `caddy`.
pub const CADDY: &str = "TESSERA_TEST_CADDY";
/// Absolute path of `promtool`.
pub const PROMTOOL: &str = "TESSERA_TEST_PROMTOOL";
/// The Python of the FastAPI example's environment.
pub const FASTAPI_PYTHON: &str = "TESSERA_TEST_FASTAPI_PYTHON";

const HOW_TO_GET_IT: &str = "run the tests with `cargo xtask test` (it installs redis-server and the other tools when missing and starts private Redis servers)";

/// A variable `cargo xtask test` sets; a missing one fails the test with the fix.
pub fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{name} is not set: {HOW_TO_GET_IT}"),
    }
}

/// One of the shared Redis topologies `cargo xtask test` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    Standalone,
    Cluster,
    Sentinel,
}

impl Topology {
    pub const ALL: [Self; 3] = [Self::Standalone, Self::Cluster, Self::Sentinel];

    /// `standalone`, `cluster` or `sentinel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Cluster => "cluster",
            Self::Sentinel => "sentinel",
        }
    }

    /// The variable that holds its URL.
    pub fn url_variable(self) -> &'static str {
        match self {
            Self::Standalone => REDIS_URL,
            Self::Cluster => REDIS_CLUSTER_URL,
            Self::Sentinel => REDIS_SENTINEL_URL,
        }
    }

    /// Its URL, from the environment `cargo xtask test` sets.
    pub fn url(self) -> String {
        required(self.url_variable())
    }
}

impl std::fmt::Display for Topology {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}
