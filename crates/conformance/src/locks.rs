//! Conformance cases for locks that survive pauses: fencing tokens, the watchdog, the lost-lock
//! signal and its counters. Run on every backend by `conformance_suite!` in `mod.rs`.
//!
//! Leases are a few hundred milliseconds; every wait is bounded by seconds, and no case
//! depends on how fast the machine is beyond "a task runs within a few hundred milliseconds".
//! Holders that must be paused or counted run on their own current-thread runtime in their own
//! thread; the store (fred's connection tasks, the embedded sweeper) stays on the test's runtime.

use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;

use cache_toolkit::{CacheClient, CacheErrorKind, CacheEvent, KeyPrefix, LockLoss, LockOptions, LockRelease, Ttl};

/// Another client on the same store and prefix, with its own metrics: a second process.
fn second_client(cache: &CacheClient) -> CacheClient {
    cache.with_key_prefix(cache.key_prefix().clone())
}

/// A client without prefix, to look at keys outside the prefix's namespace.
fn unprefixed_client(cache: &CacheClient) -> CacheClient {
    cache.with_key_prefix(KeyPrefix::default())
}

fn events(cache: &CacheClient, event: CacheEvent) -> u64 {
    cache.metrics().snapshot().event(event)
}

/// Polls `condition` every 10 ms for at most `limit`; `false` when it never held.
async fn eventually(limit: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `holder` on its own current-thread runtime in its own thread, like another process,
/// and waits for it without blocking the test's runtime (which serves the store).
async fn on_own_runtime<T: Send + 'static>(holder: impl AsyncFnOnce() -> T + Send + 'static) -> T {
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(holder())
    });
    let joined = tokio::task::spawn_blocking(move || thread.join()).await.unwrap();
    joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

pub(super) async fn lock_fencing_tokens_increase_across_acquisitions_and_clients(cache: CacheClient) {
    let other = second_client(&cache);
    let free = LockOptions::new(Duration::from_secs(10));
    let first = cache.acquire_lock("lock", Duration::from_secs(10), Duration::ZERO, Duration::ZERO).await.unwrap();
    let first = first.expect("a free lock");
    assert_eq!(first.fencing_token(), 1, "the first token of a new lock");
    assert!(other.acquire_lock_with("lock", free).await.unwrap().is_none(), "held by the first client");
    assert_eq!(first.release().await.unwrap(), LockRelease::Released);
    let mut tokens = vec![1];
    for round in 0..4 {
        let client = if round % 2 == 0 { &other } else { &cache };
        let guard = client.acquire_lock_with("lock", free).await.unwrap().expect("a released lock is free");
        tokens.push(guard.fencing_token());
        assert_eq!(guard.release().await.unwrap(), LockRelease::Released);
    }
    assert_eq!(tokens, [1, 2, 3, 4, 5], "one increment per acquisition, none for a refused attempt");

    let expiring = cache.acquire_lock_with("lock", LockOptions::new(Duration::from_millis(100))).await.unwrap();
    let expiring = expiring.expect("free");
    assert_eq!(expiring.fencing_token(), 6);
    assert!(eventually(Duration::from_secs(3), async || !cache.key_exists("lock").await.unwrap()).await, "expired");
    assert_eq!(expiring.release().await.unwrap(), LockRelease::Lost);
    let after_expiry = other.acquire_lock_with("lock", free).await.unwrap().expect("an expired lock is free");
    assert_eq!(after_expiry.fencing_token(), 7, "the counter outlives the lock key's expiry");

    let tagged = cache.acquire_lock_with("{user:7}:lock", free).await.unwrap().expect("another lock");
    assert_eq!(tagged.fencing_token(), 1, "each lock key has its own counter");

    let raw = unprefixed_client(&cache);
    let prefix = cache.key_prefix().as_str();
    let counter = format!("{{{prefix}lock}}:fence");
    assert_eq!(raw.get_value(&counter).await.unwrap().as_deref(), Some("7"), "{counter}");
    assert_eq!(raw.get_ttl(&counter).await.unwrap(), Ttl::NoExpiry, "{counter} never expires");
    let tagged_counter = format!("{prefix}{{user:7}}:lock:fence");
    assert_eq!(raw.get_value(&tagged_counter).await.unwrap().as_deref(), Some("1"), "{tagged_counter}");
    assert_eq!(after_expiry.release().await.unwrap(), LockRelease::Released);
    assert_eq!(tagged.release().await.unwrap(), LockRelease::Released);
    assert_eq!(raw.get_value(&counter).await.unwrap().as_deref(), Some("7"), "a release keeps the counter");
}

pub(super) async fn lock_keys_without_a_slot_for_their_counter_are_refused(cache: CacheClient) {
    for key in ["odd}name", "empty{}tag"] {
        let error = cache
            .acquire_lock_with(key, LockOptions::new(Duration::from_secs(10)))
            .await
            .expect_err("no counter key can share this key's slot");
        assert_eq!(error.kind(), CacheErrorKind::InvalidInput, "{key}: {error}");
        let redacted = cache.redacted_key(key).to_string();
        assert!(error.to_string().contains(&redacted), "the message names the key, redacted: {error}");
        assert!(!cache.key_exists(key).await.unwrap(), "{key}: nothing was written");
    }
}

pub(super) async fn lock_counter_of_another_type_fails_acquisition_and_leaves_no_lock(cache: CacheClient) {
    let raw = unprefixed_client(&cache);
    let counter = format!("{{{}lock}}:fence", cache.key_prefix().as_str());
    raw.push_to_list(&counter, "not a counter", cache_toolkit::ListEnd::Left).await.unwrap();
    let error = cache
        .acquire_lock_with("lock", LockOptions::new(Duration::from_secs(10)))
        .await
        .expect_err("INCR on a list fails");
    assert_eq!(error.kind(), CacheErrorKind::WrongType, "{error}");
    assert!(!cache.key_exists("lock").await.unwrap(), "the failed acquisition left no lock");
    assert_eq!(raw.get_list(&counter).await.unwrap(), ["not a counter"], "the counter was not touched");
    assert!(raw.delete_key(&counter).await.unwrap());
}

/// INCR reads a counter as Redis's `string2ll` does: no sign but `-`, no leading zero, no
/// space, within i64. A counter it cannot increment fails the acquisition with Redis's refusal
/// (`Rejected`, not `WrongType`) and leaves no lock; any string that reads as an integer counts,
/// bits set through a Bloom bitmap included.
pub(super) async fn lock_counter_that_incr_refuses_fails_acquisition_as_in_redis(cache: CacheClient) {
    let raw = unprefixed_client(&cache);
    let counter = format!("{{{}lock}}:fence", cache.key_prefix().as_str());
    for refused in ["05", "+5", "-0", " 5", "5 ", "x", "", "1.5", "9223372036854775807", "99999999999999999999"] {
        raw.set_value(&counter, refused, None).await.unwrap();
        let error = cache
            .acquire_lock_with("lock", LockOptions::new(Duration::from_secs(10)))
            .await
            .expect_err(&format!("INCR of {refused:?} fails"));
        assert_eq!(error.kind(), CacheErrorKind::Rejected, "counter {refused:?}: {error}");
        assert!(!cache.key_exists("lock").await.unwrap(), "counter {refused:?}: the failed acquisition left a lock");
        assert_eq!(raw.get_value(&counter).await.unwrap().as_deref(), Some(refused), "the counter was not touched");
    }
    for (counter_text, token) in [("-3", 0), ("0", 1), ("41", 42)] {
        raw.set_value(&counter, counter_text, None).await.unwrap();
        let guard = cache.acquire_lock_with("lock", LockOptions::new(Duration::from_secs(10))).await.unwrap();
        let guard = guard.unwrap_or_else(|| panic!("counter {counter_text:?}: a free lock"));
        assert_eq!(guard.fencing_token(), token, "counter {counter_text:?}");
        assert_eq!(guard.release().await.unwrap(), LockRelease::Released);
    }
    // "1" written bit by bit (0x31: bits 2, 3 and 7), as a bitmap holds it.
    raw.delete_key(&counter).await.unwrap();
    raw.set_bits(cache_toolkit::Op::BloomAdd, &counter, &[2, 3, 7]).await.unwrap();
    let guard = cache.acquire_lock_with("lock", LockOptions::new(Duration::from_secs(10))).await.unwrap();
    let guard = guard.expect("a free lock");
    assert_eq!(guard.fencing_token(), 2, "a bitmap spelling 1 is the integer 1");
    assert_eq!(guard.release().await.unwrap(), LockRelease::Released);
    assert!(raw.delete_key(&counter).await.unwrap());
}

pub(super) async fn lock_watchdog_keeps_a_lock_past_its_lease(cache: CacheClient) {
    const LEASE: Duration = Duration::from_millis(600);
    const HELD_FOR: Duration = Duration::from_millis(2_400);
    let rival = second_client(&cache);
    let guard = cache.acquire_lock_with("lock", LockOptions::new(LEASE).with_watchdog()).await.unwrap();
    let guard = guard.expect("a free lock");
    let started = Instant::now();
    let rival_attempt = rival
        .acquire_lock_with(
            "lock",
            LockOptions::new(Duration::from_secs(10)).waiting(HELD_FOR, Duration::from_millis(25)),
        )
        .await
        .unwrap();
    assert!(
        rival_attempt.is_none(),
        "the rival took the lock after {:?}: the watchdog let it expire",
        started.elapsed()
    );
    assert!(started.elapsed() >= HELD_FOR, "the rival kept trying for {HELD_FOR:?}");
    assert!(!guard.is_lost());
    let extensions = events(&cache, CacheEvent::LockExtension);
    assert!(extensions >= 3, "a lock held four leases long was extended {extensions} times");
    assert_eq!(guard.release().await.unwrap(), LockRelease::Released, "still ours after four leases");
    assert_eq!(events(&cache, CacheEvent::LockLoss), 0);
    assert_eq!(events(&rival, CacheEvent::LockExtension), 0, "only the holder's client extends");
}

/// The holder's thread (its runtime, its watchdog) is blocked until a second holder has taken
/// the lock, like a process stopped past its lease; when it resumes it is told.
pub(super) async fn lock_paused_holder_is_told_it_lost_the_lock(cache: CacheClient) {
    const LEASE: Duration = Duration::from_millis(300);
    let (acquired_sender, acquired) = tokio::sync::oneshot::channel::<u64>();
    let (resume, resumed) = std::sync::mpsc::channel::<()>();
    let holder_cache = cache.clone();
    let holder = tokio::spawn(on_own_runtime(async move || {
        let guard = holder_cache.acquire_lock_with("lock", LockOptions::new(LEASE).with_watchdog()).await.unwrap();
        let guard = guard.expect("a free lock");
        tokio::time::sleep(LEASE * 2).await;
        assert!(!guard.is_lost(), "the watchdog kept the lock for two leases before the pause");
        let holds = holder_cache.get_value("lock").await.unwrap();
        assert_eq!(holds.as_deref(), Some(guard.identifier()), "still the holder's after two leases");
        acquired_sender.send(guard.fencing_token()).unwrap();
        // The pause: this thread blocks, and with it this runtime and the watchdog on it.
        resumed.recv_timeout(Duration::from_secs(30)).expect("the test resumes the holder");
        let told = tokio::time::timeout(Duration::from_secs(5), guard.lost()).await.ok();
        let is_lost = guard.is_lost();
        (told, is_lost, guard.release().await.unwrap())
    }));
    let first_token = acquired.await.expect("the holder acquired the lock (else see its panic)");
    let extended_before_pause = events(&cache, CacheEvent::LockExtension);
    assert!(extended_before_pause >= 1, "the watchdog extended the lock during its first two leases");

    let second = cache
        .acquire_lock_with(
            "lock",
            LockOptions::new(Duration::from_secs(30)).waiting(Duration::from_secs(10), Duration::from_millis(20)),
        )
        .await
        .unwrap()
        .expect("the paused holder's lease ran out within 10 s");
    assert!(second.fencing_token() > first_token, "{} after {first_token}", second.fencing_token());
    resume.send(()).unwrap();
    let (told, is_lost, release) = holder.await.unwrap();
    assert_eq!(told, Some(LockLoss::NotHeld), "the resumed holder is told within 5 s");
    assert!(is_lost);
    assert_eq!(release, LockRelease::Lost);
    assert_eq!(
        events(&cache, CacheEvent::LockLoss),
        1,
        "one loss, counted once though the watchdog and release saw it"
    );
    assert_eq!(cache.get_value("lock").await.unwrap().as_deref(), Some(second.identifier()), "the second keeps it");
    assert_eq!(second.release().await.unwrap(), LockRelease::Released);
}

/// No watchdog task outlives its guard: the holder's own runtime counts its tasks.
pub(super) async fn lock_watchdog_stops_when_the_guard_is_released_or_dropped(cache: CacheClient) {
    const LEASE: Duration = Duration::from_millis(300);
    let holder_cache = cache.clone();
    on_own_runtime(async move || {
        let alive = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
        let with_watchdog = LockOptions::new(LEASE).with_watchdog();
        assert_eq!(alive(), 0);
        let guard = holder_cache.acquire_lock_with("lock", with_watchdog).await.unwrap().expect("a free lock");
        assert_eq!(alive(), 1, "the watchdog runs");
        tokio::time::sleep(LEASE).await;
        assert_eq!(guard.release().await.unwrap(), LockRelease::Released);
        assert!(eventually(Duration::from_secs(5), async || alive() == 0).await, "released: {} tasks left", alive());

        let guard = holder_cache.acquire_lock_with("lock", with_watchdog).await.unwrap().expect("a released lock");
        assert_eq!(alive(), 1, "the watchdog runs");
        drop(guard);
        // The drop aborts the watchdog and spawns the background release; both end.
        assert!(eventually(Duration::from_secs(5), async || alive() == 0).await, "dropped: {} tasks left", alive());
    })
    .await;
    assert!(!cache.key_exists("lock").await.unwrap(), "the dropped guard's background release freed the lock");
    let extensions = events(&cache, CacheEvent::LockExtension);
    tokio::time::sleep(LEASE * 2).await;
    assert_eq!(events(&cache, CacheEvent::LockExtension), extensions, "no extension after release or drop");
    assert_eq!(events(&cache, CacheEvent::LockLoss), 0, "no watchdog found the freed lock 'lost'");
    let next = cache.acquire_lock_with("lock", LockOptions::new(LEASE)).await.unwrap().expect("free after the drop");
    assert_eq!(next.fencing_token(), 3);
    assert_eq!(next.release().await.unwrap(), LockRelease::Released);
}

/// Without a watchdog, [`cache_toolkit::LockGuard::extend`] is what finds a loss.
pub(super) async fn lock_extend_finding_the_lock_lost_signals_it_once(cache: CacheClient) {
    let guard = cache.acquire_lock_with("lock", LockOptions::new(Duration::from_millis(100))).await.unwrap();
    let guard = guard.expect("a free lock");
    assert!(!guard.is_lost());
    assert_eq!(guard.lost().now_or_never(), None, "not lost yet");
    assert!(eventually(Duration::from_secs(3), async || !cache.key_exists("lock").await.unwrap()).await, "expired");
    assert!(!guard.extend(Duration::from_secs(10)).await.unwrap(), "an expired lock cannot be extended");
    assert!(guard.is_lost());
    assert_eq!(guard.lost().now_or_never(), Some(LockLoss::NotHeld), "resolves at once, and again");
    let waiter = guard.lost();
    assert_eq!(guard.release().await.unwrap(), LockRelease::Lost);
    assert_eq!(waiter.await, LockLoss::NotHeld, "a future taken before the release still answers");
    assert_eq!(events(&cache, CacheEvent::LockLoss), 1, "extend and release found one loss");
    assert_eq!(events(&cache, CacheEvent::LockExtension), 0, "no watchdog, no counted extension");
}
