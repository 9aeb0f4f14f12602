//! Embedded-store behaviour that needs controlled time or a look inside: TTLs with paused tokio
//! time, the sweeper reclaiming memory, SCAN's guarantees and its bounded steps. (Shared Redis
//! semantics are in the conformance suite.)

use std::{collections::HashMap, sync::Arc, time::Duration};

use super::{EmbeddedStats, EmbeddedStore};
use crate::Ttl;

#[tokio::test(start_paused = true)]
async fn expired_keys_are_never_returned() {
    let store = EmbeddedStore::new();
    assert!(store.set("k", "v", Some(Duration::from_secs(10)), false));
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(store.get("k"), Ok(Some("v".to_owned())));
    assert!(matches!(store.ttl("k"), Ttl::ExpiresIn(left) if left <= Duration::from_secs(1)));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(store.get("k"), Ok(None));
    assert_eq!(store.ttl("k"), Ttl::Missing);
    assert!(!store.exists("k"));
    assert!(store.set("k", "v", Some(Duration::from_secs(1)), true), "NX succeeds once the old key expired");
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_reclaims_expired_keys() {
    let store = EmbeddedStore::new();
    for index in 0..5_000 {
        store.set(&format!("key:{index}"), "value", Some(Duration::from_millis(100 + index % 100)), false);
    }
    store.set("forever", "value", None, false);
    assert_eq!(store.len(), 5_001);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(store.stored_len(), 1, "entries and expiry index must both be reclaimed");
    assert_eq!(store.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_ttl_changed_before_the_deadline_survives_the_old_deadline() {
    let store = EmbeddedStore::new();
    store.set("k", "v", Some(Duration::from_secs(1)), false);
    assert!(store.expire("k", Duration::from_secs(10)));
    tokio::time::advance(Duration::from_secs(2)).await;
    store.sweep_now();
    assert_eq!(store.get("k"), Ok(Some("v".to_owned())));
    store.set("k", "v2", None, false);
    tokio::time::advance(Duration::from_secs(20)).await;
    store.sweep_now();
    assert_eq!(store.get("k"), Ok(Some("v2".to_owned())), "SET without TTL clears the old one");
}

#[tokio::test]
async fn the_sweeper_stops_when_the_store_is_dropped() {
    let store = EmbeddedStore::new();
    let weak = std::sync::Arc::downgrade(&store.keyspace);
    drop(store);
    tokio::time::sleep(super::SWEEP_INTERVAL * 2).await;
    assert!(weak.upgrade().is_none(), "the sweeper must not keep the keyspace alive");
}

#[tokio::test(start_paused = true)]
async fn a_decoded_value_is_kept_until_the_value_changes() {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let store = EmbeddedStore::new();
    let decodes = AtomicUsize::new(0);
    let decode = |text: &str| {
        decodes.fetch_add(1, Ordering::SeqCst);
        text.len()
    };
    assert_eq!(store.get_decoded("k", decode), Ok(None));
    store.set("k", "four", Some(Duration::from_secs(10)), false);
    let kept = store.get_decoded("k", decode).unwrap().unwrap();
    for _ in 0..50 {
        assert!(Arc::ptr_eq(&kept, &store.get_decoded("k", decode).unwrap().unwrap()), "one decode, shared");
    }
    assert_eq!((*kept, decodes.load(Ordering::SeqCst)), (4, 1));
    store.set("k", "eleven char", Some(Duration::from_secs(10)), false);
    assert_eq!(store.get_decoded("k", decode).unwrap().as_deref(), Some(&11), "a new value is decoded anew");
    store.set_bits("k", &[1]).unwrap(); // a bit already set: the same text, now held as bytes
    assert_eq!(decodes.load(Ordering::SeqCst), 2);
    assert!(store.get_decoded("k", decode).unwrap().is_some(), "bytes that are UTF-8 still decode");
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(store.get_decoded("k", decode), Ok(None), "expired with its value");
    store.list_push("list", &["x"], crate::ListEnd::Left).unwrap();
    assert_eq!(store.get_decoded("list", decode), Err(super::TextReadFailure::WrongType));
}

/// The client refuses TTLs over `MAX_TTL`; below it, the store itself never panics on a
/// duration its clock cannot add (it keeps the key for decades instead).
#[tokio::test(start_paused = true)]
async fn ttls_too_long_for_the_clock_saturate_instead_of_panicking() {
    let store = EmbeddedStore::new();
    let decades = Duration::from_secs(29 * 365 * 24 * 60 * 60);
    assert!(store.set("k", "v", Some(Duration::MAX), false));
    assert!(matches!(store.ttl("k"), Ttl::ExpiresIn(left) if left > decades));
    assert!(store.expire("k", Duration::MAX));
    assert!(matches!(store.ttl("k"), Ttl::ExpiresIn(left) if left > decades));
    assert_eq!(store.acquire_fenced("lock", "{lock}:fence", "id", Duration::MAX), Ok(Some(1)));
    assert_eq!(store.expire_if_equals("lock", "id", Duration::MAX), Ok(true));
    assert_eq!(store.get("lock"), Ok(Some("id".to_owned())));
}

/// Redis's SCAN guarantee, kept by the embedded store: a key present from the first step to
/// the last is returned (here exactly once), whatever is added or deleted between steps, and
/// one step examines at most COUNT keys.
#[test]
fn a_scan_returns_each_key_present_throughout_exactly_once_while_keys_come_and_go() {
    const KEYS: usize = 5_000;
    const COUNT: usize = 100;
    let store = EmbeddedStore::new();
    for index in 0..KEYS {
        store.set(&format!("stay:{index:05}"), "v", None, false);
        store.set(&format!("go:{index:05}"), "v", None, false);
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut after: Option<Arc<str>> = None;
    let mut steps = 0;
    loop {
        let page = store.scan(after.as_deref(), "*", COUNT);
        assert!(page.keys.len() <= COUNT, "a step examines at most COUNT keys, got {}", page.keys.len());
        for key in page.keys {
            *seen.entry(key).or_default() += 1;
        }
        // Keys go and come between steps, before and after the cursor.
        store.delete(&[&format!("go:{steps:05}"), &format!("go:{:05}", KEYS - 1 - steps)]);
        store.set(&format!("a-new:{steps:05}"), "v", None, false);
        store.set(&format!("z-new:{steps:05}"), "v", None, false);
        steps += 1;
        let Some(next) = page.next else { break };
        after = Some(next);
    }
    assert!(steps >= 2 * KEYS / COUNT, "{steps} steps");
    for index in 0..KEYS {
        let key = format!("stay:{index:05}");
        assert_eq!(seen.get(&key), Some(&1), "{key} was present throughout");
    }
    assert!(seen.values().all(|&times| times == 1), "no key is returned twice");
    let (mut matching, mut after) = (Vec::new(), None::<Arc<str>>);
    loop {
        let page = store.scan(after.as_deref(), "stay:0000?", COUNT);
        matching.extend(page.keys);
        let Some(next) = page.next else { break };
        after = Some(next);
    }
    assert_eq!(matching, (0..10).map(|index| format!("stay:0000{index}")).collect::<Vec<_>>(), "in key order");
}

/// A pattern delete over many keys releases the lock between SCAN steps: on a single-threaded
/// runtime another task gets to read the store while the delete is half done.
#[tokio::test]
async fn deleting_by_pattern_lets_other_callers_in_between_steps() {
    const KEYS: usize = 20_000;
    let store = EmbeddedStore::new();
    for index in 0..KEYS {
        store.set(&format!("doomed:{index}"), "v", None, false);
    }
    store.set("kept", "v", None, false);
    let deleting = tokio::spawn({
        let store = store.clone();
        async move { store.delete_matching("doomed:*").await }
    });
    let mut observed = Vec::new();
    while !deleting.is_finished() {
        observed.push(store.len());
        tokio::task::yield_now().await;
    }
    assert_eq!(deleting.await.unwrap(), KEYS as u64);
    assert_eq!(store.len(), 1);
    assert!(
        observed.iter().any(|&left| 1 < left && left < KEYS + 1),
        "no other caller got in while the delete was under way: {observed:?}"
    );
}

/// Sliding expiry renews a token's TTL on every verification: the expiry index must keep one
/// entry per key however often that happens (an entry per renewal, kept until its deadline,
/// would grow the index with the request rate).
#[tokio::test(start_paused = true)]
async fn renewing_a_ttl_keeps_one_expiry_index_entry_per_key() {
    let store = EmbeddedStore::new();
    let ttl = Duration::from_secs(30 * 60);
    store.set("token:t", "{}", Some(ttl), false);
    store.list_push("token_list:1", &["t"], crate::ListEnd::Left).unwrap();
    for _ in 0..10_000 {
        assert!(store.expire("token:t", ttl));
        assert!(store.expire("token_list:1", ttl));
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    assert_eq!(store.stats(), EmbeddedStats { keys: 2, expiry_index: 2 });
    store.set("token:t", "{}", Some(ttl), false);
    assert_eq!(store.stats().expiry_index, 2, "an overwrite with a TTL replaces the old deadline");
    store.set("token:t", "{}", None, false);
    assert_eq!(store.stats().expiry_index, 1, "an overwrite without a TTL drops it");
    store.delete(&["token_list:1"]);
    assert_eq!(store.stats(), EmbeddedStats { keys: 1, expiry_index: 0 });
    assert_eq!(store.stored_len(), 1);
}
