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
//!   announced no new primary within its bound, and when the sentinels, asked every second
//!   while nothing is followed, agree on a primary some connection is not on (missed
//!   announcements: a sentinel connection that dropped).
//!
//! The decisions, and the rules they keep, are [`machine`]'s; the [`Follower`] here is its
//! driver: it feeds the machine what happens and carries out its actions, running every query
//! (asking the sentinels, a round of realignment) as a task whose result comes back as one more
//! input, so that it never waits on a query before closing the gate.

mod machine;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use fred::{
    clients::{Client, Pool},
    interfaces::{ClientLike, EventInterface, PubsubInterface, ServerInterface},
    types::{CustomCommand, Message, Value, config::Server},
};
use tokio::{
    sync::mpsc,
    task::{self, JoinSet},
    time::MissedTickBehavior,
};

use cache_toolkit::{GateClosed, PrimaryGate};
use config::{HostPort, RedisSettings, RedisTarget};

use crate::error::InfraError;
use machine::{Action, Closing, Input, Machine, Placement, Query};

/// How often the follower wakes its machine to act on time (due rounds, checks, the failover
/// bound): as fine as the shortest pause the machine keeps.
const TICK: Duration = machine::REALIGN_PAUSE;
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
    /// A sentinel gave the failover up; another sentinel may still be running it.
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
            service_name: Arc::from(service_name.as_str()),
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

/// Keeps the pool on the primary; the only task that opens the gate. It drives a [`Machine`]:
/// every announcement, query result, `READONLY` report and tick is one step, and the loop
/// itself never awaits a query, so an announced failover closes the gate within one turn.
struct Follower {
    pool: Pool,
    sentinels: Arc<[Sentinel]>,
    service_name: Arc<str>,
    gate: Arc<PrimaryGate>,
    connect_timeout: Duration,
}

impl From<Announcement> for Input {
    fn from(announcement: Announcement) -> Self {
        match announcement {
            Announcement::FailoverStarted => Input::FailoverStarted,
            Announcement::SwitchedTo(primary) => Input::SwitchedTo(primary),
            Announcement::FailoverAborted => Input::FailoverAborted,
            Announcement::Resubscribed => Input::Resubscribed,
        }
    }
}

impl Follower {
    async fn run(self, mut announcements: mpsc::Receiver<Announcement>) {
        let (results, mut answered) = mpsc::channel(8);
        let mut queries = Queries { tasks: JoinSet::new(), if_lost: HashMap::new(), results };
        let mut machine = Machine::new(self.sentinels.len(), now());
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let input = tokio::select! {
                // Announcements first: a failover start must close the gate before anything else.
                biased;
                announcement = announcements.recv() => match announcement {
                    Some(announcement) => Input::from(announcement),
                    None => return,
                },
                () = self.gate.read_only_reported() => Input::ReadOnly,
                Some(result) = answered.recv() => result,
                Some(ended) = queries.tasks.join_next_with_id(), if !queries.tasks.is_empty() => {
                    match queries.reap(ended) {
                        Some(lost) => lost,
                        None => continue,
                    }
                }
                _ = tick.tick() => Input::Tick,
            };
            for action in machine.step(now(), input) {
                self.act(action, &mut queries);
            }
        }
    }

    fn act(&self, action: Action, queries: &mut Queries) {
        match action {
            Action::CloseGate(why) => self.close_gate(why),
            Action::OpenGate { primary, refused_for } => {
                self.gate.open();
                tracing::warn!(
                    %primary,
                    refused_ms = refused_for.as_millis() as u64,
                    "every Redis connection is on the primary: commands resume"
                );
            }
            Action::AskSentinels(query) => {
                let asked =
                    ask_sentinels(Arc::clone(&self.sentinels), Arc::clone(&self.service_name), self.connect_timeout);
                let results = queries.results.clone();
                let unanswered = Input::SentinelsAnswered { query, answers: vec![None; self.sentinels.len()] };
                queries.spawn(
                    async move {
                        let answers = asked.await;
                        let _ = results.send(Input::SentinelsAnswered { query, answers }).await;
                    },
                    unanswered,
                );
            }
            Action::Realign { query, target } => {
                let unfinished = Input::RoundEnded { query, target: target.clone(), placement: Placement::Unanswered };
                let round = realign_round(self.pool.clone(), target, query, queries.results.clone());
                queries.spawn(round, unfinished);
            }
        }
    }

    fn close_gate(&self, why: Closing) {
        let already_closed_for_a_failover = self.gate.closed() == Some(GateClosed::Failover);
        match why {
            Closing::FailoverStarted => {
                self.gate.close(GateClosed::Failover);
                if !already_closed_for_a_failover {
                    tracing::warn!("failover started: refusing Redis commands until the new primary is known");
                }
            }
            Closing::PrimaryAnnounced => {
                self.gate.close(GateClosed::Failover);
                tracing::warn!(
                    "the sentinels announced a new primary: refusing Redis commands until every connection is on it"
                );
            }
            Closing::Misplaced { primary } => {
                self.gate.close(GateClosed::Failover);
                tracing::warn!(
                    %primary,
                    "Redis connections are not on the primary the sentinels name: refusing commands and reconnecting"
                );
            }
            // The gate logged the reply when it closed itself.
            Closing::ReadOnlyReply => self.gate.close(GateClosed::ReadOnlyReply),
        }
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// The follower's queries, run as tasks it owns: they are aborted when it ends.
#[derive(Debug)]
struct Queries {
    tasks: JoinSet<()>,
    /// For each running task, what the machine is told should it end without reporting (a
    /// panic): every query must end, or the machine waits for it forever.
    if_lost: HashMap<task::Id, Input>,
    results: mpsc::Sender<Input>,
}

impl Queries {
    fn spawn(&mut self, query: impl Future<Output = ()> + Send + 'static, if_lost: Input) {
        let task = self.tasks.spawn(query);
        self.if_lost.insert(task.id(), if_lost);
    }

    /// A task ended: what to tell the machine if it ended without reporting.
    fn reap(&mut self, ended: Result<(task::Id, ()), task::JoinError>) -> Option<Input> {
        match ended {
            Ok((id, ())) => {
                self.if_lost.remove(&id);
                None
            }
            Err(error) => {
                tracing::error!(%error, "a query of the sentinel follower failed");
                self.if_lost.remove(&error.id())
            }
        }
    }
}

/// Asks every configured sentinel at once where the primary is, each bounded by `timeout`: one
/// entry per sentinel, `None` for one that is not connected or did not name a primary.
async fn ask_sentinels(sentinels: Arc<[Sentinel]>, service_name: Arc<str>, timeout: Duration) -> Vec<Option<Server>> {
    let asked = sentinels.iter().map(|sentinel| ask_sentinel(sentinel.client(), &service_name, timeout));
    futures::future::join_all(asked).await
}

async fn ask_sentinel(sentinel: Option<Client>, service_name: &str, timeout: Duration) -> Option<Server> {
    let sentinel = sentinel.filter(ClientLike::is_connected)?;
    let asked = sentinel.custom::<Value, _>(
        CustomCommand::new_static("SENTINEL", fred::types::ClusterHash::Random, false),
        vec!["get-master-addr-by-name", service_name],
    );
    match tokio::time::timeout(timeout, asked).await {
        Ok(Ok(answer)) => named_primary(&answer),
        Ok(Err(error)) => {
            tracing::debug!(%error, "a sentinel did not name the primary");
            None
        }
        Err(_) => {
            tracing::debug!("a sentinel did not name the primary in time");
            None
        }
    }
}

/// `SENTINEL get-master-addr-by-name` answers `[host, port]`, or nil for an unknown service.
fn named_primary(answer: &Value) -> Option<Server> {
    let Value::Array(address) = answer else { return None };
    let [host, port] = address.as_slice() else { return None };
    let host = host.as_str()?;
    let port: u16 = port.as_str()?.parse().ok()?;
    Some(Server::new(&*host, port))
}

/// One round towards `primary`: finds where each pooled connection is; reports the misplaced
/// ones at once (the gate must close before they are reconnected), reconnects them (at once,
/// each bounded), then reports the round's placement.
async fn realign_round(pool: Pool, primary: Server, query: Query, results: mpsc::Sender<Input>) {
    let clients = pool.clients();
    let placements = futures::future::join_all(clients.iter().map(|client| placement(client, &primary))).await;
    let misplaced: Vec<&Client> = clients
        .iter()
        .zip(&placements)
        .filter_map(|(client, placement)| (*placement == Placement::Misplaced).then_some(client))
        .collect();
    if !misplaced.is_empty() {
        tracing::info!(%primary, connections = misplaced.len(), "reconnecting the Redis connections not on the primary");
        let _ = results.send(Input::MisplacedFound { query, target: primary.clone() }).await;
        let reconnections =
            misplaced.iter().map(|client| tokio::time::timeout(STEP_TIMEOUT, client.force_reconnection()));
        futures::future::join_all(reconnections).await;
    }
    let worst = Placement::worst(placements.iter().copied());
    let _ = results.send(Input::RoundEnded { query, target: primary, placement: worst }).await;
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
