//! The embedded keyspace: values, TTLs, an expiry index and a key-order index for SCAN, with
//! the Redis semantics the conformance suite checks. Every method takes `now`, so time is
//! explicit and testable.
//!
//! The expiry index holds exactly one entry per key with a TTL (a renewed TTL replaces it), so
//! sliding expiry cannot grow it; its size and the key count are [`EmbeddedStats`], exported on
//! `/metrics`. A SCAN cursor is the last key examined: each step is bounded work, and a key
//! present for the whole scan is returned exactly once. A list or hash whose last element goes
//! is deleted, as in Redis. Each list carries a `ListWitness`, a version bumped before every
//! change to it and retired when it goes, which lets an [`EmbeddedVerdict`] answer again
//! without the lock or a lookup (docs/PERFORMANCE.md#list-verdict).

use std::{
    any::Any,
    collections::{BTreeSet, HashMap, VecDeque},
    ops::Bound,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::{ListEnd, Ttl, decoded::DecodedSlot, saturating_deadline};

/// The key holds another type than the operation needs (Redis's `WRONGTYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrongType;

/// A string value that is not UTF-8 (a Bloom bitmap, say) read as text. Through fred, Redis's
/// GET of such bytes fails to convert to a `String` (a parse error, which the toolkit reports as
/// `store::CacheErrorKind::BadData`); the embedded store answers the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextReadFailure {
    WrongType,
    NotUtf8,
}

/// Why INCR refused a counter, as Redis refuses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncrementFailure {
    /// The key holds a list or a hash (`WRONGTYPE`).
    WrongType,
    /// A string that is not an integer as Redis reads one (see `redis_integer`): Redis's
    /// `ERR value is not an integer or out of range`.
    NotAnInteger,
    /// The counter is already `i64::MAX`: Redis's `ERR increment or decrement would overflow`.
    Overflow,
}

impl From<WrongType> for TextReadFailure {
    fn from(WrongType: WrongType) -> Self {
        Self::WrongType
    }
}

/// Redis has one string type holding any bytes. Text set by SET stays a `String` (cheap reads
/// on the hot path); a bit operation turns the value into `Bytes`. Both are the same Redis
/// type: either one answers GET, bit reads and compare-and-delete by its bytes.
#[derive(Debug)]
enum Value {
    String(Text),
    Bytes(Vec<u8>),
    List(List),
    Hash(HashMap<String, String>),
}

/// A list's items, and the witness a verdict remembered about them checks
/// ([`Keyspace::list_verdict`]).
#[derive(Debug, Default)]
struct List {
    items: VecDeque<String>,
    witness: Arc<ListWitness>,
}

impl Drop for List {
    /// Deleted, expired, overwritten or flushed: no verdict taken from this list holds any more.
    fn drop(&mut self) {
        self.witness.version.store(RETIRED, Ordering::Release);
    }
}

/// The version of one list, shared with the verdicts remembered about it: bumped before every
/// change to the list's items or TTL (under the keyspace's lock, before the change is made),
/// [`RETIRED`] once the list is gone. A verdict that still sees the version it was taken at
/// is what a lookup would answer now, without the lookup, the key's hash, or the lock.
#[derive(Debug, Default)]
pub(super) struct ListWitness {
    version: AtomicU64,
}

/// A [`ListWitness`]'s version once its list is gone; versions only count up from 0 and never
/// reach it.
const RETIRED: u64 = u64::MAX;

impl ListWitness {
    fn bump(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}

/// Whether a list held an element, remembered against the list's `ListWitness` (a
/// `near_cache::ListVerdict` keeps one for the DAO, per token).
#[derive(Debug)]
pub struct EmbeddedVerdict {
    witness: Arc<ListWitness>,
    version: u64,
    expires_at: Option<Instant>,
    listed: bool,
}

impl EmbeddedVerdict {
    /// The verdict, if the list is unchanged since it was taken and has not expired by `now`.
    pub fn still(&self, now: Instant) -> Option<bool> {
        let unchanged = self.witness.version.load(Ordering::Acquire) == self.version;
        (unchanged && self.expires_at.is_none_or(|at| at > now)).then_some(self.listed)
    }
}

/// A string set as text, and the decoded form a reader kept beside it
/// ([`Keyspace::get_decoded`]). A value is never changed in place: whatever changes it stores
/// a new `Text` (or turns it into `Bytes`), so the decoded form always matches the text.
#[derive(Debug)]
struct Text {
    text: String,
    decoded: DecodedSlot,
}

impl Text {
    fn new(text: String) -> Self {
        Self { text, decoded: DecodedSlot::default() }
    }
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expires_at: Option<Instant>,
}

/// Keys come from clients (tokens), so the hasher is seeded per process (foldhash's
/// `RandomState`), which keeps flooding resistance while hashing far faster than SipHash.
/// A key's text is allocated once and shared with [`Keyspace::names`].
type Entries = HashMap<Arc<str>, Entry, foldhash::fast::RandomState>;

/// How big the embedded store is: for `/metrics`, and to show its indexes stay bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbeddedStats {
    /// Keys held, expired ones the sweeper has not reclaimed yet included.
    pub keys: usize,
    /// Entries of the expiry index: one per key with a TTL.
    pub expiry_index: usize,
}

/// One step of a SCAN (`EmbeddedStore::scan`).
#[derive(Debug)]
pub struct ScanPage {
    /// The live keys that matched, among those examined.
    pub keys: Vec<String>,
    /// Where the next step starts (after this key); `None` when the scan is complete.
    pub next: Option<Arc<str>>,
}

#[derive(Debug, Default)]
pub(super) struct Keyspace {
    entries: Entries,
    /// Every key of `entries`, in order: a SCAN cursor is the last key examined, so each step
    /// costs O(log n + count) under the lock, and a key present for the whole scan is returned
    /// exactly once however the keyspace changes between steps (Redis promises at least once).
    names: BTreeSet<Arc<str>>,
    /// `(deadline, key)` for exactly the keys with a TTL: a renewed TTL replaces its pair and
    /// a removed key takes its pair along, so the index never grows past the keys (sliding
    /// expiry renews a TTL on every verification).
    expiries: BTreeSet<(Instant, Arc<str>)>,
}

impl Keyspace {
    /// The live entry for `key`, for reading: one lookup; an expired entry is treated as
    /// absent and left for the sweeper.
    fn peek(&self, key: &str, now: Instant) -> Option<&Entry> {
        self.entries.get(key).filter(|entry| entry.expires_at.is_none_or(|at| at > now))
    }

    /// The live entry for `key`, removing it first if it has expired.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        let expired = self.entries.get(key).is_some_and(|entry| entry.expires_at.is_some_and(|at| at <= now));
        if expired {
            self.remove(key);
        }
        self.entries.get_mut(key)
    }

    /// Adds an entry under a key that has none (the caller checked), in both indexes.
    fn insert_new(&mut self, key: &str, entry: Entry) -> &mut Entry {
        let name: Arc<str> = Arc::from(key);
        self.names.insert(Arc::clone(&name));
        self.entries.entry(name).or_insert(entry)
    }

    /// Removes `key`'s entry, live or not, and its place in every index; `true` when there
    /// was one.
    fn remove(&mut self, key: &str) -> bool {
        let Some((name, entry)) = self.entries.remove_entry(key) else { return false };
        self.names.remove(key);
        if let Some(at) = entry.expires_at {
            self.expiries.remove(&(at, name));
        }
        true
    }

    fn set_expiry(&mut self, key: &str, expires_at: Option<Instant>) {
        let Some((name, entry)) = self.entries.get_key_value(key) else { return };
        let name = Arc::clone(name);
        if let Some(old) = entry.expires_at {
            self.expiries.remove(&(old, Arc::clone(&name)));
        }
        if let Some(entry) = self.entries.get_mut(key) {
            if let Value::List(list) = &entry.value {
                list.witness.bump();
            }
            entry.expires_at = expires_at;
        }
        if let Some(at) = expires_at {
            self.expiries.insert((at, name));
        }
    }

    /// Redis deletes a list or hash when its last element goes.
    fn drop_if_empty(&mut self, key: &str) {
        let empty = self.entries.get(key).is_some_and(|entry| match &entry.value {
            Value::List(list) => list.items.is_empty(),
            Value::Hash(hash) => hash.is_empty(),
            Value::String(_) | Value::Bytes(_) => false,
        });
        if empty {
            self.remove(key);
        }
    }

    pub(super) fn remove_live(&mut self, key: &str, now: Instant) -> bool {
        self.live(key, now).is_some() && self.remove(key)
    }

    pub(super) fn live_len(&self, now: Instant) -> usize {
        self.entries.values().filter(|entry| entry.expires_at.is_none_or(|at| at > now)).count()
    }

    /// Removes up to `limit` expired keys; returns how many index entries it consumed.
    pub(super) fn sweep(&mut self, now: Instant, limit: usize) -> usize {
        let mut consumed = 0;
        while consumed < limit {
            let Some((at, _)) = self.expiries.first() else { break };
            if *at > now {
                break;
            }
            let Some((at, key)) = self.expiries.pop_first() else { break };
            consumed += 1;
            if self.entries.get(&*key).is_some_and(|entry| entry.expires_at == Some(at)) {
                self.remove(&key);
            }
        }
        consumed
    }

    #[cfg(test)]
    pub(super) fn stored_len(&self) -> usize {
        assert_eq!(self.entries.len(), self.names.len(), "every entry has its name in the SCAN index");
        let with_ttl = self.entries.values().filter(|entry| entry.expires_at.is_some()).count();
        assert_eq!(self.expiries.len(), with_ttl, "one expiry index entry per key with a TTL");
        self.entries.len() + self.expiries.len()
    }

    /// The keys held (expired ones not yet swept included) and the expiry index's length.
    pub(super) fn stats(&self) -> EmbeddedStats {
        EmbeddedStats { keys: self.entries.len(), expiry_index: self.expiries.len() }
    }

    pub(super) fn get_string(&self, key: &str, now: Instant) -> Result<Option<String>, TextReadFailure> {
        match self.peek(key, now) {
            None => Ok(None),
            Some(Entry { value: Value::String(text), .. }) => Ok(Some(text.text.clone())),
            Some(Entry { value: Value::Bytes(bytes), .. }) => {
                String::from_utf8(bytes.clone()).map(Some).map_err(|_| TextReadFailure::NotUtf8)
            }
            Some(_) => Err(TextReadFailure::WrongType),
        }
    }

    /// The text value of `key` decoded by `decode`, which runs once per stored value: the
    /// decoded form is kept beside the text until the value is replaced or removed. `None`
    /// when the key is missing; an error for another type or bytes that are not UTF-8.
    pub(super) fn get_decoded<T: Any + Send + Sync>(
        &self,
        key: &str,
        now: Instant,
        decode: impl Fn(&str) -> T,
    ) -> Result<Option<Arc<T>>, TextReadFailure> {
        match self.peek(key, now) {
            None => Ok(None),
            Some(Entry { value: Value::String(Text { text, decoded }), .. }) => {
                Ok(Some(decoded.get_or_decode(text, decode)))
            }
            // Rare (a bit operation made it bytes): decoded afresh, nothing kept.
            Some(Entry { value: Value::Bytes(bytes), .. }) => match std::str::from_utf8(bytes) {
                Ok(text) => Ok(Some(Arc::new(decode(text)))),
                Err(_) => Err(TextReadFailure::NotUtf8),
            },
            Some(_) => Err(TextReadFailure::WrongType),
        }
    }

    /// The bytes of a string value, whichever way it is held; `None` when missing.
    fn string_bytes(&self, key: &str, now: Instant) -> Result<Option<&[u8]>, WrongType> {
        match self.peek(key, now) {
            None => Ok(None),
            Some(Entry { value: Value::String(text), .. }) => Ok(Some(text.text.as_bytes())),
            Some(Entry { value: Value::Bytes(bytes), .. }) => Ok(Some(bytes)),
            Some(_) => Err(WrongType),
        }
    }

    /// SETBIT to 1 at each offset, with Redis's layout: bit 0 is the most significant bit of
    /// byte 0, the string grows with zero bytes, a missing key is created without a TTL and an
    /// existing one keeps its TTL. No offsets: nothing is created.
    pub(super) fn set_bits(&mut self, key: &str, offsets: &[u64], now: Instant) -> Result<(), WrongType> {
        if offsets.is_empty() {
            return Ok(());
        }
        let needed =
            offsets.iter().filter_map(|&offset| usize::try_from(offset / 8).ok()).max().map_or(0, |last| last + 1);
        let entry = if self.live(key, now).is_some() {
            self.entries.get_mut(key).ok_or(WrongType)?
        } else {
            self.insert_new(key, Entry { value: Value::Bytes(Vec::new()), expires_at: None })
        };
        if let Value::String(text) = &mut entry.value {
            let bytes = std::mem::take(&mut text.text).into_bytes();
            entry.value = Value::Bytes(bytes);
        }
        let Value::Bytes(bytes) = &mut entry.value else { return Err(WrongType) };
        if bytes.len() < needed {
            bytes.resize(needed, 0);
        }
        for &offset in offsets {
            if let Some(byte) = usize::try_from(offset / 8).ok().and_then(|index| bytes.get_mut(index)) {
                *byte |= bit_mask(offset);
            }
        }
        Ok(())
    }

    /// GETBIT at each offset, in order: 0 past the end of the string or when the key is missing.
    /// No offsets: nothing is read (no command is sent to Redis either), whatever the key holds.
    pub(super) fn get_bits(&self, key: &str, offsets: &[u64], now: Instant) -> Result<Vec<bool>, WrongType> {
        if offsets.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = self.string_bytes(key, now)?.unwrap_or_default();
        Ok(offsets
            .iter()
            .map(|&offset| {
                usize::try_from(offset / 8)
                    .ok()
                    .and_then(|index| bytes.get(index))
                    .is_some_and(|byte| byte & bit_mask(offset) != 0)
            })
            .collect())
    }

    pub(super) fn set_string(
        &mut self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
        only_if_absent: bool,
        now: Instant,
    ) -> bool {
        let value = Value::String(Text::new(value.to_owned()));
        match self.live(key, now) {
            Some(_) if only_if_absent => return false,
            Some(entry) => entry.value = value,
            None => {
                self.insert_new(key, Entry { value, expires_at: None });
            }
        }
        self.set_expiry(key, ttl.map(|ttl| saturating_deadline(now, ttl)));
        true
    }

    pub(super) fn expire(&mut self, key: &str, ttl: Duration, now: Instant) -> bool {
        if self.live(key, now).is_none() {
            return false;
        }
        if ttl.is_zero() {
            self.remove(key);
        } else {
            self.set_expiry(key, Some(saturating_deadline(now, ttl)));
        }
        true
    }

    pub(super) fn exists(&mut self, key: &str, now: Instant) -> bool {
        self.live(key, now).is_some()
    }

    pub(super) fn ttl(&mut self, key: &str, now: Instant) -> Ttl {
        match self.live(key, now) {
            None => Ttl::Missing,
            Some(Entry { expires_at: None, .. }) => Ttl::NoExpiry,
            Some(Entry { expires_at: Some(at), .. }) => Ttl::ExpiresIn(at.saturating_duration_since(now)),
        }
    }

    fn hash_mut(
        &mut self,
        name: &str,
        now: Instant,
        create: bool,
    ) -> Result<Option<&mut HashMap<String, String>>, WrongType> {
        if self.live(name, now).is_none() {
            if !create {
                return Ok(None);
            }
            self.insert_new(name, Entry { value: Value::Hash(HashMap::new()), expires_at: None });
        }
        match self.entries.get_mut(name) {
            Some(Entry { value: Value::Hash(hash), .. }) => Ok(Some(hash)),
            Some(_) => Err(WrongType),
            None => Ok(None),
        }
    }

    pub(super) fn hash_set(&mut self, name: &str, field: &str, value: &str, now: Instant) -> Result<bool, WrongType> {
        let Some(hash) = self.hash_mut(name, now, true)? else { return Ok(false) };
        Ok(hash.insert(field.to_owned(), value.to_owned()).is_none())
    }

    pub(super) fn hash_get(&mut self, name: &str, field: &str, now: Instant) -> Result<Option<String>, WrongType> {
        Ok(self.hash_mut(name, now, false)?.and_then(|hash| hash.get(field).cloned()))
    }

    pub(super) fn hash_get_all(&mut self, name: &str, now: Instant) -> Result<HashMap<String, String>, WrongType> {
        Ok(self.hash_mut(name, now, false)?.map(|hash| hash.clone()).unwrap_or_default())
    }

    pub(super) fn hash_delete(&mut self, name: &str, field: &str, now: Instant) -> Result<bool, WrongType> {
        let removed = self.hash_mut(name, now, false)?.is_some_and(|hash| hash.remove(field).is_some());
        self.drop_if_empty(name);
        Ok(removed)
    }

    /// The list `name`'s items, to change: its witness is bumped first, so no verdict
    /// remembered about it holds once the change is made.
    fn list_mut(&mut self, name: &str, now: Instant, create: bool) -> Result<Option<&mut VecDeque<String>>, WrongType> {
        if self.live(name, now).is_none() {
            if !create {
                return Ok(None);
            }
            self.insert_new(name, Entry { value: Value::List(List::default()), expires_at: None });
        }
        match self.entries.get_mut(name) {
            Some(Entry { value: Value::List(list), .. }) => {
                list.witness.bump();
                Ok(Some(&mut list.items))
            }
            Some(_) => Err(WrongType),
            None => Ok(None),
        }
    }

    /// The list `name`'s items, to read (an expired list is removed first, as Redis does).
    fn list_ref(&mut self, name: &str, now: Instant) -> Result<Option<&VecDeque<String>>, WrongType> {
        match self.live(name, now) {
            None => Ok(None),
            Some(Entry { value: Value::List(list), .. }) => Ok(Some(&list.items)),
            Some(_) => Err(WrongType),
        }
    }

    pub(super) fn list_push(
        &mut self,
        name: &str,
        values: &[&str],
        end: ListEnd,
        now: Instant,
    ) -> Result<u64, WrongType> {
        if values.is_empty() {
            return self.list_len(name, now);
        }
        let Some(list) = self.list_mut(name, now, true)? else { return Ok(0) };
        for value in values {
            match end {
                ListEnd::Left => list.push_front((*value).to_owned()),
                ListEnd::Right => list.push_back((*value).to_owned()),
            }
        }
        Ok(list.len() as u64)
    }

    /// LPUSH `values`, then keep the first `max_len` elements; returns the length left and the
    /// evicted elements in list order. A list left empty is deleted, as Redis does.
    pub(super) fn list_push_capped(
        &mut self,
        name: &str,
        values: &[&str],
        max_len: u64,
        now: Instant,
    ) -> Result<(u64, Vec<String>), WrongType> {
        let Some(list) = self.list_mut(name, now, !values.is_empty())? else { return Ok((0, Vec::new())) };
        for value in values {
            list.push_front((*value).to_owned());
        }
        let keep = usize::try_from(max_len).unwrap_or(usize::MAX).min(list.len());
        let evicted: Vec<String> = list.split_off(keep).into();
        let len = list.len() as u64;
        self.drop_if_empty(name);
        Ok((len, evicted))
    }

    pub(super) fn list_len(&mut self, name: &str, now: Instant) -> Result<u64, WrongType> {
        Ok(self.list_ref(name, now)?.map_or(0, |list| list.len() as u64))
    }

    pub(super) fn list_range(
        &mut self,
        name: &str,
        start: i64,
        stop: i64,
        now: Instant,
    ) -> Result<Vec<String>, WrongType> {
        let Some(list) = self.list_ref(name, now)? else { return Ok(Vec::new()) };
        Ok(match resolve_range(list.len(), start, stop) {
            Some((first, last)) => list.range(first..=last).cloned().collect(),
            None => Vec::new(),
        })
    }

    pub(super) fn list_pop(&mut self, name: &str, end: ListEnd, now: Instant) -> Result<Option<String>, WrongType> {
        let popped = self.list_mut(name, now, false)?.and_then(|list| match end {
            ListEnd::Left => list.pop_front(),
            ListEnd::Right => list.pop_back(),
        });
        self.drop_if_empty(name);
        Ok(popped)
    }

    pub(super) fn list_position(&self, name: &str, value: &str, now: Instant) -> Result<Option<u64>, WrongType> {
        match self.peek(name, now) {
            None => Ok(None),
            Some(Entry { value: Value::List(list), .. }) => {
                Ok(list.items.iter().position(|item| item == value).map(|at| at as u64))
            }
            Some(_) => Err(WrongType),
        }
    }

    /// Whether the list `name` holds `value`, and the verdict to remember it by; no verdict
    /// when there is no list (a list created later starts a witness of its own).
    pub(super) fn list_verdict(
        &self,
        name: &str,
        value: &str,
        now: Instant,
    ) -> Result<(bool, Option<EmbeddedVerdict>), WrongType> {
        match self.peek(name, now) {
            None => Ok((false, None)),
            Some(Entry { value: Value::List(list), expires_at }) => {
                // Read before the items: a change that lands after this read bumped it.
                let version = list.witness.version.load(Ordering::Acquire);
                let listed = list.items.iter().any(|item| item == value);
                let verdict =
                    EmbeddedVerdict { witness: Arc::clone(&list.witness), version, expires_at: *expires_at, listed };
                Ok((listed, Some(verdict)))
            }
            Some(_) => Err(WrongType),
        }
    }

    /// LREM: `count > 0` removes the first `count` matches from the head, `count < 0` from the
    /// tail, `0` all of them.
    pub(super) fn list_remove(&mut self, name: &str, count: i64, value: &str, now: Instant) -> Result<u64, WrongType> {
        let Some(list) = self.list_mut(name, now, false)? else { return Ok(0) };
        let limit = if count == 0 { usize::MAX } else { usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX) };
        let mut removed = 0;
        if count >= 0 {
            let mut index = 0;
            while index < list.len() && removed < limit {
                if list[index] == value {
                    list.remove(index);
                    removed += 1;
                } else {
                    index += 1;
                }
            }
        } else {
            let mut index = list.len();
            while index > 0 && removed < limit {
                index -= 1;
                if list[index] == value {
                    list.remove(index);
                    removed += 1;
                }
            }
        }
        self.drop_if_empty(name);
        Ok(removed as u64)
    }

    pub(super) fn list_trim(&mut self, name: &str, start: i64, stop: i64, now: Instant) -> Result<(), WrongType> {
        let Some(list) = self.list_mut(name, now, false)? else { return Ok(()) };
        match resolve_range(list.len(), start, stop) {
            Some((first, last)) => {
                list.truncate(last + 1);
                list.drain(..first);
            }
            None => list.clear(),
        }
        self.drop_if_empty(name);
        Ok(())
    }

    pub(super) fn delete_if_equals(&mut self, key: &str, expected: &str, now: Instant) -> Result<bool, WrongType> {
        if self.string_bytes(key, now)? == Some(expected.as_bytes()) { Ok(self.remove(key)) } else { Ok(false) }
    }

    pub(super) fn expire_if_equals(
        &mut self,
        key: &str,
        expected: &str,
        ttl: Duration,
        now: Instant,
    ) -> Result<bool, WrongType> {
        if self.string_bytes(key, now)? == Some(expected.as_bytes()) {
            Ok(self.expire(key, ttl, now))
        } else {
            Ok(false)
        }
    }

    /// SET NX PX of `key` and INCR of `counter`, all or nothing. The counter is checked first,
    /// with Redis's answers (a list or hash is WRONGTYPE; a string that is not an integer as
    /// Redis reads one, or `i64::MAX`, is refused as Redis refuses it), so a failure changes
    /// nothing. INCR keeps the counter's TTL, as Redis does.
    pub(super) fn acquire_fenced(
        &mut self,
        key: &str,
        counter: &str,
        identifier: &str,
        lease: Duration,
        now: Instant,
    ) -> Result<Option<u64>, IncrementFailure> {
        if self.live(key, now).is_some() {
            return Ok(None);
        }
        let current = match self.live(counter, now) {
            None => 0,
            Some(Entry { value: Value::String(text), .. }) => {
                redis_integer(text.text.as_bytes()).ok_or(IncrementFailure::NotAnInteger)?
            }
            Some(Entry { value: Value::Bytes(bytes), .. }) => {
                redis_integer(bytes).ok_or(IncrementFailure::NotAnInteger)?
            }
            Some(_) => return Err(IncrementFailure::WrongType),
        };
        let token = current.checked_add(1).ok_or(IncrementFailure::Overflow)?;
        match self.entries.get_mut(counter) {
            Some(entry) => entry.value = Value::String(Text::new(token.to_string())),
            None => {
                self.insert_new(
                    counter,
                    Entry { value: Value::String(Text::new(token.to_string())), expires_at: None },
                );
            }
        }
        self.set_string(key, identifier, Some(lease), false, now);
        Ok(Some(u64::try_from(token).unwrap_or(0)))
    }

    /// One SCAN step: examines at most `count` keys (at least one) in key order, starting
    /// after `after` (`None`: from the start), and returns the live ones matching `pattern`.
    /// A key present for the whole scan is returned exactly once; a key added or removed
    /// meanwhile may or may not be.
    pub(super) fn scan(&self, after: Option<&str>, pattern: &str, count: usize, now: Instant) -> ScanPage {
        let limit = count.max(1);
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut keys = Vec::new();
        let mut examined = 0;
        let mut last = None;
        for name in self.names.range::<str, _>((start, Bound::Unbounded)).take(limit) {
            examined += 1;
            if self.peek(name, now).is_some() && super::glob::glob_matches(pattern, name) {
                keys.push(name.to_string());
            }
            last = Some(name);
        }
        let next = if examined < limit { None } else { last.map(Arc::clone) };
        ScanPage { keys, next }
    }
}

/// An integer as Redis's INCR reads a string (`string2ll`): `0`, or an optional `-` and digits
/// without a leading zero, within i64 — exactly the text `i64`'s `Display` writes. `+5`, `05`,
/// `-0` and ` 5` are not integers to Redis (Rust's `parse` takes the first three).
fn redis_integer(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let value = text.parse::<i64>().ok()?;
    (value.to_string() == text).then_some(value)
}

/// The mask of bit `offset` within its byte: Redis numbers bits from the most significant one.
fn bit_mask(offset: u64) -> u8 {
    0x80 >> (offset % 8)
}

/// Redis's index rules for LRANGE/LTRIM: negative counts from the end, out-of-range ends are
/// clamped; `None` when the range is empty.
fn resolve_range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let start = if start < 0 { (len + start).max(0) } else { start };
    let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
    if start > stop || start >= len || stop < 0 {
        return None;
    }
    Some((usize::try_from(start).ok()?, usize::try_from(stop).ok()?))
}

/// A key's value as the journal writes it, borrowed from the keyspace.
#[derive(Debug)]
pub(super) enum ValueRef<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
    List(&'a VecDeque<String>),
    Hash(&'a HashMap<String, String>),
}

/// A key's value as the journal reads it back.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StoredValue {
    Text(String),
    Bytes(Vec<u8>),
    List(Vec<String>),
    Hash(Vec<(String, String)>),
}

/// What persistence reads and writes, apart from the operations: a key's whole state, and the
/// state a replayed record sets. Replay sets what a record says whatever the clock says now
/// (expired keys are swept once replay is done), so a record applies the same at any time.
impl Keyspace {
    /// `key`'s value and deadline when it is live at `now`.
    pub(super) fn state_of(&self, key: &str, now: Instant) -> Option<(ValueRef<'_>, Option<Instant>)> {
        let entry = self.peek(key, now)?;
        let value = match &entry.value {
            Value::String(text) => ValueRef::Text(&text.text),
            Value::Bytes(bytes) => ValueRef::Bytes(bytes),
            Value::List(list) => ValueRef::List(&list.items),
            Value::Hash(hash) => ValueRef::Hash(hash),
        };
        Some((value, entry.expires_at))
    }

    /// Whether `key` holds a live value at `now`.
    pub(super) fn is_live(&self, key: &str, now: Instant) -> bool {
        self.peek(key, now).is_some()
    }

    /// Up to `count` keys after `after` in key order (a snapshot's next chunk), and whether
    /// they are the last.
    pub(super) fn names_after(&self, after: Option<&str>, count: usize) -> (Vec<Arc<str>>, bool) {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let names: Vec<Arc<str>> = self.names.range::<str, _>((start, Bound::Unbounded)).take(count).cloned().collect();
        let last = names.len() < count;
        (names, last)
    }

    /// Sets `key` to `value` with `expires_at`, replacing whatever it held.
    pub(super) fn restore(&mut self, key: &str, value: StoredValue, expires_at: Option<Instant>) {
        self.remove(key);
        let value = match value {
            StoredValue::Text(text) => Value::String(Text::new(text)),
            StoredValue::Bytes(bytes) => Value::Bytes(bytes),
            StoredValue::List(items) => Value::List(List { items: items.into(), witness: Arc::default() }),
            StoredValue::Hash(fields) => Value::Hash(fields.into_iter().collect()),
        };
        self.insert_new(key, Entry { value, expires_at: None });
        self.set_expiry(key, expires_at);
        self.drop_if_empty(key);
    }

    /// Sets bits of `key` as `set_bits` did: on a new bitmap when `fresh`, else on what the key
    /// holds; then gives the key `expires_at`.
    pub(super) fn restore_bits(&mut self, key: &str, offsets: &[u64], fresh: bool, expires_at: Option<Instant>) {
        if fresh {
            self.remove(key);
        }
        // Replay sets what the record says: the key counts as live for the operation, and a
        // wrong type (which the original operation refused, so no record) cannot occur.
        self.set_expiry(key, None);
        let _ = self.set_bits(key, offsets, Instant::now());
        self.set_expiry(key, expires_at);
    }

    /// Gives `key`, if it is held, `expires_at`.
    pub(super) fn restore_expiry(&mut self, key: &str, expires_at: Option<Instant>) {
        self.set_expiry(key, expires_at);
    }

    /// Removes `key`.
    pub(super) fn restore_deletion(&mut self, key: &str) {
        self.remove(key);
    }
}
