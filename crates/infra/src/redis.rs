//! The fred pool for a [`RedisSettings`]: standalone, cluster or sentinel, with the timeouts and
//! the reconnect policy docs/FRED.md shows necessary (infinite capped retries *and* a command
//! timeout, so commands fail fast while Redis is away and the pool heals by itself).
//!
//! On a cluster or with sentinels the reconnect delay is capped at 250 ms ([`reconnect_max`]):
//! there a failover is followed only at a reconnection attempt. Every pool speaks RESP3, which
//! carries the near cache's client-tracking invalidations, and keeps 4,096 messages per event
//! receiver ([`EVENT_CHANNEL_CAPACITY`]; fred's default of 32 lags under invalidation bursts).
//! TLS applies to every connection fred makes: cluster nodes, sentinels and the primary.

use fred::{
    clients::{Client, Pool},
    interfaces::ClientLike,
    types::{
        Builder,
        config::{Config, ReconnectPolicy, Server, ServerConfig},
    },
};

use config::{HostPort, RedisSettings, RedisTarget};

use crate::error::InfraError;

/// fred's event channels (invalidations, errors, reconnections) hold this many messages per
/// receiver; a receiver further behind gets `Lagged` (the near cache then flushes). fred's
/// default of 32 is one burst of a multi-key DEL.
const EVENT_CHANNEL_CAPACITY: usize = 4_096;

/// Retry forever: a finite budget leaves a dead client once it runs out (docs/FRED.md).
const UNLIMITED_ATTEMPTS: u32 = 0;
const BACKOFF_BASE: u32 = 2;
/// See [`reconnect_max`].
const FAILOVER_RECONNECT_MAX: std::time::Duration = std::time::Duration::from_millis(250);

pub(crate) fn build_pool(settings: &RedisSettings) -> Result<Pool, InfraError> {
    let (server, database) = match &settings.target {
        RedisTarget::Standalone { server, db } => (ServerConfig::Centralized { server: fred_server(server) }, *db),
        RedisTarget::Cluster { seeds } => {
            (ServerConfig::Clustered { hosts: seeds.iter().map(fred_server).collect(), policy: Default::default() }, 0)
        }
        RedisTarget::Sentinel { sentinels, service_name, db } => (
            ServerConfig::Sentinel {
                hosts: sentinels.iter().map(fred_server).collect(),
                service_name: service_name.clone(),
            },
            *db,
        ),
    };
    builder(settings, server, database)?.build_pool(settings.pool_size).map_err(|source| InfraError::Build {
        addresses: settings.target.addresses(),
        reason: source.details().to_owned(),
    })
}

/// A client of one sentinel (not the primary it monitors), configured as the pool is: the same
/// credentials (fred sends them to sentinels too), TLS, timeouts and reconnect policy.
pub(crate) fn sentinel_client(settings: &RedisSettings, sentinel: &HostPort) -> Result<Client, InfraError> {
    builder(settings, ServerConfig::Centralized { server: fred_server(sentinel) }, 0)?
        .build()
        .map_err(|source| InfraError::Build { addresses: sentinel.to_string(), reason: source.details().to_owned() })
}

fn builder(settings: &RedisSettings, server: ServerConfig, database: u8) -> Result<Builder, InfraError> {
    let config = Config {
        server,
        username: settings.username.clone(),
        password: settings.password.as_ref().map(|password| password.expose().to_owned()),
        database: (database != 0).then_some(database),
        fail_fast: true,
        // RESP3 carries client-tracking invalidations on the data connections, which the near
        // cache needs; Tessera already needs Redis 6 (LPOS), the first to speak it.
        version: fred::types::RespVersion::RESP3,
        // Applies to every connection fred makes: cluster nodes, sentinels and the primary.
        tls: settings
            .tls
            .as_ref()
            .map(crate::tls::tls_config)
            .transpose()
            .map_err(|reason| InfraError::TlsSetup { addresses: settings.target.addresses(), reason })?,
        ..Config::default()
    };
    let policy = ReconnectPolicy::new_exponential(
        UNLIMITED_ATTEMPTS,
        millis_u32(settings.reconnect_min.min(reconnect_max(settings))),
        millis_u32(reconnect_max(settings)),
        BACKOFF_BASE,
    );
    let mut builder = Builder::from_config(config);
    builder
        .with_connection_config(|connection| {
            connection.connection_timeout = settings.connect_timeout;
            connection.internal_command_timeout = settings.connect_timeout.max(settings.command_timeout);
        })
        .with_performance_config(|performance| {
            performance.default_command_timeout = settings.command_timeout;
            performance.broadcast_channel_capacity = EVENT_CHANNEL_CAPACITY;
        })
        .set_policy(policy);
    Ok(builder)
}

/// Why a TLS handshake with one node fails, if it does: fred reports a sentinel set it could
/// not reach as "failed to connect to all sentinel nodes" and drops each node's own error, so
/// start-up asks each sentinel again with a plain client to name a certificate problem.
pub(crate) async fn tls_handshake_problem(settings: &RedisSettings, node: &HostPort) -> Option<&'static str> {
    let tls = crate::tls::tls_config(settings.tls.as_ref()?).ok()?;
    let config = Config {
        server: ServerConfig::Centralized { server: fred_server(node) },
        version: fred::types::RespVersion::RESP3,
        tls: Some(tls),
        ..Config::default()
    };
    let client = Builder::from_config(config)
        .with_connection_config(|connection| connection.connection_timeout = settings.connect_timeout)
        .build()
        .ok()?;
    let problem = match tokio::time::timeout(settings.connect_timeout, client.init()).await {
        Ok(Err(error)) => crate::tls::handshake_problem(error.details()),
        Ok(Ok(_)) | Err(_) => None,
    };
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), client.quit()).await;
    problem
}

/// The longest reconnect delay: `TESSERA_REDIS_RECONNECT_MAX_MS`, but at most
/// [`FAILOVER_RECONNECT_MAX`] where a replica takes over. On a cluster a dead primary stalls
/// every command of the client until a reconnection attempt finds its replica promoted
/// (docs/FRED.md), so a long delay between attempts would stall the healthy shards that much
/// longer; an attempt costs one CLUSTER SLOTS and one connection attempt to the dead node. With
/// sentinels, a connection in its delay takes the watch's forced reconnection only when the
/// delay ends (docs/SENTINEL.md); an attempt costs one question to a sentinel.
fn reconnect_max(settings: &RedisSettings) -> std::time::Duration {
    match settings.target {
        RedisTarget::Cluster { .. } | RedisTarget::Sentinel { .. } => {
            settings.reconnect_max.min(FAILOVER_RECONNECT_MAX)
        }
        RedisTarget::Standalone { .. } => settings.reconnect_max,
    }
}

fn fred_server(node: &HostPort) -> Server {
    Server::new(node.host.as_str(), node.port)
}

fn millis_u32(duration: std::time::Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}
