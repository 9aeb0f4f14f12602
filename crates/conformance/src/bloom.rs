//! Conformance cases of the Bloom guard ([`cache_toolkit::BloomGuard`]) and of the bit operations under
//! it: the same answers, the same bit layout and the same errors on every backend.

use std::time::Duration;

use tokio::time::Instant;

use cache_toolkit::{BloomGuard, CacheClient, CacheErrorKind, Op, Ttl};

pub(super) async fn bloom_has_no_false_negatives(cache: CacheClient) {
    let guard = BloomGuard::new(&cache, "users", 1_000, 0.01).unwrap();
    assert!(!guard.might_contain("user:0").await.unwrap(), "an empty filter contains nothing");
    assert!(!cache.key_exists(guard.key()).await.unwrap(), "asking creates nothing");
    assert!(guard.might_contain_many(&["a", "b", "c"]).await.unwrap().iter().all(|&found| !found));
    guard.add_many::<&str>(&[]).await.unwrap();
    assert!(guard.might_contain_many::<&str>(&[]).await.unwrap().is_empty());
    assert!(!cache.key_exists(guard.key()).await.unwrap(), "adding nothing creates nothing");

    let items: Vec<String> = (0..1_000).map(|index| format!("user:{index}")).collect();
    for item in &items[..100] {
        guard.add(item).await.unwrap();
    }
    guard.add_many(&items[100..]).await.unwrap();
    for item in &items[..100] {
        assert!(guard.might_contain(item).await.unwrap(), "{item} was added");
    }
    let answers = guard.might_contain_many(&items).await.unwrap();
    assert_eq!(answers.len(), items.len());
    let missed: Vec<&String> = items.iter().zip(&answers).filter(|(_, found)| !**found).map(|(item, _)| item).collect();
    assert!(missed.is_empty(), "false negatives: {missed:?}");
    let odd = ["", "ключ 🦀", "with space", "{tag}", "line\nbreak"];
    guard.add_many(&odd).await.unwrap();
    assert_eq!(guard.might_contain_many(&odd).await.unwrap(), [true; 5], "odd items");
}

/// 10,000 items at p = 0.01, then 10,000 items never added: the measured rate must be under
/// 2p. A broken hash (all positions equal, or k = 1, or correlated hashes) gives far more; a
/// rate far below p would mean the filter is not the size it claims. The expected rate is
/// about 0.010 with a standard deviation of 0.001, so both bounds are several deviations away.
pub(super) async fn bloom_false_positive_rate_is_near_the_target(cache: CacheClient) {
    const ITEMS: u64 = 10_000;
    const TARGET: f64 = 0.01;
    let started = Instant::now();
    let guard = BloomGuard::new(&cache, "rate", ITEMS, TARGET).unwrap();
    assert_eq!((guard.bits(), guard.hashes()), (95_851, 7));
    let members: Vec<String> = (0..ITEMS).map(|index| format!("member:{index}")).collect();
    guard.add_many(&members).await.unwrap();
    assert!(guard.might_contain_many(&members).await.unwrap().iter().all(|&found| found), "no false negatives");
    let strangers: Vec<String> = (0..ITEMS).map(|index| format!("stranger:{index}")).collect();
    let false_positives = guard.might_contain_many(&strangers).await.unwrap().iter().filter(|&&found| found).count();
    let rate = false_positives as f64 / ITEMS as f64;
    eprintln!(
        "bloom false positive rate on {}: {rate:.4} ({false_positives} of {ITEMS}, target {TARGET}), {:?}",
        cache.store_kind().as_str(),
        started.elapsed()
    );
    assert!(rate < 2.0 * TARGET, "measured false positive rate {rate} is not under {}", 2.0 * TARGET);
    assert!(rate > TARGET / 5.0, "measured false positive rate {rate} is far below the target {TARGET}");
}

pub(super) async fn bloom_refuses_bad_parameters(cache: CacheClient) {
    let cases = [
        ("name", 0, 0.01, "zero items"),
        ("name", 100, 0.0, "rate 0"),
        ("name", 100, 1.0, "rate 1"),
        ("name", 100, -0.1, "negative rate"),
        ("name", 100, 2.0, "rate above 1"),
        ("name", 100, f64::NAN, "NaN rate"),
        ("name", 100, f64::INFINITY, "infinite rate"),
        ("name", 1_000_000_000, 0.001, "larger than 512 MiB"),
        ("", 100, 0.01, "empty name"),
    ];
    for (name, items, rate, what) in cases {
        let error = BloomGuard::new(&cache, name, items, rate).expect_err(what);
        assert_eq!(error.kind(), CacheErrorKind::InvalidInput, "{what}: {error}");
        assert!(error.to_string().contains("conformance:"), "{what}: the message names the key: {error}");
        assert!(!cache.key_exists(&format!("bloom:{{{name}}}")).await.unwrap(), "{what}: nothing stored");
    }
    let guard = BloomGuard::new(&cache, "fine", 100, 0.1).unwrap();
    assert_eq!((guard.name(), guard.key(), guard.bits(), guard.hashes()), ("fine", "bloom:{fine}", 480, 3));
}

pub(super) async fn bloom_wrong_type_is_an_error(cache: CacheClient) {
    let guard = BloomGuard::new(&cache, "typed", 100, 0.01).unwrap();
    cache.push_to_list(guard.key(), "a", cache_toolkit::ListEnd::Left).await.unwrap();
    let hashed = BloomGuard::new(&cache, "hashed", 100, 0.01).unwrap();
    cache.set_hash(hashed.key(), "f", "v").await.unwrap();
    for guard in [&guard, &hashed] {
        let failures = [
            ("add", guard.add("x").await.map(drop)),
            ("add_many", guard.add_many(&["x", "y"]).await.map(drop)),
            ("might_contain", guard.might_contain("x").await.map(drop)),
            ("might_contain_many", guard.might_contain_many(&["x", "y"]).await.map(drop)),
        ];
        for (what, result) in failures {
            let error = result.expect_err(what);
            assert_eq!(error.kind(), CacheErrorKind::WrongType, "{what} on {}: {error}", guard.key());
            assert!(!error.is_retryable(), "{what}");
            let redacted = cache.redacted_key(guard.key()).to_string();
            assert!(error.to_string().contains(&redacted), "{what}: the message names the key, redacted: {error}");
        }
    }
    assert_eq!(cache.get_list(guard.key()).await.unwrap(), ["a"], "the list is untouched");
    assert_eq!(cache.get_hash(hashed.key(), "f").await.unwrap().as_deref(), Some("v"), "the hash is untouched");
    guard.clear().await.unwrap();
    guard.add("x").await.unwrap();
    assert!(guard.might_contain("x").await.unwrap(), "after clear() the key is a filter again");
}

/// Two clients, two guards built independently with the same name and sizing: what one adds,
/// the other finds (the bit positions do not depend on the process). Another name is another
/// filter.
pub(super) async fn bloom_shared_between_clients(cache: CacheClient) {
    let other_client = cache.with_key_prefix(cache.key_prefix().clone());
    let first = BloomGuard::new(&cache, "shared", 500, 0.01).unwrap();
    let second = BloomGuard::new(&other_client, "shared", 500, 0.01).unwrap();
    let elsewhere = BloomGuard::new(&other_client, "elsewhere", 500, 0.01).unwrap();
    let from_first: Vec<String> = (0..200).map(|index| format!("first:{index}")).collect();
    let from_second: Vec<String> = (0..200).map(|index| format!("second:{index}")).collect();
    first.add_many(&from_first).await.unwrap();
    second.add_many(&from_second).await.unwrap();
    for (guard, items) in [(&second, &from_first), (&first, &from_second)] {
        assert!(guard.might_contain_many(items).await.unwrap().iter().all(|&found| found), "seen across clients");
    }
    assert!(elsewhere.might_contain_many(&from_first).await.unwrap().iter().all(|&found| !found), "another name");
}

/// The bits under the filter follow Redis's layout on every store: bit 0 is the most
/// significant bit of byte 0, the string grows with zero bytes, reading past the end gives 0,
/// a TTL survives a bit write, and a string that is no longer UTF-8 reads as bad data.
pub(super) async fn bloom_bitmap_has_redis_bit_semantics(cache: CacheClient) {
    assert_eq!(cache.get_bits(Op::BloomMightContain, "missing", &[0, 7, 1_000]).await.unwrap(), [false; 3]);
    assert!(!cache.key_exists("missing").await.unwrap(), "reading bits creates nothing");

    cache.set_bits(Op::BloomAdd, "fresh", &[1, 7]).await.unwrap();
    assert_eq!(cache.get_value("fresh").await.unwrap().as_deref(), Some("A"), "0b0100_0001");
    assert_eq!(cache.get_ttl("fresh").await.unwrap(), Ttl::NoExpiry);
    assert!(cache.release_lock("fresh", "A").await.unwrap(), "compare-and-delete compares the bytes");

    cache.set_value("grow", "a", Some(Duration::from_secs(100))).await.unwrap();
    cache.set_bits(Op::BloomAdd, "grow", &[17, 23]).await.unwrap();
    assert_eq!(cache.get_value("grow").await.unwrap().as_deref(), Some("a\u{0}A"), "grown with a zero byte");
    assert!(matches!(cache.get_ttl("grow").await.unwrap(), Ttl::ExpiresIn(_)), "a bit write keeps the TTL");
    let read = cache.get_bits(Op::BloomMightContain, "grow", &[0, 1, 2, 3, 7, 8, 17, 23, 24, 1_000_000]).await.unwrap();
    assert_eq!(read, [false, true, true, false, true, false, true, true, false, false]);

    cache.set_bits(Op::BloomAdd, "grow", &[0]).await.unwrap();
    let error = cache.get_value("grow").await.expect_err("0xE1 0x00 0x41 is not UTF-8");
    assert_eq!(error.kind(), CacheErrorKind::BadData, "{error}");
    assert!(error.to_string().contains(&cache.redacted_key("grow").to_string()), "{error}");
    assert!(!cache.release_lock("grow", "a\u{0}A").await.unwrap(), "the bytes changed");
    assert!(cache.get_bits(Op::BloomMightContain, "grow", &[0]).await.unwrap()[0]);
    cache.set_value("grow", "text again", None).await.unwrap();
    assert_eq!(cache.get_value("grow").await.unwrap().as_deref(), Some("text again"), "SET replaces a bitmap");
}

pub(super) async fn bloom_clear_empties_the_filter(cache: CacheClient) {
    let guard = BloomGuard::new(&cache, "cleared", 100, 0.01).unwrap();
    guard.clear().await.unwrap();
    guard.add_many(&["a", "b"]).await.unwrap();
    assert!(cache.key_exists(guard.key()).await.unwrap());
    guard.clear().await.unwrap();
    assert!(!cache.key_exists(guard.key()).await.unwrap());
    assert_eq!(guard.might_contain_many(&["a", "b"]).await.unwrap(), [false, false]);
}
