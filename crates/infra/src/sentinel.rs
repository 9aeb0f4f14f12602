//! [`SentinelWatch`]: keeps a sentinel pool on the current primary (docs/SENTINEL.md).
//!
//! fred asks the sentinels for the primary only when a connection (re)connects, and checks
//! `ROLE` then; it does not follow the sentinels' announcements. After a graceful failover
//! the old primary keeps accepting writes until the sentinels demote it, seconds later, and
//! those writes are then lost. So the watch:
//! - listens to every sentinel's events (PSUBSCRIBE on each; one reachable sentinel is enough);
//! - closes the [`PrimaryGate`] when a failover of our service starts (`+selected-slave`,
//!   published before the replica is promoted), so no write reaches the old primary after it;
//! - on `+switch-master`, reconnects every pooled connection that is not on the new primary
//!   and opens the gate once each one is there and answers `ROLE` as a master;
//! - does the same when a command got `READONLY` (a connection on a replica), when a failover
//!   announced no result within [`FAILOVER_BOUND`], and when the sentinels, asked every
//!   [`CHECK_PERIOD`], agree on a primary some connection is not on (missed announcements:
//!   a sentinel connection that dropped).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use fred::{
    clients::{Client, Pool},
    interfaces::{ClientLike, EventInterface, PubsubInterface, ServerInterface},
    types::{CustomCommand, Message, Value, config::Server},
};
use tokio::{sync::mpsc, task::JoinSet, time::Instant};

use cache_toolkit::{GateClosed, PrimaryGate};
use config::{HostPort, RedisSettings, RedisTarget};

use crate::error::InfraError;

/// How often the sentinels are asked where the primary is, in case an announcement was missed.
const CHECK_PERIOD: Duration = Duration::from_secs(1);
/// A failover that started but announced neither a new primary nor an abort within this long:
/// the gate opens on whatever primary the sentinels then agree on.
const FAILOVER_BOUND: Duration = Duration::from_secs(10);
/// Between two rounds of reconnecting the connections that are not on the primary yet; it
/// doubles after each failed round, up to [`CHECK_PERIOD`].
const REALIGN_PAUSE: Duration = Duration::from_millis(50);
/// One connection's forced reconnection or ROLE answer is awaited at most this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);
/// Between two attempts to reach a sentinel whose first connection failed.
const SENTINEL_RETRY: Duration = Duration::from_secs(1);

/// What a sentinel announced about our service.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Announcement {
    /// A replica was chosen for promotion: the primary stops being one any moment.
    FailoverStarted,
    /// The failover is over: this is the primary now.
    SwitchedTo(Server),
    /// The failover was given up: the primary did not change.
    FailoverAborted,
    /// A sentinel connection was (re)established: announcements may have been missed.
    Resubscribed,
}

/// The running watch: its tasks end when it is stopped or dropped.
#[derive(Debug)]
pub(crate) struct SentinelWatch {
    tasks: JoinSet<()>,
    sentinels: Arc<[Sentinel]>,
}

/// One configured sentinel and, once reached, its connection.
#[derive(Debug)]
struct Sentinel {
    address: HostPort,
    connected: Mutex<Option<Client>>,
}

impl Sentinel {
    fn client(&self) -> Option<Client> {
        self.connected.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl SentinelWatch {
    /// Starts watching for `settings`' sentinel target; `None` for other targets.
    pub(crate) fn start(
        settings: &RedisSettings,
        pool: &Pool,
        gate: Arc<PrimaryGate>,
    ) -> Result<Option<Self>, InfraError> {
        let RedisTarget::Sentinel { sentinels, service_name, .. } = &settings.target else { return Ok(None) };
        // A client is built here once per sentinel, so a setting fred refuses fails start-up.
        for address in sentinels {
            crate::redis::sentinel_client(settings, address)?;
        }
        let sentinels: Arc<[Sentinel]> = sentinels
            .iter()
            .map(|address| Sentinel { address: address.clone(), connected: Mutex::new(None) })
            .collect();
        let (announcements, received) = mpsc::channel(64);
        let mut tasks = JoinSet::new();
        let settings = Arc::new(settings.clone());
        for index in 0..sentinels.len() {
            let listener = Listener {
                settings: Arc::clone(&settings),
                sentinels: Arc::clone(&sentinels),
                index,
                service_name: service_name.clone(),
                announcements: announcements.clone(),
            };
            tasks.spawn(listener.run());
        }
        let follower = Follower {
            pool: pool.clone(),
            sentinels: Arc::clone(&sentinels),
            service_name: service_name.clone(),
            gate,
            connect_timeout: settings.connect_timeout,
        };
        tasks.spawn(follower.run(received));
        Ok(Some(Self { tasks, sentinels }))
    }

    /// Stops the tasks and closes the sentinel connections (bounded).
    pub(crate) async fn stop(mut self, timeout: Duration) {
        self.tasks.shutdown().await;
        for sentinel in self.sentinels.iter() {
            if let Some(client) = sentinel.client() {
                let _ = tokio::time::timeout(timeout, client.quit()).await;
            }
        }
    }
}

/// Listens to one sentinel's events and sends ours on.
struct Listener {
    settings: Arc<RedisSettings>,
    sentinels: Arc<[Sentinel]>,
    index: usize,
    service_name: String,
    announcements: mpsc::Sender<Announcement>,
}

impl Listener {
    /// Connects (a fresh client per attempt, every [`SENTINEL_RETRY`] until one answers: a
    /// client whose first connection failed is not reused), subscribes, and forwards the
    /// announcements; subscribes again after each reconnection.
    async fn run(self) {
        let address = self.sentinels[self.index].address.to_string();
        let (sentinel, _connection) = loop {
            if let Ok(client) = crate::redis::sentinel_client(&self.settings, &self.sentinels[self.index].address) {
                match client.init().await {
                    Ok(connection) => break (client, connection),
                    Err(error) => {
                        tracing::debug!(%error, sentinel = %address, "sentinel not reachable; retrying");
                        let _ = tokio::time::timeout(SENTINEL_RETRY, client.quit()).await;
                    }
                }
            }
            tokio::time::sleep(SENTINEL_RETRY).await;
        };
        let mut messages = sentinel.message_rx();
        let mut reconnections = sentinel.reconnect_rx();
        *self.sentinels[self.index].connected.lock().unwrap_or_else(PoisonError::into_inner) = Some(sentinel.clone());
        subscribe(&sentinel, &address, &self.announcements).await;
        loop {
            tokio::select! {
                message = messages.recv() => match message {
                    Ok(message) => {
                        if let Some(announcement) = announcement(&message, &self.service_name) {
                            tracing::info!(sentinel = %address, event = %message.channel, "sentinel announced a failover step");
                            if self.announcements.send(announcement).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let _ = self.announcements.send(Announcement::Resubscribed).await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                reconnected = reconnections.recv() => match reconnected {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        subscribe(&sentinel, &address, &self.announcements).await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

async fn subscribe(sentinel: &Client, address: &str, announcements: &mpsc::Sender<Announcement>) {
    // Every event: the failover's steps come on channels named after them.
    if let Err(error) = sentinel.psubscribe("*").await {
        tracing::warn!(%error, sentinel = address, "cannot subscribe to the sentinel's events");
    }
    let _ = announcements.send(Announcement::Resubscribed).await;
}

/// Reads a sentinel event about `service_name`. The texts are
/// `+switch-master <name> <old ip> <old port> <new ip> <new port>`, and for the others
/// `<kind> <instance> <ip> <port> [@ <master name> <master ip> <master port>]`.
fn announcement(message: &Message, service_name: &str) -> Option<Announcement> {
    let text = message.value.as_str()?;
    let words: Vec<&str> = text.split_whitespace().collect();
    let master_name = match words.iter().position(|word| *word == "@") {
        Some(at) => words.get(at + 1).copied(),
        None if message.channel == "+switch-master" => words.first().copied(),
        None => words.get(1).copied(),
    };
    if master_name != Some(service_name) {
        return None;
    }
    match &*message.channel {
        "+selected-slave" | "+failover-state-send-slaveof-noone" => Some(Announcement::FailoverStarted),
        "+switch-master" => {
            let (host, port) = (words.get(3)?, words.get(4)?.parse().ok()?);
            Some(Announcement::SwitchedTo(Server::new(*host, port)))
        }
        channel if channel.starts_with("-failover-abort") => Some(Announcement::FailoverAborted),
        _ => None,
    }
}

/// Keeps the pool on the primary; the only task that opens the gate.
struct Follower {
    pool: Pool,
    sentinels: Arc<[Sentinel]>,
    service_name: String,
    gate: Arc<PrimaryGate>,
    connect_timeout: Duration,
}

/// Where one pooled connection is, as seen from the primary the sentinels name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// On that primary, which answers `ROLE` as a master.
    OnPrimary,
    /// On another node, or on one that answers `ROLE` as a replica: must reconnect.
    Misplaced,
    /// On that primary, which does not answer (down): fred reconnects by itself.
    Unanswered,
}

/// The primary the pool must reach before the gate opens.
#[derive(Clone, Debug)]
struct Target {
    primary: Server,
    /// Since when commands may have been refused for it.
    since: Instant,
    /// Named by a `+switch-master`: trusted over the sentinels' answers for [`FAILOVER_BOUND`],
    /// since the sentinels that did not lead the failover learn of it only seconds later.
    announced: bool,
}

impl Target {
    fn from_sentinels(primary: Server) -> Self {
        Self { primary, since: Instant::now(), announced: false }
    }

    /// Whether the sentinels' majority may replace this primary.
    fn revisable(&self) -> bool {
        !self.announced || self.since.elapsed() >= FAILOVER_BOUND
    }
}

/// What the follower remembers between two events. Each event has one method on
/// [`Follower`]; the loop only chooses the next event.
#[derive(Debug)]
struct FollowerState {
    /// The next round of reconnections, further apart while rounds fail (a primary that
    /// answers as a replica must not see a storm of reconnections).
    next_round: Instant,
    failed_rounds: u32,
    /// When the gate was closed for a failover whose end is not announced yet.
    failover_since: Option<Instant>,
    /// The primary the pool must reach before the gate opens.
    target: Option<Target>,
    /// The primary the pool was last found on: the other sentinels' copies of an announcement
    /// already followed must not close the gate again.
    aligned_on: Option<Server>,
}

impl FollowerState {
    fn new() -> Self {
        Self { next_round: Instant::now(), failed_rounds: 0, failover_since: None, target: None, aligned_on: None }
    }

    /// Whether a `READONLY` reply should make the follower ask the sentinels: only while it
    /// follows nothing already.
    fn idle(&self) -> bool {
        self.failover_since.is_none() && self.target.is_none()
    }

    /// Whether a round of reconnections is due when `next_round` comes.
    fn realigning(&self) -> bool {
        self.target.is_some() && self.failover_since.is_none()
    }
}

impl Follower {
    async fn run(self, mut announcements: mpsc::Receiver<Announcement>) {
        let mut check = tokio::time::interval(CHECK_PERIOD);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut state = FollowerState::new();
        loop {
            tokio::select! {
                announcement = announcements.recv() => match announcement {
                    None => return,
                    Some(Announcement::FailoverStarted) => self.on_failover_started(&mut state),
                    Some(Announcement::SwitchedTo(primary)) => self.on_switched_to(&mut state, primary),
                    Some(Announcement::FailoverAborted | Announcement::Resubscribed) => {
                        self.on_failover_over_or_missed(&mut state).await;
                    }
                },
                () = self.gate.read_only_reported(), if state.idle() => self.on_read_only(&mut state).await,
                _ = check.tick(), if state.target.is_none() => self.on_check(&mut state).await,
                () = tokio::time::sleep_until(state.next_round), if state.realigning() => {
                    self.on_round(&mut state).await;
                }
            }
        }
    }

    /// `+selected-slave`: the primary stops being one any moment; commands are refused.
    fn on_failover_started(&self, state: &mut FollowerState) {
        if state.failover_since.is_none() {
            tracing::warn!("failover started: refusing Redis commands until the new primary is known");
        }
        self.gate.close(GateClosed::Failover);
        state.failover_since = Some(Instant::now());
        state.target = None;
    }

    /// `+switch-master`: the pool must move to `primary` before the gate opens.
    fn on_switched_to(&self, state: &mut FollowerState, primary: Server) {
        let since = state.failover_since.take().unwrap_or_else(Instant::now);
        if state.aligned_on.as_ref() != Some(&primary) {
            self.gate.close(GateClosed::Failover);
        }
        if state.target.as_ref().is_none_or(|current| current.primary != primary) {
            tracing::info!(primary = %address(&primary), "the sentinels announced a new primary");
            state.target = Some(Target { primary, since, announced: true });
        }
    }

    /// A failover was aborted, or a sentinel connection came back (announcements may have
    /// been missed): follow the primary the sentinels agree on, unless an announced one is
    /// still trusted.
    async fn on_failover_over_or_missed(&self, state: &mut FollowerState) {
        state.failover_since = None;
        if state.target.as_ref().is_none_or(Target::revisable) {
            state.target = self.agreed_primary().await.map(Target::from_sentinels).or(state.target.take());
        }
    }

    /// A command got `READONLY`: some connection is on a replica.
    async fn on_read_only(&self, state: &mut FollowerState) {
        state.target = self.agreed_primary().await.map(Target::from_sentinels);
        if state.target.is_none() {
            tracing::warn!("no sentinel majority names a primary: Redis commands stay refused");
        }
    }

    /// Every [`CHECK_PERIOD`] while nothing is followed: a failover that never ended is given
    /// up after [`FAILOVER_BOUND`], and the sentinels are asked where the primary is.
    async fn on_check(&self, state: &mut FollowerState) {
        if state.failover_since.is_some_and(|since| since.elapsed() >= FAILOVER_BOUND) {
            tracing::warn!("a failover announced no result within {FAILOVER_BOUND:?}");
            state.failover_since = None;
        }
        if state.failover_since.is_none() {
            state.target = self.agreed_primary().await.map(Target::from_sentinels);
        }
    }

    /// One round of reconnections towards the target; the gate opens once every connection is
    /// on it.
    async fn on_round(&self, state: &mut FollowerState) {
        let Some(mut current) = state.target.take() else { return };
        let on_primary = self.realign_round(&current.primary).await;
        state.failed_rounds = if on_primary { 0 } else { state.failed_rounds.saturating_add(1) };
        state.next_round =
            Instant::now() + (REALIGN_PAUSE * 2_u32.saturating_pow(state.failed_rounds.min(5))).min(CHECK_PERIOD);
        if on_primary {
            if self.gate.closed().is_some() {
                self.gate.open();
                tracing::warn!(
                    primary = %address(&current.primary),
                    refused_ms = current.since.elapsed().as_millis() as u64,
                    "every Redis connection is on the primary: commands resume"
                );
            }
            state.aligned_on = Some(current.primary);
        } else if self.gate.closed().is_some() {
            // Still refusing: the sentinels may name another primary by now.
            if current.revisable()
                && let Some(agreed) = self.agreed_primary().await
                && agreed != current.primary
            {
                tracing::info!(primary = %address(&agreed), "the sentinels name another primary now");
                current = Target { primary: agreed, ..current };
            }
            state.target = Some(current);
        }
        // Otherwise nothing was misplaced, only unanswered: an outage, which fred rides out by
        // itself.
    }

    /// The primary most answering sentinels name, if more than half of them name it.
    async fn agreed_primary(&self) -> Option<Server> {
        let mut answers: Vec<Server> = Vec::new();
        for sentinel in self.sentinels.iter() {
            let Some(sentinel) = sentinel.client().filter(ClientLike::is_connected) else { continue };
            let asked = sentinel.custom::<Value, _>(
                CustomCommand::new_static("SENTINEL", fred::types::ClusterHash::Random, false),
                vec!["get-master-addr-by-name", self.service_name.as_str()],
            );
            match tokio::time::timeout(self.connect_timeout, asked).await {
                Ok(Ok(Value::Array(address))) => {
                    if let [host, port] = address.as_slice()
                        && let (Some(host), Some(port)) =
                            (host.as_str(), port.as_str().and_then(|port| port.parse().ok()))
                    {
                        answers.push(Server::new(host.as_ref(), port));
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::debug!(%error, "a sentinel did not name the primary"),
                Err(_) => tracing::debug!("a sentinel did not name the primary in time"),
            }
        }
        let most = answers.iter().max_by_key(|candidate| answers.iter().filter(|other| other == candidate).count())?;
        let votes = answers.iter().filter(|other| *other == most).count();
        (votes * 2 > answers.len()).then(|| most.clone())
    }

    /// One round: reconnects (at once, each bounded) the pooled connections that are not on
    /// `primary`; true when every connection is on it and it answers as a master. Closes the
    /// gate when a connection is found misplaced (a write there could be lost).
    async fn realign_round(&self, primary: &Server) -> bool {
        let clients = self.pool.clients();
        let placements = futures::future::join_all(clients.iter().map(|client| placement(client, primary))).await;
        let misplaced: Vec<&Client> = clients
            .iter()
            .zip(&placements)
            .filter_map(|(client, placement)| (*placement == Placement::Misplaced).then_some(client))
            .collect();
        if !misplaced.is_empty() {
            if self.gate.closed().is_none() {
                self.gate.close(GateClosed::Failover);
                tracing::warn!(
                    primary = %address(primary),
                    connections = misplaced.len(),
                    "Redis connections are not on the primary the sentinels name: refusing commands and reconnecting"
                );
            }
            let reconnections =
                misplaced.iter().map(|client| tokio::time::timeout(STEP_TIMEOUT, client.force_reconnection()));
            futures::future::join_all(reconnections).await;
        }
        placements.iter().all(|placement| *placement == Placement::OnPrimary)
    }
}

async fn placement(client: &Client, primary: &Server) -> Placement {
    if client.sentinel_primary().as_ref() != Some(primary) {
        return Placement::Misplaced;
    }
    let role = client.custom::<Value, Vec<Value>>(
        CustomCommand::new_static("ROLE", fred::types::ClusterHash::Random, false),
        vec![],
    );
    match tokio::time::timeout(STEP_TIMEOUT, role).await {
        Ok(Ok(Value::Array(parts))) => match parts.first().and_then(Value::as_str).as_deref() {
            Some("master") => Placement::OnPrimary,
            _ => Placement::Misplaced,
        },
        _ => Placement::Unanswered,
    }
}

fn address(server: &Server) -> String {
    format!("{}:{}", server.host, server.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(channel: &str, text: &str) -> Message {
        Message {
            channel: channel.into(),
            value: Value::String(text.into()),
            kind: fred::types::MessageKind::PMessage,
            server: Server::new("127.0.0.1", 26379),
        }
    }

    #[test]
    fn reads_the_failover_steps_of_our_service_only() {
        let cases = [
            (
                "+selected-slave",
                "slave 127.0.0.1:7001 127.0.0.1 7001 @ tessera 127.0.0.1 7000",
                Some(Announcement::FailoverStarted),
            ),
            (
                "+failover-state-send-slaveof-noone",
                "slave 127.0.0.1:7001 127.0.0.1 7001 @ tessera 127.0.0.1 7000",
                Some(Announcement::FailoverStarted),
            ),
            (
                "+switch-master",
                "tessera 127.0.0.1 7000 127.0.0.1 7001",
                Some(Announcement::SwitchedTo(Server::new("127.0.0.1", 7001))),
            ),
            ("-failover-abort-no-good-slave", "master tessera 127.0.0.1 7000", Some(Announcement::FailoverAborted)),
            ("+switch-master", "other 127.0.0.1 7000 127.0.0.1 7001", None),
            ("+selected-slave", "slave 127.0.0.1:7001 127.0.0.1 7001 @ other 127.0.0.1 7000", None),
            ("+sdown", "master tessera 127.0.0.1 7000", None),
            ("+switch-master", "tessera 127.0.0.1 7000 127.0.0.1", None),
            ("+switch-master", "tessera 127.0.0.1 7000 127.0.0.1 port", None),
        ];
        for (channel, text, expected) in cases {
            assert_eq!(announcement(&message(channel, text), "tessera"), expected, "{channel} {text}");
        }
    }
}
