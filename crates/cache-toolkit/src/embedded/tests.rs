//! Embedded-store behaviour that needs controlled time: TTLs with paused tokio time, and the
//! sweeper reclaiming memory. (Shared Redis semantics are in the conformance suite.)

use std::time::Duration;

use super::EmbeddedStore;
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
