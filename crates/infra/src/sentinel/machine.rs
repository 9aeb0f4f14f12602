//! [`Machine`]: the sentinel follower's decisions, apart from its I/O (docs/SENTINEL.md).
//!
//! It is told what happened ([`Input`]) and when, and answers what to do ([`Action`]): close or
//! open the [`PrimaryGate`](cache_toolkit::PrimaryGate), ask the sentinels where the primary is,
//! run a round of realignment towards a primary. It reads no clock, awaits nothing and touches
//! no connection (it only writes log lines); the driver (`Follower`, in the parent module) runs
//! each query as a task and feeds its result back, so closing the gate never waits behind a
//! query. What it keeps, and why:
//!
//! - **`FailoverStarted` closes the gate in that same step**, whatever is outstanding. The
//!   leading sentinel announces `+selected-slave` before it promotes the replica, and every
//!   write the old primary acknowledges after the promotion is lost. The failover is *in
//!   progress* from then and any target is dropped. Each query carries a [`Query`] number, and
//!   a result is used only for the query outstanding, if it started after the last failover
//!   start, change of target and `READONLY` reply: an answer or a round begun before cannot
//!   open the gate.
//! - **While a failover is in progress the gate stays closed** until `+switch-master` names the
//!   new primary and a round finds every pooled connection on it, answering `ROLE` as a
//!   master. Until that announcement the sentinels still name the old primary, which still
//!   answers as a master: following them on a sentinel reconnection, an abort, a `READONLY`
//!   reply or a periodic check would reopen the gate on the node being demoted.
//! - **An abort does not end a failover.** `-failover-abort-not-elected` comes from a sentinel
//!   that lost the leader election while the winner goes on. A failover ends on
//!   `+switch-master`, or [`FAILOVER_BOUND`] after its last start without one; then the
//!   sentinels are asked and their majority is followed. The cost: after a failover that really
//!   was aborted (or whose `+switch-master` was missed by every sentinel connection), commands
//!   stay refused for up to [`FAILOVER_BOUND`].
//! - **A primary is agreed only when more than half of the configured sentinels name it**;
//!   one that does not answer counts as a vote for nobody. One stale sentinel that answers
//!   while the others cannot be reached is no majority.
//! - **An announced primary is trusted over the sentinels' answers for [`FAILOVER_BOUND`]**: the
//!   sentinels that did not lead the failover learn of it seconds later.
//! - **Copies of `+switch-master` for the primary the pool is aligned on change nothing**: every
//!   sentinel publishes one, and the gate must not close again for them.
//! - **At most one ask and one round are outstanding.** Rounds repeat while the pool is not on
//!   the target, [`REALIGN_PAUSE`] apart and doubling up to [`CHECK_PERIOD`] while they fail
//!   (a primary that answers as a replica must not see a storm of reconnections). While nothing
//!   is followed, the sentinels are asked every [`CHECK_PERIOD`] (an announcement missed while a
//!   sentinel connection was down, a change they never announced), and at once on a `READONLY`
//!   reply, a sentinel reconnection or an abort.
//! - **A round that finds a connection misplaced closes an open gate** as soon as it reports
//!   it, before the connection is reconnected: a write there could be lost. A round that finds
//!   none misplaced but some unanswered, while the gate is open, is an outage, not a failover:
//!   the realignment ends and fred reconnects them by itself.
//! - **A round that fails while the gate is closed** lets the sentinels be asked again, and a
//!   primary they agree on replaces a target that came from them, or an announced one older
//!   than [`FAILOVER_BOUND`].

use std::time::{Duration, Instant};

use fred::types::config::Server;

/// While nothing is followed, the sentinels are asked this often where the primary is, in case
/// an announcement was missed.
pub(super) const CHECK_PERIOD: Duration = Duration::from_secs(1);
/// A failover that announced no new primary within this long after its last start is given
/// up; an announced primary is trusted over the sentinels' answers this long.
pub(super) const FAILOVER_BOUND: Duration = Duration::from_secs(10);
/// Between a failed round of realignment and the next one; doubles after each further failure,
/// up to [`CHECK_PERIOD`].
pub(super) const REALIGN_PAUSE: Duration = Duration::from_millis(50);

/// Numbers each query the machine starts, in order: a result names its query, so that it is
/// matched to the one outstanding and told stale when it began before the last failover start
/// or change of target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Query(u64);

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Input {
    /// A sentinel chose a replica for promotion: the primary stops being one any moment.
    FailoverStarted,
    /// A sentinel announced the end of a failover: this is the primary now.
    SwitchedTo(Server),
    /// A sentinel gave up a failover; another one may still be running it.
    FailoverAborted,
    /// A sentinel connection was (re)established: announcements may have been missed.
    Resubscribed,
    /// A command was refused with `READONLY`: the gate closed itself, a connection is on a
    /// replica.
    ReadOnly,
    /// Time passed.
    Tick,
    /// The answers to [`Action::AskSentinels`]: one entry per configured sentinel, `None` for
    /// one that did not name a primary.
    SentinelsAnswered { query: Query, answers: Vec<Option<Server>> },
    /// The round [`Action::Realign`] found connections misplaced and is reconnecting them; it
    /// has not ended yet.
    MisplacedFound { query: Query, target: Server },
    /// The round [`Action::Realign`] ended: where the pool was found, its worst connection's
    /// [`Placement`] (the misplaced ones have been reconnected since).
    RoundEnded { query: Query, target: Server, placement: Placement },
}

/// Where a pooled connection is, as seen from the target primary; for a round, the worst of its
/// connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Placement {
    /// On the target, which answers `ROLE` as a master.
    OnPrimary,
    /// On another node, or on one that answers `ROLE` as a replica: must reconnect.
    Misplaced,
    /// On the target, which does not answer (down): fred reconnects by itself.
    Unanswered,
}

impl Placement {
    /// A round's placement: misplaced if any connection is, else unanswered if any is.
    pub(super) fn worst(placements: impl IntoIterator<Item = Placement>) -> Placement {
        placements.into_iter().fold(Placement::OnPrimary, |worst, placement| match (worst, placement) {
            (Placement::Misplaced, _) | (_, Placement::Misplaced) => Placement::Misplaced,
            (Placement::Unanswered, _) | (_, Placement::Unanswered) => Placement::Unanswered,
            (Placement::OnPrimary, Placement::OnPrimary) => Placement::OnPrimary,
        })
    }
}

/// Why the machine closes the gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Closing {
    /// A failover started.
    FailoverStarted,
    /// A new primary was announced while the gate was open (the failover's start was missed).
    PrimaryAnnounced,
    /// A round found connections that are not on `primary`.
    Misplaced { primary: Server },
    /// A `READONLY` reply (the gate closed itself already; closing again keeps gate and machine
    /// agreed should the report have crossed an opening).
    ReadOnlyReply,
}

/// What to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Action {
    CloseGate(Closing),
    /// Every pooled connection is on `primary`; commands were refused for `refused_for`.
    OpenGate {
        primary: Server,
        refused_for: Duration,
    },
    /// Ask every configured sentinel at once where the primary is; answer with
    /// [`Input::SentinelsAnswered`].
    AskSentinels(Query),
    /// Find where each pooled connection is, reconnect the ones not on `target`; report with
    /// [`Input::MisplacedFound`] (before reconnecting) and [`Input::RoundEnded`].
    Realign {
        query: Query,
        target: Server,
    },
}

/// The follower's state; see the module doc for the rules it keeps.
#[derive(Debug)]
pub(super) struct Machine {
    /// Majorities are counted over this many sentinels, answering or not.
    configured_sentinels: usize,
    /// Since when the gate has been closed; `None` while it is open.
    closed_since: Option<Instant>,
    /// The last start of a failover whose end is not known yet. While it is set there is no
    /// target: only `SwitchedTo` (which clears it) sets one.
    failover_started: Option<Instant>,
    /// The primary the pool must reach (and be checked on).
    target: Option<Target>,
    /// The primary the pool was last found on, answering as a master: copies of an announcement
    /// already followed must not close the gate again.
    aligned_on: Option<Server>,
    asking: Option<Query>,
    realigning: Option<Query>,
    /// A round failed with the gate closed and the target may be replaced: ask the sentinels.
    reconsider_target: bool,
    next_query: Query,
    /// Results of queries numbered below this are stale: they started before the last failover
    /// start, change of target or `READONLY` reply.
    fresh_from: Query,
    /// When the sentinels are asked next while nothing is followed.
    next_check: Instant,
    /// When the next round towards the target may start.
    next_round: Instant,
    failed_rounds: u32,
    /// "No majority" was logged since the sentinels last agreed (logged once, not every check).
    reported_no_majority: bool,
}

impl Machine {
    /// A machine following `configured_sentinels` sentinels, with the gate open (as a new
    /// `PrimaryGate` is); its first step asks the sentinels.
    pub(super) fn new(configured_sentinels: usize, now: Instant) -> Self {
        Self {
            configured_sentinels,
            closed_since: None,
            failover_started: None,
            target: None,
            aligned_on: None,
            asking: None,
            realigning: None,
            reconsider_target: false,
            next_query: Query(0),
            fresh_from: Query(0),
            next_check: now,
            next_round: now,
            failed_rounds: 0,
            reported_no_majority: false,
        }
    }

    /// Takes in what happened at `now` (never earlier than the previous step's) and answers
    /// what to do.
    pub(super) fn step(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut actions = Vec::new();
        self.give_up_a_failover_past_its_bound(now);
        match input {
            Input::FailoverStarted => self.on_failover_started(now, &mut actions),
            Input::SwitchedTo(primary) => self.on_switched_to(now, primary, &mut actions),
            Input::FailoverAborted | Input::Resubscribed => self.check_at_once_if_idle(now),
            Input::ReadOnly => self.on_read_only(now, &mut actions),
            Input::Tick => {}
            Input::SentinelsAnswered { query, answers } => self.on_sentinels_answered(now, query, &answers),
            Input::MisplacedFound { query, target } => {
                if self.realigning == Some(query) && self.is_current(query, &target) {
                    self.close_for_misplaced(now, target, &mut actions);
                }
            }
            Input::RoundEnded { query, target, placement } => {
                self.on_round_ended(now, query, target, placement, &mut actions);
            }
        }
        self.start_due_queries(now, &mut actions);
        actions
    }

    fn on_failover_started(&mut self, now: Instant, actions: &mut Vec<Action>) {
        actions.push(Action::CloseGate(Closing::FailoverStarted));
        if self.closed_since.is_none() {
            self.closed_since = Some(now);
        }
        self.failover_started = Some(now);
        self.aligned_on = None;
        self.drop_target();
    }

    fn on_switched_to(&mut self, now: Instant, primary: Server, actions: &mut Vec<Action>) {
        self.failover_started = None;
        if self.closed_since.is_none() {
            if self.aligned_on.as_ref() == Some(&primary) {
                return;
            }
            actions.push(Action::CloseGate(Closing::PrimaryAnnounced));
            self.closed_since = Some(now);
        }
        let followed = self.target.as_ref().is_some_and(|target| target.announced && target.primary == primary);
        if !followed {
            tracing::info!(%primary, "the sentinels announced a new primary");
            self.set_target(now, primary, true);
        }
    }

    fn on_read_only(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.closed_since.is_none() {
            actions.push(Action::CloseGate(Closing::ReadOnlyReply));
            self.closed_since = Some(now);
        }
        // What is outstanding may have looked before a connection reached a replica.
        self.fresh_from = self.next_query;
        self.next_round = now;
        self.check_at_once_if_idle(now);
    }

    fn on_sentinels_answered(&mut self, now: Instant, query: Query, answers: &[Option<Server>]) {
        if self.asking != Some(query) {
            return;
        }
        self.asking = None;
        if query < self.fresh_from || self.failover_started.is_some() {
            return;
        }
        let Some(agreed) = agreed_primary(answers, self.configured_sentinels) else {
            if self.closed_since.is_some() && !self.reported_no_majority {
                tracing::warn!("no majority of the sentinels names a primary: Redis commands stay refused");
                self.reported_no_majority = true;
            }
            return;
        };
        self.reported_no_majority = false;
        let follow = match &self.target {
            None => true,
            Some(current) => current.primary != agreed && current.revisable(now),
        };
        if follow {
            if self.target.is_some() {
                tracing::info!(primary = %agreed, "the sentinels name another primary now");
            }
            self.set_target(now, agreed, false);
        }
    }

    fn on_round_ended(
        &mut self,
        now: Instant,
        query: Query,
        target: Server,
        placement: Placement,
        actions: &mut Vec<Action>,
    ) {
        if self.realigning != Some(query) {
            return;
        }
        self.realigning = None;
        if !self.is_current(query, &target) {
            return;
        }
        match placement {
            Placement::OnPrimary => {
                if let Some(closed_since) = self.closed_since.take() {
                    let refused_for = now.saturating_duration_since(closed_since);
                    actions.push(Action::OpenGate { primary: target.clone(), refused_for });
                }
                self.aligned_on = Some(target);
                self.drop_target();
            }
            Placement::Unanswered if self.closed_since.is_none() => self.drop_target(),
            Placement::Misplaced | Placement::Unanswered => {
                if placement == Placement::Misplaced {
                    self.close_for_misplaced(now, target, actions);
                }
                self.failed_rounds = self.failed_rounds.saturating_add(1);
                self.next_round = now + pause_after(self.failed_rounds);
                self.reconsider_target |= self.target.as_ref().is_some_and(|current| current.revisable(now));
            }
        }
    }

    fn close_for_misplaced(&mut self, now: Instant, primary: Server, actions: &mut Vec<Action>) {
        if self.closed_since.is_none() {
            actions.push(Action::CloseGate(Closing::Misplaced { primary }));
            self.closed_since = Some(now);
        }
    }

    /// Whether a result of `query` about `target` is for the current target.
    fn is_current(&self, query: Query, target: &Server) -> bool {
        query >= self.fresh_from && self.target.as_ref().is_some_and(|current| current.primary == *target)
    }

    fn give_up_a_failover_past_its_bound(&mut self, now: Instant) {
        if let Some(started) = self.failover_started
            && now.saturating_duration_since(started) >= FAILOVER_BOUND
        {
            tracing::warn!(
                "a failover announced no new primary within {FAILOVER_BOUND:?} (aborted, or its end was missed): \
                 following the primary the sentinels agree on"
            );
            self.failover_started = None;
            self.next_check = now;
        }
    }

    /// Nothing followed: no failover in progress, no target.
    fn idle(&self) -> bool {
        self.failover_started.is_none() && self.target.is_none()
    }

    fn check_at_once_if_idle(&mut self, now: Instant) {
        if self.idle() {
            self.next_check = now;
        }
    }

    fn set_target(&mut self, now: Instant, primary: Server, announced: bool) {
        self.target = Some(Target { primary, since: now, announced });
        self.next_round = now;
        self.start_over();
    }

    fn drop_target(&mut self) {
        self.target = None;
        self.start_over();
    }

    /// The target changed (or there is none now): rounds start over, and the results of what
    /// is outstanding are stale.
    fn start_over(&mut self) {
        self.failed_rounds = 0;
        self.reconsider_target = false;
        self.fresh_from = self.next_query;
    }

    fn wants_answers(&self, now: Instant) -> bool {
        if self.failover_started.is_some() {
            false
        } else if self.target.is_none() {
            now >= self.next_check
        } else {
            self.reconsider_target
        }
    }

    fn start_due_queries(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.asking.is_none() && self.wants_answers(now) {
            let query = self.new_query();
            self.asking = Some(query);
            self.next_check = now + CHECK_PERIOD;
            self.reconsider_target = false;
            actions.push(Action::AskSentinels(query));
        }
        if self.realigning.is_none()
            && now >= self.next_round
            && let Some(target) = self.target.as_ref().map(|target| target.primary.clone())
        {
            let query = self.new_query();
            self.realigning = Some(query);
            actions.push(Action::Realign { query, target });
        }
    }

    fn new_query(&mut self) -> Query {
        let query = self.next_query;
        self.next_query = Query(query.0 + 1);
        query
    }
}

/// The primary the pool must reach before the gate opens.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    primary: Server,
    /// When it became the target.
    since: Instant,
    /// Named by a `+switch-master`, rather than agreed on by the sentinels when asked.
    announced: bool,
}

impl Target {
    /// Whether the sentinels' majority may replace this primary.
    fn revisable(&self, now: Instant) -> bool {
        !self.announced || now.saturating_duration_since(self.since) >= FAILOVER_BOUND
    }
}

/// The primary more than half of the configured sentinels name, if any. Counting over those
/// that answered instead would let one stale sentinel decide while the others are unreachable.
fn agreed_primary(answers: &[Option<Server>], configured_sentinels: usize) -> Option<Server> {
    let electorate = configured_sentinels.max(answers.len());
    let named: Vec<&Server> = answers.iter().flatten().collect();
    let votes_for = |candidate: &Server| named.iter().filter(|other| **other == candidate).count();
    named.iter().find(|candidate| votes_for(candidate) * 2 > electorate).map(|primary| (*primary).clone())
}

/// The pause after `failed_rounds` failed rounds in a row (at least one).
fn pause_after(failed_rounds: u32) -> Duration {
    let doublings = failed_rounds.saturating_sub(1).min(5);
    REALIGN_PAUSE.saturating_mul(1_u32 << doublings).min(CHECK_PERIOD)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The driver's tick in these tests.
    const TICK: Duration = Duration::from_millis(50);

    /// The primary before the failover.
    fn a() -> Server {
        Server::new("10.0.0.1", 6379)
    }

    /// The replica promoted by the failover.
    fn b() -> Server {
        Server::new("10.0.0.2", 6379)
    }

    fn c() -> Server {
        Server::new("10.0.0.3", 6379)
    }

    /// What the queries find when the test harness answers them.
    #[derive(Debug)]
    struct World {
        /// What each sentinel answers.
        sentinels: Vec<Option<Server>>,
        /// Where the pooled connections are, that node answering `ROLE` as a master.
        pool_on: Option<Server>,
    }

    /// A machine, the gate as its actions left it, and its outstanding queries, as a driver
    /// sees them. It fails the test when a second query of a kind starts while one is
    /// outstanding.
    #[derive(Debug)]
    struct Harness {
        machine: Machine,
        now: Instant,
        gate_open: bool,
        asking: Option<Query>,
        round: Option<(Query, Server)>,
        world: World,
    }

    impl Harness {
        fn new(configured_sentinels: usize) -> Self {
            let now = Instant::now();
            Self {
                machine: Machine::new(configured_sentinels, now),
                now,
                gate_open: true,
                asking: None,
                round: None,
                world: World { sentinels: vec![Some(a()); configured_sentinels], pool_on: Some(a()) },
            }
        }

        /// Three sentinels naming A, the pool on A, the first check done: the gate open.
        fn aligned_on_a() -> Self {
            let mut harness = Self::new(3);
            let actions = harness.run_for(TICK * 4);
            assert!(harness.gate_open && !closes(&actions), "{actions:?}");
            assert_eq!(harness.machine.aligned_on, Some(a()), "the first check finds the pool on A");
            harness
        }

        fn wait(&mut self, elapsed: Duration) {
            self.now += elapsed;
        }

        fn feed(&mut self, input: Input) -> Vec<Action> {
            match &input {
                Input::SentinelsAnswered { query, .. } if self.asking == Some(*query) => self.asking = None,
                Input::RoundEnded { query, .. } if self.round.as_ref().is_some_and(|(started, _)| started == query) => {
                    self.round = None;
                }
                _ => {}
            }
            let actions = self.machine.step(self.now, input);
            for action in &actions {
                match action {
                    Action::CloseGate(_) => self.gate_open = false,
                    Action::OpenGate { .. } => self.gate_open = true,
                    Action::AskSentinels(query) => {
                        assert_eq!(self.asking, None, "a second ask while one is outstanding");
                        self.asking = Some(*query);
                    }
                    Action::Realign { query, target } => {
                        assert_eq!(self.round, None, "a second round while one is outstanding");
                        self.round = Some((*query, target.clone()));
                    }
                }
            }
            assert_eq!(self.machine.closed_since.is_none(), self.gate_open, "the machine's gate and its actions");
            actions
        }

        /// Answers the queries outstanding now, as the world is (a round that finds the pool
        /// elsewhere reports it misplaced first, as the driver does).
        fn answer_outstanding(&mut self) -> Vec<Action> {
            let mut seen = Vec::new();
            let (asking, round) = (self.asking, self.round.clone());
            if let Some(query) = asking {
                seen.extend(self.feed(Input::SentinelsAnswered { query, answers: self.world.sentinels.clone() }));
            }
            if let Some((query, target)) = round {
                let placement = if self.world.pool_on.as_ref() == Some(&target) {
                    Placement::OnPrimary
                } else {
                    seen.extend(self.feed(Input::MisplacedFound { query, target: target.clone() }));
                    Placement::Misplaced
                };
                seen.extend(self.feed(Input::RoundEnded { query, target, placement }));
            }
            seen
        }

        /// Lets `duration` pass tick by tick; what is outstanding at a tick is answered then.
        fn run_for(&mut self, duration: Duration) -> Vec<Action> {
            let mut seen = Vec::new();
            for _ in 0..duration.as_millis() / TICK.as_millis() {
                self.now += TICK;
                seen.extend(self.answer_outstanding());
                seen.extend(self.feed(Input::Tick));
            }
            seen
        }
    }

    fn opened(actions: &[Action]) -> Option<&Server> {
        actions.iter().find_map(|action| match action {
            Action::OpenGate { primary, .. } => Some(primary),
            _ => None,
        })
    }

    fn refused_for(actions: &[Action]) -> Option<Duration> {
        actions.iter().find_map(|action| match action {
            Action::OpenGate { refused_for, .. } => Some(*refused_for),
            _ => None,
        })
    }

    fn closes(actions: &[Action]) -> bool {
        actions.iter().any(|action| matches!(action, Action::CloseGate(_)))
    }

    fn asks(actions: &[Action]) -> usize {
        actions.iter().filter(|action| matches!(action, Action::AskSentinels(_))).count()
    }

    fn realigned_towards(actions: &[Action]) -> Vec<&Server> {
        actions
            .iter()
            .filter_map(|action| match action {
                Action::Realign { target, .. } => Some(target),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_gate_closes_in_the_same_step_as_the_announcement_even_with_queries_outstanding() {
        let mut with_an_ask = Harness::aligned_on_a();
        with_an_ask.wait(CHECK_PERIOD);
        with_an_ask.feed(Input::Tick);
        assert!(with_an_ask.asking.is_some(), "the periodic check asks the sentinels");
        let mut with_a_round = Harness::aligned_on_a();
        with_a_round.wait(CHECK_PERIOD);
        with_a_round.feed(Input::Tick);
        with_a_round.answer_outstanding();
        assert!(with_a_round.round.is_some(), "the periodic check runs a round");

        for (case, mut harness) in [("an ask outstanding", with_an_ask), ("a round outstanding", with_a_round)] {
            let actions = harness.feed(Input::FailoverStarted);
            assert_eq!(actions.first(), Some(&Action::CloseGate(Closing::FailoverStarted)), "{case}");
            assert!(!harness.gate_open, "{case}");
            // The sentinels still name A, the pool is on A and A answers as a master.
            let late = harness.answer_outstanding();
            assert_eq!(opened(&late), None, "{case}: a query started before the failover opened the gate");
            assert!(realigned_towards(&late).is_empty(), "{case}: {late:?}");
        }
    }

    #[test]
    fn a_round_result_for_an_old_target_cannot_open_the_gate() {
        let mut harness = Harness::aligned_on_a();
        harness.wait(TICK);
        harness.feed(Input::ReadOnly);
        harness.answer_outstanding();
        assert_eq!(harness.round.as_ref().map(|(_, target)| target), Some(&a()), "a round towards the agreed A");

        harness.feed(Input::SwitchedTo(b()));
        // The round towards A ends: the pool is on A, which still answers as a master.
        let actions = harness.answer_outstanding();
        assert_eq!(opened(&actions), None, "{actions:?}");
        assert_eq!(realigned_towards(&actions), vec![&b()], "the round towards B starts once A's is back");

        harness.world.pool_on = Some(b());
        let actions = harness.run_for(TICK * 2);
        assert_eq!(opened(&actions), Some(&b()));
    }

    #[test]
    fn a_resubscription_during_a_failover_does_not_reopen_the_gate_on_the_old_primary() {
        let mut harness = Harness::aligned_on_a();
        harness.feed(Input::FailoverStarted);
        // Until +switch-master the sentinels name A, the pool is on A and A answers as a master.
        let mut actions = harness.feed(Input::Resubscribed);
        for _ in 0..9 {
            actions.extend(harness.run_for(Duration::from_secs(1)));
            actions.extend(harness.feed(Input::Resubscribed));
        }
        assert_eq!(opened(&actions), None, "{actions:?}");
        assert!(realigned_towards(&actions).is_empty(), "no round towards the old primary: {actions:?}");
        assert!(!harness.gate_open);

        harness.feed(Input::SwitchedTo(b()));
        harness.world = World { sentinels: vec![Some(b()); 3], pool_on: Some(b()) };
        let actions = harness.run_for(TICK * 2);
        assert_eq!(opened(&actions), Some(&b()));
    }

    #[test]
    fn an_abort_from_a_sentinel_that_lost_the_election_keeps_the_gate_closed() {
        let mut harness = Harness::aligned_on_a();
        harness.feed(Input::FailoverStarted);
        let mut actions = harness.feed(Input::FailoverAborted);
        actions.extend(harness.run_for(Duration::from_secs(3)));
        assert_eq!(opened(&actions), None, "{actions:?}");
        assert!(realigned_towards(&actions).is_empty(), "no round towards the old primary: {actions:?}");

        // The sentinel that won the election announces the end of its failover.
        harness.feed(Input::SwitchedTo(b()));
        harness.world = World { sentinels: vec![Some(b()); 3], pool_on: Some(b()) };
        let actions = harness.run_for(TICK * 2);
        assert_eq!(opened(&actions), Some(&b()));
        assert!(refused_for(&actions).is_some_and(|refused| refused >= Duration::from_secs(3)), "{actions:?}");
    }

    #[test]
    fn a_failover_that_never_ends_is_given_up_after_the_bound() {
        let mut harness = Harness::aligned_on_a();
        harness.feed(Input::FailoverStarted);
        let mut actions = harness.feed(Input::FailoverAborted);
        actions.extend(harness.run_for(FAILOVER_BOUND - TICK));
        assert_eq!(opened(&actions), None, "{actions:?}");

        let actions = harness.run_for(TICK * 4);
        assert_eq!(opened(&actions), Some(&a()), "the sentinels' majority is followed after the bound");
        assert!(refused_for(&actions).is_some_and(|refused| refused >= FAILOVER_BOUND), "{actions:?}");
    }

    #[test]
    fn one_stale_sentinel_is_not_a_majority_of_three() {
        let mut harness = Harness::aligned_on_a();
        // One sentinel still names C, the others cannot be reached; the pool happens to be on C.
        harness.world = World { sentinels: vec![Some(c()), None, None], pool_on: Some(c()) };
        harness.wait(TICK);
        let mut actions = harness.feed(Input::ReadOnly);
        actions.extend(harness.run_for(Duration::from_secs(3)));
        assert!(asks(&actions) >= 3, "the sentinels are asked every check period: {actions:?}");
        assert!(realigned_towards(&actions).is_empty(), "{actions:?}");
        assert_eq!(opened(&actions), None, "{actions:?}");

        harness.world.sentinels = vec![Some(c()), Some(c()), None];
        let actions = harness.run_for(CHECK_PERIOD + TICK * 3);
        assert_eq!(opened(&actions), Some(&c()), "two of three are a majority");
    }

    #[test]
    fn the_agreed_primary_is_named_by_more_than_half_of_the_configured_sentinels() {
        type Case = (&'static str, Vec<Option<Server>>, usize, Option<Server>);
        let cases: [Case; 7] = [
            ("all three", vec![Some(a()), Some(a()), Some(a())], 3, Some(a())),
            ("two of three, one silent", vec![Some(a()), None, Some(a())], 3, Some(a())),
            ("two of three, one naming another", vec![Some(b()), Some(a()), Some(a())], 3, Some(a())),
            ("one of three answering", vec![None, Some(a()), None], 3, None),
            ("a split", vec![Some(a()), Some(b()), Some(c())], 3, None),
            ("half of four", vec![Some(a()), Some(a()), Some(b()), None], 4, None),
            ("no answer", vec![None, None, None], 3, None),
        ];
        for (case, answers, configured, expected) in cases {
            assert_eq!(agreed_primary(&answers, configured), expected, "{case}");
        }
    }

    #[test]
    fn duplicate_switch_announcements_do_not_close_an_aligned_gate() {
        let mut harness = Harness::aligned_on_a();
        harness.feed(Input::FailoverStarted);
        harness.feed(Input::SwitchedTo(b()));
        harness.world = World { sentinels: vec![Some(b()); 3], pool_on: Some(b()) };
        let actions = harness.run_for(TICK * 2);
        assert_eq!(opened(&actions), Some(&b()));

        // The other sentinels publish the same switch.
        let mut actions = harness.feed(Input::SwitchedTo(b()));
        actions.extend(harness.run_for(TICK));
        actions.extend(harness.feed(Input::SwitchedTo(b())));
        actions.extend(harness.run_for(TICK * 2));
        assert!(!closes(&actions), "{actions:?}");
        assert!(harness.gate_open);
    }

    #[test]
    fn an_announced_primary_is_trusted_over_lagging_sentinels() {
        let mut harness = Harness::aligned_on_a();
        harness.feed(Input::FailoverStarted);
        // The leader announced B; the others still name A, and the pool is still on A.
        let mut actions = harness.feed(Input::SwitchedTo(b()));
        actions.extend(harness.run_for(Duration::from_secs(5)));
        assert!(realigned_towards(&actions).iter().all(|target| **target == b()), "{actions:?}");
        assert_eq!(opened(&actions), None, "{actions:?}");

        harness.world.pool_on = Some(b());
        let actions = harness.run_for(CHECK_PERIOD + TICK * 2);
        assert_eq!(opened(&actions), Some(&b()));
    }

    #[test]
    fn a_failed_round_towards_an_agreed_primary_follows_the_sentinels_to_another() {
        let mut harness = Harness::aligned_on_a();
        harness.world.pool_on = Some(b());
        harness.wait(TICK);
        harness.feed(Input::ReadOnly);
        harness.answer_outstanding();
        assert_eq!(harness.round.as_ref().map(|(_, target)| target), Some(&a()));

        // The round finds the pool on B, and by now the sentinels name B.
        harness.world.sentinels = vec![Some(b()); 3];
        let actions = harness.run_for(TICK * 4);
        assert_eq!(opened(&actions), Some(&b()), "{actions:?}");
    }

    #[test]
    fn a_read_only_reply_while_idle_asks_the_sentinels_at_once() {
        let mut harness = Harness::aligned_on_a();
        harness.wait(TICK);
        let actions = harness.feed(Input::ReadOnly);
        assert_eq!(actions.first(), Some(&Action::CloseGate(Closing::ReadOnlyReply)));
        assert_eq!(asks(&actions), 1, "{actions:?}");
    }

    #[test]
    fn a_misplaced_connection_closes_an_open_gate_before_its_round_ends() {
        let mut harness = Harness::aligned_on_a();
        harness.wait(CHECK_PERIOD);
        harness.feed(Input::Tick);
        harness.answer_outstanding();
        let (query, target) = harness.round.clone().expect("the periodic check runs a round");

        let actions = harness.feed(Input::MisplacedFound { query, target: target.clone() });
        assert_eq!(actions, vec![Action::CloseGate(Closing::Misplaced { primary: a() })]);
        let actions = harness.feed(Input::RoundEnded { query, target, placement: Placement::Misplaced });
        assert!(!closes(&actions), "{actions:?}");

        let actions = harness.run_for(TICK * 2);
        assert_eq!(opened(&actions), Some(&a()), "the next round finds the reconnected pool on A");
    }

    #[test]
    fn an_unanswering_primary_leaves_an_open_gate_open() {
        let mut harness = Harness::aligned_on_a();
        harness.wait(CHECK_PERIOD);
        harness.feed(Input::Tick);
        harness.answer_outstanding();
        let (query, target) = harness.round.clone().expect("the periodic check runs a round");

        let actions = harness.feed(Input::RoundEnded { query, target, placement: Placement::Unanswered });
        assert!(actions.is_empty(), "{actions:?}");
        assert!(harness.gate_open);
        assert_eq!(harness.machine.target, None, "the realignment ends: fred reconnects by itself");
    }

    #[test]
    fn the_sentinels_are_asked_every_check_period_while_idle() {
        let mut harness = Harness::new(3);
        let actions = harness.run_for(CHECK_PERIOD * 3 + CHECK_PERIOD / 2);
        assert_eq!(asks(&actions), 4, "at 0, 1, 2 and 3 s: {actions:?}");
        assert_eq!(realigned_towards(&actions).len(), 4, "each followed by one round: {actions:?}");
        assert!(!closes(&actions));
    }

    #[test]
    fn failed_rounds_pause_longer_each_time_up_to_the_check_period() {
        let cases = [(1, 50), (2, 100), (3, 200), (4, 400), (5, 800), (6, 1_000), (40, 1_000)];
        for (failed_rounds, millis) in cases {
            assert_eq!(pause_after(failed_rounds), Duration::from_millis(millis), "{failed_rounds} failed rounds");
        }
    }

    #[test]
    fn a_round_is_as_bad_as_its_worst_connection() {
        use Placement::{Misplaced, OnPrimary, Unanswered};
        let cases = [
            (vec![], OnPrimary),
            (vec![OnPrimary, OnPrimary], OnPrimary),
            (vec![OnPrimary, Unanswered], Unanswered),
            (vec![Unanswered, Misplaced, OnPrimary], Misplaced),
        ];
        for (placements, expected) in cases {
            assert_eq!(Placement::worst(placements.clone()), expected, "{placements:?}");
        }
    }

    /// What the property test feeds; results are addressed to the query outstanding, if any,
    /// and to a query never started otherwise.
    #[derive(Clone, Debug)]
    enum Event {
        FailoverStarted,
        SwitchedTo(Server),
        FailoverAborted,
        Resubscribed,
        ReadOnly,
        Tick,
        SentinelsAnswered(Vec<Option<Server>>),
        MisplacedFound,
        RoundEnded(Placement),
    }

    fn server() -> impl Strategy<Value = Server> {
        prop::sample::select(vec![a(), b(), c()])
    }

    fn event() -> impl Strategy<Value = Event> {
        let placement = prop::sample::select(vec![Placement::OnPrimary, Placement::Misplaced, Placement::Unanswered]);
        prop_oneof![
            2 => Just(Event::FailoverStarted),
            2 => server().prop_map(Event::SwitchedTo),
            1 => Just(Event::FailoverAborted),
            1 => Just(Event::Resubscribed),
            1 => Just(Event::ReadOnly),
            2 => Just(Event::Tick),
            3 => prop::collection::vec(prop::option::of(server()), 0..=3).prop_map(Event::SentinelsAnswered),
            1 => Just(Event::MisplacedFound),
            3 => placement.prop_map(Event::RoundEnded),
        ]
    }

    fn pause() -> impl Strategy<Value = Duration> {
        prop_oneof![Just(Duration::ZERO), (0_u64..3_000).prop_map(Duration::from_millis)]
    }

    /// A failover the gate must stay closed through: from its start until the gate opens, or
    /// until [`FAILOVER_BOUND`] after its start with no announcement, or after the last
    /// announced primary.
    #[derive(Debug)]
    struct FailoverWindow {
        started: Instant,
        announced: Option<(Server, Instant)>,
    }

    impl FailoverWindow {
        fn over(&self, now: Instant) -> bool {
            let since = self.announced.as_ref().map_or(self.started, |(_, at)| *at);
            now.saturating_duration_since(since) >= FAILOVER_BOUND
        }
    }

    const NEVER_STARTED: Query = Query(u64::MAX);

    fn input_for(harness: &Harness, event: Event) -> Input {
        let round = harness.round.clone().unwrap_or((NEVER_STARTED, a()));
        match event {
            Event::FailoverStarted => Input::FailoverStarted,
            Event::SwitchedTo(primary) => Input::SwitchedTo(primary),
            Event::FailoverAborted => Input::FailoverAborted,
            Event::Resubscribed => Input::Resubscribed,
            Event::ReadOnly => Input::ReadOnly,
            Event::Tick => Input::Tick,
            Event::SentinelsAnswered(answers) => {
                Input::SentinelsAnswered { query: harness.asking.unwrap_or(NEVER_STARTED), answers }
            }
            Event::MisplacedFound => Input::MisplacedFound { query: round.0, target: round.1 },
            Event::RoundEnded(placement) => Input::RoundEnded { query: round.0, target: round.1, placement },
        }
    }

    /// Feeds `events` and checks, at every step: (a) a failover start leaves the gate closed;
    /// (b) within a failover window the gate opens only on a round that found the pool on the
    /// primary announced since the failover started; (c) (in [`Harness::feed`]) one ask and one
    /// round outstanding at most; (d) a target taken from the sentinels' answers is named by
    /// more than half of the configured sentinels.
    fn check(events: Vec<(Duration, Event)>) -> Result<(), TestCaseError> {
        const CONFIGURED: usize = 3;
        let mut harness = Harness::new(CONFIGURED);
        let mut window: Option<FailoverWindow> = None;
        for (pause, event) in events {
            harness.wait(pause);
            let now = harness.now;
            if window.as_ref().is_some_and(|window| window.over(now)) {
                window = None;
            }
            let input = input_for(&harness, event);
            match &input {
                Input::FailoverStarted => window = Some(FailoverWindow { started: now, announced: None }),
                Input::SwitchedTo(primary) => {
                    if let Some(current) = &mut window
                        && current.announced.as_ref().is_none_or(|(announced, _)| announced != primary)
                    {
                        current.announced = Some((primary.clone(), now));
                    }
                }
                _ => {}
            }
            let target_before = harness.machine.target.clone();
            let actions = harness.feed(input.clone());

            if input == Input::FailoverStarted {
                prop_assert!(!harness.gate_open, "(a) the gate is open after a failover start: {:?}", actions);
            }
            if opened(&actions).is_some()
                && let Some(current) = window.take()
            {
                let allowed = match (&input, &current.announced) {
                    (Input::RoundEnded { target, placement: Placement::OnPrimary, .. }, Some((announced, _))) => {
                        target == announced
                    }
                    _ => false,
                };
                prop_assert!(allowed, "(b) the gate opened during a failover on {:?} ({:?})", input, current);
            }
            if let Input::SentinelsAnswered { answers, .. } = &input
                && let Some(target) = &harness.machine.target
                && !target.announced
                && harness.machine.target != target_before
            {
                let votes = answers.iter().filter(|answer| answer.as_ref() == Some(&target.primary)).count();
                prop_assert!(votes * 2 > CONFIGURED, "(d) {:?} became the target with {} votes", target.primary, votes);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any order of announcements, answers and round results, at any pace, keeps the gate
        /// rules (see [`check`]).
        #[test]
        fn the_gate_rules_hold_for_any_sequence_of_events(
            events in prop::collection::vec((pause(), event()), 1..60),
        ) {
            check(events)?;
        }
    }
}
