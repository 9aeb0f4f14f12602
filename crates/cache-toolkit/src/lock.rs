//! Distributed locks: acquisition is one atomic step that SETs the lock key (NX PX, a unique
//! identifier) and INCRements a fencing counter in the same hash slot (a Lua script on Redis,
//! one critical section in the embedded store); release is an atomic compare-and-delete and
//! extension an atomic compare-and-pexpire (Lua on Redis, EVALSHA with a reload on NOSCRIPT).
//!
//! [`LockGuard`] carries the fencing token, can keep its lease alive with a watchdog task
//! ([`LockOptions::with_watchdog`]), and tells its holder when the lock was found lost
//! ([`LockGuard::lost`]) so work done under it can stop. A lock only protects work that
//! checks: a holder paused past its lease (GC, swap, a stopped process) may still run after
//! someone else took over, which is why the token exists — a resource that remembers the
//! largest token it saw can refuse the stale holder's writes.
//!
//! The fencing counter never expires, so tokens only grow, however far apart two acquisitions
//! are. The watchdog extends the lease every `lease / 3` and is aborted with its guard (released
//! or dropped); [`LockLoss`] says why a lock was found lost.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle, time::Instant};

use crate::{CacheClient, CacheError, CacheEvent, Op};
use store::redis;
use store::saturating_deadline;

/// What [`LockGuard::release`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockRelease {
    /// The lock was still ours and is now free.
    Released,
    /// The lock had expired (and may belong to someone else now): the work done under it was
    /// not protected for its whole duration.
    Lost,
}

/// Why a held lock was found lost (see [`LockGuard::lost`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockLoss {
    /// The store said the lock key no longer holds this guard's identifier: the lease ran out
    /// (the holder was paused, or extensions came too late) and someone else may hold it now.
    NotHeld,
    /// Extensions kept failing (store unreachable or too slow) until the lease may have run
    /// out: the lock can no longer be assumed held.
    ExtensionsFailed,
}

/// How [`CacheClient::acquire_lock_with`] takes a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockOptions {
    /// How long the lock key lives without an extension (at least 1 ms).
    pub lease: Duration,
    /// How long to keep trying while someone else holds the lock; zero: one attempt.
    pub wait_timeout: Duration,
    /// Pause between attempts while waiting (at least 1 ms is used).
    pub retry_interval: Duration,
    /// Whether a background task extends the lease every `lease / 3` while the guard lives.
    pub watchdog: bool,
}

impl LockOptions {
    /// One attempt, no watchdog; adjust with [`Self::waiting`] and [`Self::with_watchdog`].
    pub fn new(lease: Duration) -> Self {
        Self { lease, wait_timeout: Duration::ZERO, retry_interval: Duration::from_millis(50), watchdog: false }
    }

    /// Keep trying for `wait_timeout`, every `retry_interval`.
    pub fn waiting(self, wait_timeout: Duration, retry_interval: Duration) -> Self {
        Self { wait_timeout, retry_interval, ..self }
    }

    /// Extend the lease in the background while the guard lives, so work may outlast it; a
    /// holder that stops answering (paused, cut off) still loses the lock one lease later.
    pub fn with_watchdog(self) -> Self {
        Self { watchdog: true, ..self }
    }
}

/// A held lock. Call [`LockGuard::release`]; a guard dropped without it stops its watchdog at
/// once and releases in the background when a runtime is available (the lease frees it
/// otherwise).
#[derive(Debug)]
#[must_use = "a lock is released by calling release(); dropping the guard releases it in the background"]
pub struct LockGuard {
    client: CacheClient,
    key: String,
    identifier: String,
    fencing_token: u64,
    /// `Some` once the lock was found lost; set at most once, so a loss is counted once.
    loss: Arc<watch::Sender<Option<LockLoss>>>,
    /// The watchdog task; aborted (never left running) when the guard is released or dropped.
    watchdog: Option<JoinHandle<()>>,
    released: bool,
}

impl LockGuard {
    /// The lock's key (without the client's prefix).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The unique value stored in the lock key: what proves ownership.
    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    /// This acquisition's fencing token: larger than the token of every earlier acquisition
    /// of the same lock key (on the same store and prefix), whoever made it. Pass it to the
    /// protected resource, which refuses a token smaller than the largest it has seen.
    pub fn fencing_token(&self) -> u64 {
        self.fencing_token
    }

    /// Whether the lock was found lost (by the watchdog, or by [`Self::extend`]).
    pub fn is_lost(&self) -> bool {
        self.loss.borrow().is_some()
    }

    /// Resolves when the lock is found lost, with the reason; at once if it already was.
    /// Cancel-safe and callable any number of times; the future does not borrow the guard.
    /// Only a watchdog ([`LockOptions::with_watchdog`]) or a failed [`Self::extend`] finds a
    /// loss: without them, and after a release without loss, this never resolves.
    pub fn lost(&self) -> impl Future<Output = LockLoss> + Send + 'static {
        let mut receiver = self.loss.subscribe();
        async move {
            let found = receiver.wait_for(Option::is_some).await.ok().and_then(|loss| *loss);
            match found {
                Some(loss) => loss,
                None => std::future::pending().await,
            }
        }
    }

    /// Releases the lock if it is still ours; the watchdog is stopped first, so it can neither
    /// extend nor report a loss afterwards.
    pub async fn release(mut self) -> Result<LockRelease, CacheError> {
        self.released = true;
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
            // An aborted task's handle resolves once the task is gone; its result says nothing.
            let _ = watchdog.await;
        }
        let released = self.client.release_lock(&self.key, &self.identifier).await?;
        if released {
            return Ok(LockRelease::Released);
        }
        report_loss(&self.loss, &self.client, LockLoss::NotHeld);
        Ok(LockRelease::Lost)
    }

    /// Gives the lock a new TTL from now, if it is still ours; `false` when it was lost (which
    /// also resolves [`Self::lost`]).
    pub async fn extend(&self, ttl: Duration) -> Result<bool, CacheError> {
        let extended = self.client.extend_lock(&self.key, &self.identifier, ttl).await?;
        if !extended {
            report_loss(&self.loss, &self.client, LockLoss::NotHeld);
        }
        Ok(extended)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        if self.released {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let client = self.client.clone();
        let key = std::mem::take(&mut self.key);
        let identifier = std::mem::take(&mut self.identifier);
        runtime.spawn(async move {
            if let Err(error) = client.release_lock(&key, &identifier).await {
                tracing::warn!(%error, "releasing a dropped lock guard failed; its TTL will free it");
            }
        });
    }
}

impl CacheClient {
    /// Tries to take the lock at `key` for `expire`, retrying every `retry_interval` until
    /// `timeout` has passed. `None` when someone else held it the whole time. No watchdog:
    /// see [`Self::acquire_lock_with`].
    pub async fn acquire_lock(
        &self,
        key: &str,
        expire: Duration,
        timeout: Duration,
        retry_interval: Duration,
    ) -> Result<Option<LockGuard>, CacheError> {
        self.acquire_lock_with(key, LockOptions::new(expire).waiting(timeout, retry_interval)).await
    }

    /// Tries to take the lock at `key` as `options` say. `None` when someone else held it for
    /// the whole wait. Each successful acquisition increments the lock's fencing counter, a
    /// key that never expires (tokens must keep increasing across acquisitions, however far
    /// apart): `<stored key>:fence` when the stored (prefixed) key has a hash tag, else
    /// `{<stored key>}:fence`, so both keys share a hash slot. An empty stored key, or one with
    /// a `}` but no hash tag, has no such counter key and is refused as invalid input.
    pub async fn acquire_lock_with(&self, key: &str, options: LockOptions) -> Result<Option<LockGuard>, CacheError> {
        let stored = self.key(key).into_owned();
        self.check_ttl(Op::AcquireLock, &stored, Some(options.lease))?;
        let Some(counter) = fencing_counter_key(&stored) else {
            return Err(self.refuse(
                Op::AcquireLock,
                &stored,
                "an empty lock key, or one with `}` outside a hash tag, has no fencing counter in its hash slot; use a hash tag such as `{name}`"
                    .to_owned(),
            ));
        };
        let identifier = format!("{:032x}", rand::random::<u128>());
        let lease = options.lease;
        let deadline = saturating_deadline(Instant::now(), options.wait_timeout);
        loop {
            let sent_at = Instant::now();
            let acquired = self
                .call_refusing(
                    Op::AcquireLock,
                    &stored,
                    async |pool| redis::acquire_fenced(pool, &stored, &counter, &identifier, lease).await,
                    |store| store.acquire_fenced(&stored, &counter, &identifier, lease),
                )
                .await?;
            if let Some(fencing_token) = acquired {
                let (loss, _) = watch::channel(None);
                let loss = Arc::new(loss);
                let watchdog = options.watchdog.then(|| {
                    let watchdog = Watchdog {
                        client: self.clone(),
                        key: key.to_owned(),
                        identifier: identifier.clone(),
                        lease,
                        loss: Arc::clone(&loss),
                    };
                    tokio::spawn(watchdog.keep_extended(sent_at))
                });
                return Ok(Some(LockGuard {
                    client: self.clone(),
                    key: key.to_owned(),
                    identifier,
                    fencing_token,
                    loss,
                    watchdog,
                    released: false,
                }));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(options.retry_interval.max(Duration::from_millis(1)).min(deadline - now)).await;
        }
    }

    /// Releases the lock at `key` only if it still holds `identifier` (atomic
    /// compare-and-delete). `false` when it was held by someone else or had expired.
    pub async fn release_lock(&self, key: &str, identifier: &str) -> Result<bool, CacheError> {
        self.delete_if_equals(key, identifier).await
    }

    /// Sets the lock's TTL to `ttl` from now only if it still holds `identifier`.
    pub async fn extend_lock(&self, key: &str, identifier: &str, ttl: Duration) -> Result<bool, CacheError> {
        self.expire_if_equals(key, identifier, ttl).await
    }
}

/// Marks the lock lost (first reason wins) and counts the loss once.
fn report_loss(loss: &watch::Sender<Option<LockLoss>>, client: &CacheClient, reason: LockLoss) {
    let newly_lost = loss.send_if_modified(|state| {
        let first = state.is_none();
        if first {
            *state = Some(reason);
        }
        first
    });
    if newly_lost {
        client.metrics().count(CacheEvent::LockLoss);
    }
}

/// What the watchdog task owns: everything it needs, nothing of the guard.
struct Watchdog {
    client: CacheClient,
    key: String,
    identifier: String,
    lease: Duration,
    loss: Arc<watch::Sender<Option<LockLoss>>>,
}

impl Watchdog {
    /// Extends the lease every `lease / 3` until aborted or until the lock is found lost.
    ///
    /// `may_expire_at` is the earliest moment the lease may run out: the time the command that
    /// set it was *sent* plus the lease (Redis started its clock no earlier). Extensions that
    /// fail with errors are retried until then; past it the lock may be someone else's, so the
    /// loss is reported then rather than later. An attempt always gets at least one lease,
    /// though: after a pause the lease is over by our clock, yet the store's answer is what
    /// tells "taken over" from "still ours" (if the key still holds our identifier, nobody
    /// else can have held it meanwhile, identifiers being unique), so it is worth waiting for.
    async fn keep_extended(self, acquired_sent_at: Instant) {
        let every = (self.lease / 3).max(Duration::from_millis(1));
        let mut may_expire_at = saturating_deadline(acquired_sent_at, self.lease);
        let mut next_attempt = saturating_deadline(acquired_sent_at, every);
        loop {
            tokio::time::sleep_until(next_attempt).await;
            let sent_at = Instant::now();
            let allowed = may_expire_at.saturating_duration_since(sent_at).max(self.lease);
            let extension =
                tokio::time::timeout(allowed, self.client.extend_lock(&self.key, &self.identifier, self.lease)).await;
            match extension {
                Ok(Ok(true)) => {
                    self.client.metrics().count(CacheEvent::LockExtension);
                    may_expire_at = saturating_deadline(sent_at, self.lease);
                    next_attempt = saturating_deadline(sent_at, every);
                }
                Ok(Ok(false)) => {
                    tracing::warn!(key = %self.client.redacted_key(&self.key), "lock lost: its key no longer holds this holder's identifier");
                    report_loss(&self.loss, &self.client, LockLoss::NotHeld);
                    return;
                }
                Ok(Err(_)) | Err(_) => {
                    let now = Instant::now();
                    if now >= may_expire_at {
                        tracing::warn!(key = %self.client.redacted_key(&self.key), "lock lost: extensions failed until its lease may have run out");
                        report_loss(&self.loss, &self.client, LockLoss::ExtensionsFailed);
                        return;
                    }
                    tracing::debug!(key = %self.client.redacted_key(&self.key), "lock extension failed; retrying before the lease runs out");
                    next_attempt = saturating_deadline(now, every).min(may_expire_at);
                }
            }
        }
    }
}

/// The hash tag Redis Cluster hashes instead of the whole key: the text between the first `{`
/// and the first `}` after it, when that text is not empty.
fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let after = &key[open + 1..];
    let close = after.find('}')?;
    (close > 0).then(|| &after[..close])
}

/// The fencing counter of the lock stored at `stored_key`, in the same hash slot (a cluster
/// runs the acquisition script only on keys of one slot). With a hash tag the tag is kept;
/// without one the whole stored key becomes the tag — impossible when it contains a `}`
/// (the tag would end there) or is empty (an empty tag is no tag), hence `None`.
fn fencing_counter_key(stored_key: &str) -> Option<String> {
    if hash_tag(stored_key).is_some() {
        Some(format!("{stored_key}:fence"))
    } else if stored_key.is_empty() || stored_key.contains('}') {
        None
    } else {
        Some(format!("{{{stored_key}}}:fence"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_counter_keys_share_the_lock_key_hash_slot() {
        let cases = [
            ("lock", Some("{lock}:fence")),
            ("app:lock", Some("{app:lock}:fence")),
            ("", None),
            ("{user:1}:lock", Some("{user:1}:lock:fence")),
            ("app:{user:1}:lock", Some("app:{user:1}:lock:fence")),
            ("a{b}c{d}", Some("a{b}c{d}:fence")),
            ("a{{b}c", Some("a{{b}c:fence")),
            ("open{only", Some("{open{only}:fence")),
            ("ends{", Some("{ends{}:fence")),
            ("close}only", None),
            ("empty{}tag", None),
            ("}{x", None),
            ("ключ", Some("{ключ}:fence")),
        ];
        for (stored, expected) in cases {
            let counter = fencing_counter_key(stored);
            assert_eq!(counter.as_deref(), expected, "counter key of {stored:?}");
            if let Some(counter) = counter {
                assert_eq!(
                    fred::util::redis_keyslot(counter.as_bytes()),
                    fred::util::redis_keyslot(stored.as_bytes()),
                    "{stored:?} and {counter:?} must share a hash slot"
                );
            }
        }
    }

    #[test]
    fn refused_keys_would_put_a_wrapped_counter_in_another_slot() {
        for stored in ["close}only", "empty{}tag", ""] {
            let wrapped = format!("{{{stored}}}:fence");
            assert_ne!(
                fred::util::redis_keyslot(wrapped.as_bytes()),
                fred::util::redis_keyslot(stored.as_bytes()),
                "{stored:?}: wrapping in braces cut the tag at its `}}`"
            );
        }
    }

    #[test]
    fn hash_tags_follow_redis_rules() {
        let cases = [
            ("{a}", Some("a")),
            ("x{a}y{b}", Some("a")),
            ("{}a{b}", None),
            ("{{a}}", Some("{a")),
            ("a}{b}", Some("b")),
            ("{a", None),
            ("plain", None),
        ];
        for (key, expected) in cases {
            assert_eq!(hash_tag(key), expected, "{key:?}");
        }
    }
}
