//! The embedded store proven against Redis: random sequences of toolkit operations over a
//! five-key space run side by side on the embedded store and on the Redis that `cargo xtask
//! test` started (standalone, cluster, standalone through the near cache); every reply must
//! match (same value, or errors of the same kind on the same key), and so must the final state
//! of every key (type, value, TTL within [`TTL_TOLERANCE`]). On a mismatch proptest shrinks the
//! sequence and the failure names the shortest one it found; each discrepancy found so far is
//! also a plain regression test at the end of this file.
//!
//! The keys are few so that operations collide: the same key is used as a string, a list, a
//! hash and a bitmap in one sequence, and `{t}` is also a lock whose fencing counter is
//! `{t}:fence`, another key of the space. TTLs are either long (10 s to a day: they never run
//! out during a case) or short (1-5 ms), and after an operation with a short one the runner
//! waits until it has run out on both stores, so no reply depends on which store ran first.

use std::{
    cell::Cell,
    collections::BTreeMap,
    time::{Duration, Instant},
};

use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};

use cache_toolkit::{
    CacheClient, CacheError, CacheErrorKind, CacheOptions, CacheStore, DataDirError, Durability, EmbeddedStore, Fsync,
    KeyPrefix, ListEnd, LockGuard, LockRelease, Ttl,
};

/// Cases per run, each of up to [`MAX_OPERATIONS`] operations.
const CASES: u32 = 256;
const MAX_OPERATIONS: usize = 30;
/// How far apart the two stores' remaining TTLs may be (they are set and read a round trip apart).
const TTL_TOLERANCE: Duration = Duration::from_millis(500);
/// Waited after an operation with a short TTL: longer than the longest short TTL.
const SHORT_TTL_SETTLE: Duration = Duration::from_millis(10);

/// The key space. `{t}` is the lock key; its fencing counter is `{t}:fence`.
const KEYS: [&str; 5] = ["a", "b", "c", "{t}", "{t}:fence"];
const LOCK_KEY: &str = "{t}";
/// Bit operations never touch the lock key: it holds a random identifier that differs between
/// the stores (replies name it `<lock N>` instead), whose bits would differ too.
const BIT_KEYS: [&str; 4] = ["a", "b", "c", "{t}:fence"];
/// Values chosen to collide and to probe parsing: integers in the forms Redis's INCR accepts
/// and refuses, the largest i64, JSON, non-ASCII.
const VALUES: [&str; 13] =
    ["", "x", "y", "1", "05", "+5", "-3", "9223372036854775807", "é", "{\"a\":1}", "[1,2]", "null", "a b"];
const FIELDS: [&str; 3] = ["f", "g", ""];
const PATTERNS: [&str; 10] = ["*", "a*", "?", "[ab]", "[^a]", "{t}*", "*fence", "\\{t\\}", "[a-c]", "*:*"];

/// A TTL as the generator picks it.
#[derive(Clone, Copy, Debug)]
enum Lifetime {
    /// Refused by the toolkit for SET and locks; deletes the key for `set_expiry`, as in Redis.
    Zero,
    /// Runs out before the next operation (the runner waits [`SHORT_TTL_SETTLE`]).
    ShortMs(u64),
    /// Never runs out during a case.
    LongMs(u64),
}

impl Lifetime {
    fn duration(self) -> Duration {
        match self {
            Self::Zero => Duration::ZERO,
            Self::ShortMs(millis) | Self::LongMs(millis) => Duration::from_millis(millis),
        }
    }

    fn is_short(self) -> bool {
        matches!(self, Self::ShortMs(_))
    }
}

/// One toolkit call. Keys, fields and patterns are `&'static str` so a shrunk sequence prints
/// as it would be written.
#[derive(Clone, Debug)]
enum Op {
    /// The embedded store kept in a data directory stops and starts again from it (held locks
    /// are released first on both stores: a guard does not outlive its process). Nothing on
    /// Redis.
    Restart,
    Set {
        key: &'static str,
        value: String,
        ttl: Option<Lifetime>,
    },
    SetIfAbsent {
        key: &'static str,
        value: String,
        ttl: Option<Lifetime>,
    },
    Get {
        key: &'static str,
    },
    SetJson {
        key: &'static str,
        json: serde_json::Value,
    },
    GetJson {
        key: &'static str,
    },
    Delete {
        key: &'static str,
    },
    DeleteMany {
        keys: Vec<&'static str>,
    },
    DeleteMatching {
        pattern: &'static str,
    },
    Exists {
        key: &'static str,
    },
    ExistingKeys {
        keys: Vec<&'static str>,
    },
    Expire {
        key: &'static str,
        ttl: Lifetime,
    },
    GetTtl {
        key: &'static str,
    },
    Push {
        key: &'static str,
        values: Vec<String>,
        end: ListEnd,
    },
    Range {
        key: &'static str,
        start: i64,
        stop: i64,
    },
    WholeList {
        key: &'static str,
    },
    Pop {
        key: &'static str,
        end: ListEnd,
    },
    Position {
        key: &'static str,
        value: String,
    },
    Contains {
        key: &'static str,
        value: String,
    },
    ValueAndListContains {
        key: &'static str,
        list: &'static str,
        value: String,
    },
    Remove {
        key: &'static str,
        count: i64,
        value: String,
    },
    Trim {
        key: &'static str,
        start: i64,
        stop: i64,
    },
    Len {
        key: &'static str,
    },
    HashSet {
        key: &'static str,
        field: &'static str,
        value: String,
    },
    HashGet {
        key: &'static str,
        field: &'static str,
    },
    HashGetAll {
        key: &'static str,
    },
    HashDelete {
        key: &'static str,
        field: &'static str,
    },
    SetBits {
        key: &'static str,
        offsets: Vec<u64>,
    },
    GetBits {
        key: &'static str,
        offsets: Vec<u64>,
    },
    /// `acquire_lock` on [`LOCK_KEY`], one attempt.
    AcquireLock {
        lease: Lifetime,
    },
    /// Releases the `guard % held`-th guard still held (none held: nothing to do).
    ReleaseLock {
        guard: usize,
    },
    ExtendLock {
        guard: usize,
        ttl: Lifetime,
    },
    /// `release_lock` with a value of the pool as the identifier: compare-and-delete on any key.
    ReleaseIfEquals {
        key: &'static str,
        value: String,
    },
    ExtendIfEquals {
        key: &'static str,
        value: String,
        ttl: Lifetime,
    },
}

impl Op {
    fn has_short_ttl(&self) -> bool {
        match self {
            Self::Set { ttl, .. } | Self::SetIfAbsent { ttl, .. } => ttl.is_some_and(Lifetime::is_short),
            Self::Expire { ttl, .. }
            | Self::ExtendLock { ttl, .. }
            | Self::ExtendIfEquals { ttl, .. }
            | Self::AcquireLock { lease: ttl } => ttl.is_short(),
            _ => false,
        }
    }
}

/// A reply, with lock identifiers replaced by `<lock N>` (N: the acquisition's rank).
#[derive(Debug, PartialEq)]
enum Reply {
    Done,
    Flag(bool),
    Count(u64),
    Text(Option<String>),
    Texts(Vec<String>),
    Fields(BTreeMap<String, String>),
    Flags(Vec<bool>),
    Ttl(Ttl),
    Json(Option<serde_json::Value>),
    Position(Option<u64>),
    ValueAndListed(Option<String>, bool),
    Acquired(Option<u64>),
    Released(LockRelease),
    NoGuardHeld,
    Failed { kind: CacheErrorKind, operation: &'static str, key: Option<String> },
}

/// What a key holds at the end of a case.
#[derive(Debug, PartialEq)]
enum Stored {
    Missing,
    Text(String),
    /// A string that is not UTF-8 (bits were set): its first [`DUMPED_BITS`] bits.
    Bits(Vec<bool>),
    List(Vec<String>),
    Hash(BTreeMap<String, String>),
}

const DUMPED_BITS: u64 = 1024;

/// One store under test, with the lock guards it holds and the identifiers it was given.
struct Side {
    cache: CacheClient,
    guards: Vec<LockGuard>,
    identifiers: Vec<String>,
    /// Where an embedded store that restarts keeps its data.
    data_dir: Option<std::path::PathBuf>,
}

impl Side {
    fn new(cache: CacheClient, data_dir: Option<std::path::PathBuf>) -> Self {
        Self { cache, guards: Vec::new(), identifiers: Vec::new(), data_dir }
    }

    /// Stops the store (every handle dropped, so the journal is written and the directory
    /// let go) and opens it again from its data directory.
    async fn restart(&mut self) {
        self.release_all().await;
        let Some(dir) = self.data_dir.clone() else { return };
        let options = CacheOptions { key_prefix: self.cache.key_prefix().clone(), ..CacheOptions::default() };
        self.cache = CacheClient::embedded();
        // An aborted lock watchdog lets go of its handle at the runtime's next turn.
        for _ in 0..1_000 {
            match EmbeddedStore::open(&Durability::new(&dir, Fsync::EverySecond)) {
                Ok((store, _)) => {
                    self.cache = CacheClient::new(CacheStore::Embedded(store), options);
                    return;
                }
                Err(DataDirError::Locked { .. }) => tokio::time::sleep(Duration::from_millis(1)).await,
                Err(error) => panic!("reopening {}: {error}", dir.display()),
            }
        }
        panic!("{} stayed locked after the store was dropped", dir.display());
    }

    /// A lock identifier (random per store) as `<lock N>`, so both stores' replies compare.
    fn normalize(&self, text: String) -> String {
        match self.identifiers.iter().position(|identifier| *identifier == text) {
            Some(rank) => format!("<lock {rank}>"),
            None => text,
        }
    }

    async fn apply(&mut self, op: &Op) -> Reply {
        if let Op::Restart = op {
            // Boxed: its future (a reopen, lock releases) would otherwise be laid out inside
            // every operation's.
            Box::pin(self.restart()).await;
            return Reply::Done;
        }
        let cache = self.cache.clone();
        let reply = match op {
            Op::Restart => unreachable!("handled above"),
            Op::Set { key, value, ttl } => {
                cache.set_value(key, value, ttl.map(Lifetime::duration)).await.map(|()| Reply::Done)
            }
            Op::SetIfAbsent { key, value, ttl } => {
                cache.set_value_if_absent(key, value, ttl.map(Lifetime::duration)).await.map(Reply::Flag)
            }
            Op::Get { key } => cache.get_value(key).await.map(|value| Reply::Text(value.map(|v| self.normalize(v)))),
            Op::SetJson { key, json } => cache.set_json(key, json, None).await.map(|()| Reply::Done),
            Op::GetJson { key } => cache.get_json::<serde_json::Value>(key).await.map(Reply::Json),
            Op::Delete { key } => cache.delete_key(key).await.map(Reply::Flag),
            Op::DeleteMany { keys } => cache.batch_delete_keys(keys).await.map(Reply::Count),
            Op::DeleteMatching { pattern } => cache.delete_matching(pattern).await.map(Reply::Count),
            Op::Exists { key } => cache.key_exists(key).await.map(Reply::Flag),
            Op::ExistingKeys { keys } => cache.existing_keys(keys).await.map(Reply::Flags),
            Op::Expire { key, ttl } => cache.set_expiry(key, ttl.duration()).await.map(Reply::Flag),
            Op::GetTtl { key } => cache.get_ttl(key).await.map(Reply::Ttl),
            Op::Push { key, values, end } => cache.push_many_to_list(key, values, *end).await.map(Reply::Count),
            Op::Range { key, start, stop } => cache.list_range(key, *start, *stop).await.map(Reply::Texts),
            Op::WholeList { key } => cache.get_list(key).await.map(Reply::Texts),
            Op::Pop { key, end } => cache.pop_list(key, *end).await.map(Reply::Text),
            Op::Position { key, value } => cache.list_position(key, value).await.map(Reply::Position),
            Op::Contains { key, value } => cache.list_contains(key, value).await.map(Reply::Flag),
            Op::ValueAndListContains { key, list, value } => cache
                .get_value_and_list_contains(key, list, value)
                .await
                .map(|(found, listed)| Reply::ValueAndListed(found.map(|v| self.normalize(v)), listed)),
            Op::Remove { key, count, value } => cache.list_remove(key, *count, value).await.map(Reply::Count),
            Op::Trim { key, start, stop } => cache.list_trim(key, *start, *stop).await.map(|()| Reply::Done),
            Op::Len { key } => cache.list_len(key).await.map(Reply::Count),
            Op::HashSet { key, field, value } => cache.set_hash(key, field, value).await.map(Reply::Flag),
            Op::HashGet { key, field } => cache.get_hash(key, field).await.map(Reply::Text),
            Op::HashGetAll { key } => cache.get_hash_all(key).await.map(|all| Reply::Fields(all.into_iter().collect())),
            Op::HashDelete { key, field } => cache.delete_hash_field(key, field).await.map(Reply::Flag),
            Op::SetBits { key, offsets } => {
                cache.set_bits(cache_toolkit::Op::BloomAdd, key, offsets).await.map(|()| Reply::Done)
            }
            Op::GetBits { key, offsets } => {
                cache.get_bits(cache_toolkit::Op::BloomMightContain, key, offsets).await.map(Reply::Flags)
            }
            Op::AcquireLock { lease } => {
                match cache.acquire_lock(LOCK_KEY, lease.duration(), Duration::ZERO, Duration::ZERO).await {
                    Ok(Some(guard)) => {
                        let token = guard.fencing_token();
                        self.identifiers.push(guard.identifier().to_owned());
                        self.guards.push(guard);
                        Ok(Reply::Acquired(Some(token)))
                    }
                    Ok(None) => Ok(Reply::Acquired(None)),
                    Err(error) => Err(error),
                }
            }
            Op::ReleaseLock { guard } => match self.guards.len() {
                0 => Ok(Reply::NoGuardHeld),
                held => self.guards.remove(guard % held).release().await.map(Reply::Released),
            },
            Op::ExtendLock { guard, ttl } => match self.guards.len() {
                0 => Ok(Reply::NoGuardHeld),
                held => self.guards[guard % held].extend(ttl.duration()).await.map(Reply::Flag),
            },
            Op::ReleaseIfEquals { key, value } => cache.release_lock(key, value).await.map(Reply::Flag),
            Op::ExtendIfEquals { key, value, ttl } => {
                cache.extend_lock(key, value, ttl.duration()).await.map(Reply::Flag)
            }
        };
        reply.unwrap_or_else(|error| failed(&error))
    }

    /// Every key's content and TTL, then how many keys the prefix holds in all (which also
    /// empties it).
    async fn final_state(&mut self) -> Result<(BTreeMap<&'static str, (Stored, Ttl)>, u64), CacheError> {
        let mut state = BTreeMap::new();
        for key in KEYS {
            let ttl = self.cache.get_ttl(key).await?;
            let stored = if ttl == Ttl::Missing { Stored::Missing } else { self.content(key).await? };
            state.insert(key, (stored, ttl));
        }
        let count = self.cache.delete_matching("*").await?;
        Ok((state, count))
    }

    async fn content(&self, key: &str) -> Result<Stored, CacheError> {
        match self.cache.get_value(key).await {
            Ok(value) => return Ok(value.map_or(Stored::Missing, |text| Stored::Text(self.normalize(text)))),
            Err(error) if error.kind() == CacheErrorKind::BadData => {
                let offsets: Vec<u64> = (0..DUMPED_BITS).collect();
                return self
                    .cache
                    .get_bits(cache_toolkit::Op::BloomMightContain, key, &offsets)
                    .await
                    .map(Stored::Bits);
            }
            Err(error) if error.kind() == CacheErrorKind::WrongType => {}
            Err(error) => return Err(error),
        }
        match self.cache.list_range(key, 0, -1).await {
            Ok(items) => Ok(Stored::List(items)),
            Err(error) if error.kind() == CacheErrorKind::WrongType => {
                Ok(Stored::Hash(self.cache.get_hash_all(key).await?.into_iter().collect()))
            }
            Err(error) => Err(error),
        }
    }

    /// Releases what is still held, so nothing is released in the background later.
    async fn release_all(&mut self) {
        for guard in self.guards.drain(..) {
            // The key may be gone or reused by now: whatever the release finds is fine here.
            let _ = guard.release().await;
        }
    }
}

fn failed(error: &CacheError) -> Reply {
    Reply::Failed { kind: error.kind(), operation: error.operation(), key: error.key().map(ToString::to_string) }
}

/// Equal, but remaining TTLs only within [`TTL_TOLERANCE`].
fn same_ttl(embedded: Ttl, redis: Ttl) -> bool {
    match (embedded, redis) {
        (Ttl::ExpiresIn(left), Ttl::ExpiresIn(right)) => left.abs_diff(right) <= TTL_TOLERANCE,
        (left, right) => left == right,
    }
}

/// How closely errors must match.
#[derive(Clone, Copy, Debug)]
enum Errors {
    /// Same kind, operation and key.
    Exactly,
    /// Same kind: the near cache reads lists through its own read (`get_list` fails as
    /// `list_contains`) and names the list when `get_value_and_list_contains` fails on it.
    OfTheSameKind,
}

fn same_reply(embedded: &Reply, redis: &Reply, errors: Errors) -> bool {
    match (embedded, redis) {
        (Reply::Ttl(left), Reply::Ttl(right)) => same_ttl(*left, *right),
        (Reply::Failed { kind: left, .. }, Reply::Failed { kind: right, .. })
            if matches!(errors, Errors::OfTheSameKind) =>
        {
            left == right
        }
        (left, right) => left == right,
    }
}

/// Runs `ops` on both stores, step by step, then compares the final state. `Err` says where
/// they parted.
async fn compare(embedded: Embedded, redis: CacheClient, ops: &[Op], errors: Errors) -> Result<(), String> {
    let mut embedded = Side::new(embedded.cache, embedded.data_dir);
    let mut redis = Side::new(redis, None);
    let outcome = compare_sides(&mut embedded, &mut redis, ops, errors).await;
    embedded.release_all().await;
    redis.release_all().await;
    if let Some(dir) = embedded.data_dir.take() {
        drop(embedded);
        let _ = std::fs::remove_dir_all(dir);
    }
    if outcome.is_err() {
        // Leave nothing behind in Redis for a failed case either.
        let _ = redis.cache.delete_matching("*").await;
    }
    outcome
}

async fn compare_sides(embedded: &mut Side, redis: &mut Side, ops: &[Op], errors: Errors) -> Result<(), String> {
    for (step, op) in ops.iter().enumerate() {
        let embedded_reply = embedded.apply(op).await;
        let redis_reply = redis.apply(op).await;
        if !same_reply(&embedded_reply, &redis_reply, errors) {
            return Err(format!(
                "step {step}, {op:?}: the embedded store answered {embedded_reply:?}, Redis {redis_reply:?}"
            ));
        }
        if op.has_short_ttl() {
            tokio::time::sleep(SHORT_TTL_SETTLE).await;
        }
    }
    let (embedded_state, embedded_count) =
        embedded.final_state().await.map_err(|error| format!("reading the embedded store's final state: {error}"))?;
    let (redis_state, redis_count) =
        redis.final_state().await.map_err(|error| format!("reading Redis's final state: {error}"))?;
    for key in KEYS {
        let (embedded_stored, embedded_ttl) = &embedded_state[key];
        let (redis_stored, redis_ttl) = &redis_state[key];
        if embedded_stored != redis_stored || !same_ttl(*embedded_ttl, *redis_ttl) {
            return Err(format!(
                "final state of `{key}`: the embedded store holds {embedded_stored:?} ({embedded_ttl:?}), \
                 Redis {redis_stored:?} ({redis_ttl:?})"
            ));
        }
    }
    if embedded_count != redis_count {
        return Err(format!("the embedded store holds {embedded_count} keys in all, Redis {redis_count}"));
    }
    Ok(())
}

// --- the generator -------------------------------------------------------------------------

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(KEYS.to_vec())
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => prop::sample::select(VALUES.to_vec()).prop_map(str::to_owned),
        1 => prop::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
    ]
}

fn lifetime() -> impl Strategy<Value = Lifetime> {
    prop_oneof![
        1 => Just(Lifetime::Zero),
        2 => (1_u64..=5).prop_map(Lifetime::ShortMs),
        7 => (10_000_u64..=86_400_000).prop_map(Lifetime::LongMs),
    ]
}

/// List indices: mostly near the ends of a short list, sometimes the extremes.
fn index() -> impl Strategy<Value = i64> {
    prop_oneof![9 => -5_i64..=5, 1 => prop::sample::select(vec![i64::MIN, i64::MAX, -100, 100])]
}

fn end() -> impl Strategy<Value = ListEnd> {
    prop_oneof![Just(ListEnd::Left), Just(ListEnd::Right)]
}

fn offsets(bits: u64) -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(0..bits, 0..4)
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i32>().prop_map(serde_json::Value::from),
        prop::sample::select(VALUES.to_vec()).prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::from),
            prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()).prop_map(str::to_owned), inner, 0..3)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

fn op() -> impl Strategy<Value = Op> {
    let keys = || prop::collection::vec(key(), 0..5);
    let field = || prop::sample::select(FIELDS.to_vec());
    let bit_key = || prop::sample::select(BIT_KEYS.to_vec());
    prop_oneof![
        4 => (key(), value(), prop::option::of(lifetime())).prop_map(|(key, value, ttl)| Op::Set { key, value, ttl }),
        2 => (key(), value(), prop::option::of(lifetime()))
            .prop_map(|(key, value, ttl)| Op::SetIfAbsent { key, value, ttl }),
        2 => key().prop_map(|key| Op::Get { key }),
        1 => (key(), json()).prop_map(|(key, json)| Op::SetJson { key, json }),
        1 => key().prop_map(|key| Op::GetJson { key }),
        2 => key().prop_map(|key| Op::Delete { key }),
        1 => keys().prop_map(|keys| Op::DeleteMany { keys }),
        1 => prop::sample::select(PATTERNS.to_vec()).prop_map(|pattern| Op::DeleteMatching { pattern }),
        1 => key().prop_map(|key| Op::Exists { key }),
        1 => keys().prop_map(|keys| Op::ExistingKeys { keys }),
        2 => (key(), lifetime()).prop_map(|(key, ttl)| Op::Expire { key, ttl }),
        2 => key().prop_map(|key| Op::GetTtl { key }),
        4 => (key(), prop::collection::vec(value(), 0..4), end())
            .prop_map(|(key, values, end)| Op::Push { key, values, end }),
        2 => (key(), index(), index()).prop_map(|(key, start, stop)| Op::Range { key, start, stop }),
        1 => key().prop_map(|key| Op::WholeList { key }),
        2 => (key(), end()).prop_map(|(key, end)| Op::Pop { key, end }),
        1 => (key(), value()).prop_map(|(key, value)| Op::Position { key, value }),
        1 => (key(), value()).prop_map(|(key, value)| Op::Contains { key, value }),
        1 => (key(), key(), value()).prop_map(|(key, list, value)| Op::ValueAndListContains { key, list, value }),
        2 => (key(), index(), value()).prop_map(|(key, count, value)| Op::Remove { key, count, value }),
        2 => (key(), index(), index()).prop_map(|(key, start, stop)| Op::Trim { key, start, stop }),
        1 => key().prop_map(|key| Op::Len { key }),
        3 => (key(), field(), value()).prop_map(|(key, field, value)| Op::HashSet { key, field, value }),
        1 => (key(), field()).prop_map(|(key, field)| Op::HashGet { key, field }),
        1 => key().prop_map(|key| Op::HashGetAll { key }),
        2 => (key(), field()).prop_map(|(key, field)| Op::HashDelete { key, field }),
        2 => (bit_key(), offsets(64)).prop_map(|(key, offsets)| Op::SetBits { key, offsets }),
        1 => (bit_key(), offsets(128)).prop_map(|(key, offsets)| Op::GetBits { key, offsets }),
        2 => lifetime().prop_map(|lease| Op::AcquireLock { lease }),
        1 => any::<usize>().prop_map(|guard| Op::ReleaseLock { guard }),
        1 => (any::<usize>(), lifetime()).prop_map(|(guard, ttl)| Op::ExtendLock { guard, ttl }),
        1 => (key(), value()).prop_map(|(key, value)| Op::ReleaseIfEquals { key, value }),
        1 => (key(), value(), lifetime()).prop_map(|(key, value, ttl)| Op::ExtendIfEquals { key, value, ttl }),
    ]
}

/// The two stores, each case under a prefix of its own on both.
struct Stores {
    redis: CacheClient,
    run: String,
    cases: Cell<u64>,
    /// Each case's embedded store keeps its data in a directory of its own and restarts.
    durable: bool,
}

/// The embedded side of a case, and its data directory when it has one.
struct Embedded {
    cache: CacheClient,
    data_dir: Option<std::path::PathBuf>,
}

impl Stores {
    fn pair(&self) -> (Embedded, CacheClient) {
        self.cases.set(self.cases.get() + 1);
        let prefix = KeyPrefix::parse(&format!("{}{}:", self.run, self.cases.get())).unwrap();
        let options = CacheOptions { key_prefix: prefix.clone(), ..CacheOptions::default() };
        let embedded = if self.durable {
            let dir = std::env::temp_dir().join(format!(
                "tessera-differential-{}-{}",
                self.run.trim_end_matches(':').replace(':', "-"),
                self.cases.get()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let (store, _) = EmbeddedStore::open(&Durability::new(&dir, Fsync::EverySecond)).unwrap();
            Embedded { cache: CacheClient::new(CacheStore::Embedded(store), options), data_dir: Some(dir) }
        } else {
            Embedded { cache: CacheClient::new(CacheStore::Embedded(EmbeddedStore::new()), options), data_dir: None }
        };
        (embedded, self.redis.with_key_prefix(prefix))
    }
}

/// Runs `ops` on a fresh pair of stores; for the regression tests below.
async fn replay(ops: &[Op]) {
    let stores = Stores {
        redis: super::redis(dev_support::env::REDIS_URL).await,
        run: format!("differential:{:016x}:", rand::random::<u64>()),
        cases: Cell::new(0),
        durable: ops.iter().any(|op| matches!(op, Op::Restart)),
    };
    let (embedded, redis) = stores.pair();
    if let Err(mismatch) = compare(embedded, redis, ops, Errors::Exactly).await {
        panic!("{mismatch}");
    }
}

/// Runs [`CASES`] random sequences on the embedded store and on the Redis `connect` reaches.
fn differential(connect: impl Future<Output = CacheClient>, errors: Errors) {
    differential_with(connect, errors, false);
}

/// [`differential`]; with `restarts`, the embedded store keeps its data in a directory and the
/// sequences restart it now and then.
fn differential_with(connect: impl Future<Output = CacheClient>, errors: Errors, restarts: bool) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stores = Stores {
        redis: runtime.block_on(connect),
        run: format!("differential:{:016x}:", rand::random::<u64>()),
        cases: Cell::new(0),
        durable: restarts,
    };
    // No persistence file: a failure prints its minimal sequence, which becomes a regression
    // test below.
    let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let started = Instant::now();
    let step = prop_oneof![12 => op(), u32::from(restarts) => Just(Op::Restart)];
    let result = runner.run(&prop::collection::vec(step, 1..=MAX_OPERATIONS), |ops| {
        let (embedded, redis) = stores.pair();
        runtime.block_on(compare(embedded, redis, &ops, errors)).map_err(TestCaseError::fail)
    });
    if let Err(error) = result {
        panic!("the embedded store and Redis differ after {:?}: {error}", started.elapsed());
    }
}

#[test]
fn embedded_store_answers_like_redis() {
    differential(super::redis(dev_support::env::REDIS_URL), Errors::Exactly);
}

/// The same on a cluster, where the keys live on three primaries (batch and pattern deletes
/// go by slot and by node).
#[test]
fn embedded_store_answers_like_redis_cluster() {
    differential(super::redis(dev_support::env::REDIS_CLUSTER_URL), Errors::Exactly);
}

/// The same with the embedded store kept in a data directory and restarted in the middle of
/// the sequences: what it replays from its journal must be what Redis holds.
#[test]
fn embedded_store_with_restarts_answers_like_redis() {
    differential_with(super::redis(dev_support::env::REDIS_URL), Errors::Exactly, true);
}

/// The same through the near cache: every value it serves must be what the embedded store
/// holds after the same writes.
#[test]
fn embedded_store_answers_like_redis_through_the_near_cache() {
    differential(super::near(dev_support::env::REDIS_URL), Errors::OfTheSameKind);
}

// --- the discrepancies found, as plain regression tests -----------------------------------

/// A fencing counter INCR cannot read (`null`, written as JSON): Redis refuses the INCR
/// (`Rejected`); the embedded store said `WrongType`.
#[tokio::test]
async fn regression_lock_counter_that_is_not_an_integer() {
    replay(&[
        Op::SetJson { key: "{t}:fence", json: serde_json::Value::Null },
        Op::AcquireLock { lease: Lifetime::ShortMs(1) },
    ])
    .await;
}

/// A string that is not UTF-8 read with `get_value_and_list_contains` while the list key holds
/// a string: Redis's pipeline reports the LPOS's WRONGTYPE (a server error comes before the
/// GET's conversion fails); the embedded store reported the GET's bad data.
#[tokio::test]
async fn regression_wrong_type_wins_over_bad_data_in_value_and_list_contains() {
    replay(&[
        Op::SetBits { key: "c", offsets: vec![8] },
        Op::ValueAndListContains { key: "c", list: "c", value: String::new() },
    ])
    .await;
}

/// Reading no bits reads nothing on Redis (no command is sent), whatever the key holds; the
/// embedded store refused a hash as the wrong type.
#[tokio::test]
async fn regression_reading_no_bits_of_a_hash() {
    replay(&[
        Op::HashSet { key: "b", field: "f", value: "v".to_owned() },
        Op::GetBits { key: "b", offsets: Vec::new() },
    ])
    .await;
}

/// A lock on a store kept in a data directory with `everysec`: the fencing counter is synced
/// before the lock is handed out, and that sync waited for the next periodic one (1 s) when the
/// writer had already taken the records, so the lock's TTL was a second short.
#[tokio::test]
async fn regression_a_lock_on_a_durable_store_is_not_delayed_by_its_sync() {
    replay(&[Op::Restart, Op::AcquireLock { lease: Lifetime::LongMs(58_118_082) }]).await;
}
