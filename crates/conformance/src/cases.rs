//! The conformance cases. Each takes a client under a fresh prefix and must pass unchanged on
//! every backend: that is how the embedded store is shown to behave like Redis.

use std::{collections::HashMap, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use cache_toolkit::{
    CacheClient, CacheErrorKind, CacheEvent, CappedPush, KeyPrefix, ListEnd, LoadPolicy, Loaded, LockOptions,
    LockRelease, MAX_TTL, Ttl,
};

pub(super) async fn ping_answers(cache: CacheClient) {
    let latency = cache.ping().await.unwrap();
    assert!(latency < Duration::from_secs(1), "{latency:?}");
}

pub(super) async fn strings_set_get_overwrite_and_missing(cache: CacheClient) {
    assert_eq!(cache.get_value("missing").await.unwrap(), None);
    cache.set_value("k", "v1", None).await.unwrap();
    assert_eq!(cache.get_value("k").await.unwrap().as_deref(), Some("v1"));
    cache.set_value("k", "v2", None).await.unwrap();
    assert_eq!(cache.get_value("k").await.unwrap().as_deref(), Some("v2"));
    cache.set_value("empty", "", None).await.unwrap();
    assert_eq!(cache.get_value("empty").await.unwrap().as_deref(), Some(""), "an empty string is a value, not a miss");
    cache.set_value("", "empty key", None).await.unwrap();
    assert_eq!(cache.get_value("").await.unwrap().as_deref(), Some("empty key"));
}

pub(super) async fn strings_odd_keys_and_values(cache: CacheClient) {
    let odd = [
        "ключ:значение",
        "日本語 キー",
        "with space",
        "a:b:c",
        "line\nbreak",
        "star*and?[glob]",
        "{hash}tag",
        "emoji 🦀",
        "tab\tand\r\n",
    ];
    for (index, text) in odd.iter().enumerate() {
        cache.set_value(text, &format!("{text}#{index}"), None).await.unwrap();
    }
    for (index, text) in odd.iter().enumerate() {
        assert_eq!(cache.get_value(text).await.unwrap(), Some(format!("{text}#{index}")), "key {text:?}");
        assert!(cache.key_exists(text).await.unwrap(), "key {text:?}");
    }
}

pub(super) async fn strings_one_mebibyte_value(cache: CacheClient) {
    let value: String = (0..1024 * 1024).map(|index| char::from(b'a' + (index % 26) as u8)).collect();
    cache.set_value("big", &value, Some(Duration::from_secs(60))).await.unwrap();
    let read = cache.get_value("big").await.unwrap().unwrap();
    assert_eq!(read.len(), 1024 * 1024);
    assert!(read == value, "1 MiB value changed on the way");
}

pub(super) async fn strings_set_if_absent(cache: CacheClient) {
    assert!(cache.set_value_if_absent("nx", "first", None).await.unwrap());
    assert!(!cache.set_value_if_absent("nx", "second", None).await.unwrap());
    assert_eq!(cache.get_value("nx").await.unwrap().as_deref(), Some("first"));
}

pub(super) async fn keys_exist_and_delete(cache: CacheClient) {
    assert!(!cache.key_exists("k").await.unwrap());
    assert!(!cache.delete_key("k").await.unwrap(), "deleting a missing key reports false");
    cache.set_value("k", "v", None).await.unwrap();
    assert!(cache.key_exists("k").await.unwrap());
    assert!(cache.delete_key("k").await.unwrap());
    assert!(!cache.key_exists("k").await.unwrap());
    assert_eq!(cache.get_value("k").await.unwrap(), None);
}

pub(super) async fn existing_keys_in_order_across_slots(cache: CacheClient) {
    assert!(cache.existing_keys::<&str>(&[]).await.unwrap().is_empty());
    let keys: Vec<String> = (0..50).map(|index| format!("exists:{index}")).collect();
    for key in keys.iter().step_by(2) {
        cache.set_value(key, "v", None).await.unwrap();
    }
    let expected: Vec<bool> = (0..50).map(|index| index % 2 == 0).collect();
    assert_eq!(cache.existing_keys(&keys).await.unwrap(), expected);
}

pub(super) async fn ttl_states(cache: CacheClient) {
    assert_eq!(cache.get_ttl("k").await.unwrap(), Ttl::Missing);
    assert!(!cache.set_expiry("k", Duration::from_secs(10)).await.unwrap(), "no TTL on a missing key");
    cache.set_value("k", "v", None).await.unwrap();
    assert_eq!(cache.get_ttl("k").await.unwrap(), Ttl::NoExpiry);
    assert!(cache.set_expiry("k", Duration::from_secs(100)).await.unwrap());
    match cache.get_ttl("k").await.unwrap() {
        Ttl::ExpiresIn(left) => assert!(left > Duration::from_secs(98) && left <= Duration::from_secs(100), "{left:?}"),
        other => panic!("expected a TTL, got {other:?}"),
    }
    cache.set_value("k", "v2", None).await.unwrap();
    assert_eq!(cache.get_ttl("k").await.unwrap(), Ttl::NoExpiry, "SET without a TTL clears the TTL");
    cache.set_value("k", "v3", Some(Duration::from_secs(50))).await.unwrap();
    assert!(matches!(cache.get_ttl("k").await.unwrap(), Ttl::ExpiresIn(left) if left <= Duration::from_secs(50)));
    cache.push_to_list("list", "a", ListEnd::Left).await.unwrap();
    cache.set_expiry("list", Duration::from_secs(30)).await.unwrap();
    cache.push_to_list("list", "b", ListEnd::Left).await.unwrap();
    assert!(matches!(cache.get_ttl("list").await.unwrap(), Ttl::ExpiresIn(_)), "pushing keeps a list's TTL");
}

pub(super) async fn ttl_zero_is_refused_or_deletes(cache: CacheClient) {
    cache.set_value("k", "kept", None).await.unwrap();
    let error = cache.set_value("k", "new", Some(Duration::ZERO)).await.expect_err("zero TTL");
    assert_eq!(error.kind(), CacheErrorKind::InvalidInput, "{error}");
    assert_eq!(cache.get_value("k").await.unwrap().as_deref(), Some("kept"), "refused input loses nothing");
    assert!(cache.set_expiry("k", Duration::ZERO).await.unwrap());
    assert_eq!(cache.get_ttl("k").await.unwrap(), Ttl::Missing, "EXPIRE 0 deletes, as in Redis");
}

pub(super) async fn ttl_expires_for_real(cache: CacheClient) {
    cache.set_value("short", "v", Some(Duration::from_millis(150))).await.unwrap();
    cache.set_hash("short-hash", "f", "v").await.unwrap();
    cache.set_expiry("short-hash", Duration::from_millis(150)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let gone = cache.get_value("short").await.unwrap().is_none()
            && cache.get_hash("short-hash", "f").await.unwrap().is_none();
        if gone {
            break;
        }
        assert!(Instant::now() < deadline, "keys with a 150 ms TTL still there after 3 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(cache.get_ttl("short").await.unwrap(), Ttl::Missing);
    assert!(!cache.key_exists("short-hash").await.unwrap());
}

/// Redis refuses an expiry past `i64::MAX` Unix milliseconds ("invalid expire time") and the
/// embedded store cannot add an unbounded duration to a clock: every store refuses a TTL over
/// `MAX_TTL` alike, before any I/O, and accepts `MAX_TTL` itself. Waits only saturate.
pub(super) async fn ttl_over_the_maximum_is_refused_and_long_waits_saturate(cache: CacheClient) {
    cache.set_value("longest", "v", Some(MAX_TTL)).await.unwrap();
    match cache.get_ttl("longest").await.unwrap() {
        Ttl::ExpiresIn(left) => assert!(left > MAX_TTL - Duration::from_secs(60), "{left:?}"),
        other => panic!("expected the longest TTL, got {other:?}"),
    }
    cache.set_value("k", "kept", Some(Duration::from_secs(100))).await.unwrap();
    for ttl in [MAX_TTL + Duration::from_millis(1), Duration::from_secs(u64::MAX), Duration::MAX] {
        let refusals = [
            ("set_value", cache.set_value("k", "new", Some(ttl)).await.map(drop)),
            ("set_value_if_absent", cache.set_value_if_absent("absent", "new", Some(ttl)).await.map(drop)),
            ("set_expiry", cache.set_expiry("k", ttl).await.map(drop)),
            ("acquire_lock", cache.acquire_lock("lock", ttl, Duration::ZERO, Duration::ZERO).await.map(drop)),
        ];
        for (operation, refused) in refusals {
            let error = refused.expect_err(operation);
            assert_eq!(error.kind(), CacheErrorKind::InvalidInput, "{operation} with {ttl:?}: {error}");
            assert!(error.to_string().contains("at most"), "{operation}: {error}");
        }
    }
    assert_eq!(cache.get_value("k").await.unwrap().as_deref(), Some("kept"), "refused input loses nothing");
    assert!(matches!(cache.get_ttl("k").await.unwrap(), Ttl::ExpiresIn(left) if left <= Duration::from_secs(100)));
    assert!(!cache.key_exists("absent").await.unwrap());

    let forever = LockOptions::new(Duration::from_secs(10)).waiting(Duration::MAX, Duration::from_millis(20));
    let guard = cache.acquire_lock_with("lock", forever).await.unwrap().expect("a free lock");
    let error = guard.extend(Duration::MAX).await.expect_err("an endless lease");
    assert_eq!(error.kind(), CacheErrorKind::InvalidInput, "{error}");
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.acquire_lock_with("lock", forever).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(guard.release().await.unwrap(), LockRelease::Released);
    let second = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("the waiter gets the lock");
    second.unwrap().unwrap().expect("acquired once released").release().await.unwrap();

    let policy = LoadPolicy::builder(Duration::from_secs(60))
        .cross_instance(Duration::from_secs(10), Duration::MAX)
        .build()
        .unwrap();
    let loaded = cache.get_or_load("loaded", &policy, || async { Ok::<_, std::io::Error>(Loaded::Found(7_u32)) }).await;
    assert_eq!(loaded.unwrap(), Some(7));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Session {
    user_id: u64,
    username: String,
    roles: Vec<String>,
    profile: Profile,
    last_seen: Option<f64>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    display: String,
    settings: HashMap<String, bool>,
}

pub(super) async fn json_nested_round_trips(cache: CacheClient) {
    let session = Session {
        user_id: 9_007_199_254_740_993,
        username: "алиса \"quoted\" \n".to_owned(),
        roles: vec!["admin".to_owned(), String::new()],
        profile: Profile { display: "🦀".to_owned(), settings: HashMap::from([("dark".to_owned(), true)]) },
        last_seen: None,
    };
    cache.set_json("session", &session, Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(cache.get_json::<Session>("session").await.unwrap(), Some(session));
    cache.set_json("list", &vec![1, 2, 3], None).await.unwrap();
    assert_eq!(cache.get_json::<Vec<i32>>("list").await.unwrap(), Some(vec![1, 2, 3]));
    let raw = serde_json::json!({"user_id": 42, "username": "alice", "nested": {"a": [1, {"b": null}]}});
    cache.set_json("value", &raw, None).await.unwrap();
    assert_eq!(cache.get_json::<serde_json::Value>("value").await.unwrap(), Some(raw));
    assert_eq!(cache.get_value("list").await.unwrap().as_deref(), Some("[1,2,3]"), "compact JSON, like orjson");
    assert_eq!(cache.get_json::<Session>("missing").await.unwrap(), None);
}

pub(super) async fn json_bad_stored_data_is_an_error_naming_the_key(cache: CacheClient) {
    cache.set_value("not-json", "this is {not json", None).await.unwrap();
    let error = cache.get_json::<serde_json::Value>("not-json").await.expect_err("not JSON");
    assert_eq!(error.kind(), CacheErrorKind::BadData, "{error}");
    assert_eq!(error.key(), Some(&cache.redacted_key("not-json")), "{error}");
    assert!(!error.is_retryable());
    cache.set_json("wrong-shape", &serde_json::json!({"user_id": "not a number"}), None).await.unwrap();
    let error = cache.get_json::<Session>("wrong-shape").await.expect_err("wrong shape");
    assert_eq!(error.kind(), CacheErrorKind::BadData, "{error}");
    assert_eq!(cache.get_value("not-json").await.unwrap().as_deref(), Some("this is {not json"), "nothing lost");
}

pub(super) async fn wrong_type_is_an_error_on_every_structure(cache: CacheClient) {
    cache.set_value("string", "v", None).await.unwrap();
    cache.push_to_list("list", "a", ListEnd::Left).await.unwrap();
    cache.set_hash("hash", "f", "v").await.unwrap();
    let failures = [
        ("push on a string", cache.push_to_list("string", "x", ListEnd::Left).await.map(drop)),
        ("range on a string", cache.list_range("string", 0, -1).await.map(drop)),
        ("lpos on a string", cache.list_position("string", "v").await.map(drop)),
        ("hget on a string", cache.get_hash("string", "f").await.map(drop)),
        ("hset on a list", cache.set_hash("list", "f", "v").await.map(drop)),
        ("get on a list", cache.get_value("list").await.map(drop)),
        ("get on a hash", cache.get_value("hash").await.map(drop)),
        ("lrem on a hash", cache.list_remove("hash", 0, "v").await.map(drop)),
        ("release a lock held in a list", cache.release_lock("list", "id").await.map(drop)),
    ];
    for (what, result) in failures {
        let error = result.expect_err(what);
        assert_eq!(error.kind(), CacheErrorKind::WrongType, "{what}: {error}");
        assert!(!error.is_retryable(), "{what}");
        assert!(error.to_string().contains("conformance:"), "{what}: the message names the key: {error}");
    }
    assert_eq!(cache.get_value("string").await.unwrap().as_deref(), Some("v"), "nothing changed");
    assert_eq!(cache.get_list("list").await.unwrap(), ["a"]);
}

pub(super) async fn hashes_set_get_all_delete(cache: CacheClient) {
    assert_eq!(cache.get_hash("h", "f").await.unwrap(), None);
    assert!(cache.get_hash_all("h").await.unwrap().is_empty());
    assert!(cache.set_hash("h", "f1", "v1").await.unwrap(), "new field");
    assert!(!cache.set_hash("h", "f1", "v1b").await.unwrap(), "updated field");
    assert!(cache.set_hash("h", "поле 2", "").await.unwrap());
    assert_eq!(cache.get_hash("h", "f1").await.unwrap().as_deref(), Some("v1b"));
    assert_eq!(cache.get_hash("h", "nope").await.unwrap(), None);
    let all = cache.get_hash_all("h").await.unwrap();
    assert_eq!(all, HashMap::from([("f1".to_owned(), "v1b".to_owned()), ("поле 2".to_owned(), String::new())]));
    assert!(cache.delete_hash_field("h", "f1").await.unwrap());
    assert!(!cache.delete_hash_field("h", "f1").await.unwrap());
    assert!(cache.delete_hash_field("h", "поле 2").await.unwrap());
    assert!(!cache.key_exists("h").await.unwrap(), "a hash without fields is gone");
}

pub(super) async fn lists_push_order_and_length(cache: CacheClient) {
    assert_eq!(cache.get_list("l").await.unwrap(), Vec::<String>::new());
    assert_eq!(cache.list_len("l").await.unwrap(), 0);
    assert_eq!(cache.push_to_list("l", "b", ListEnd::Left).await.unwrap(), 1);
    assert_eq!(cache.push_to_list("l", "a", ListEnd::Left).await.unwrap(), 2);
    assert_eq!(cache.push_to_list("l", "c", ListEnd::Right).await.unwrap(), 3);
    assert_eq!(cache.push_many_to_list("l", &["y", "x"], ListEnd::Left).await.unwrap(), 5);
    assert_eq!(cache.push_many_to_list("l", &["d", "e"], ListEnd::Right).await.unwrap(), 7);
    assert_eq!(cache.push_many_to_list::<&str>("l", &[], ListEnd::Right).await.unwrap(), 7, "nothing to push");
    assert_eq!(cache.get_list("l").await.unwrap(), ["x", "y", "a", "b", "c", "d", "e"]);
    assert_eq!(cache.list_len("l").await.unwrap(), 7);
}

pub(super) async fn lists_negative_indices(cache: CacheClient) {
    cache.push_many_to_list("l", &["0", "1", "2", "3", "4"], ListEnd::Right).await.unwrap();
    let cases: &[(i64, i64, &[&str])] = &[
        (0, -1, &["0", "1", "2", "3", "4"]),
        (-2, -1, &["3", "4"]),
        (-100, 1, &["0", "1"]),
        (1, 100, &["1", "2", "3", "4"]),
        (-3, -3, &["2"]),
        (3, 1, &[]),
        (5, 10, &[]),
        (-1, -2, &[]),
        (0, -6, &[]),
    ];
    for (start, stop, expected) in cases {
        assert_eq!(cache.list_range("l", *start, *stop).await.unwrap(), *expected, "LRANGE {start} {stop}");
    }
    assert!(cache.list_range("missing", 0, -1).await.unwrap().is_empty());
}

pub(super) async fn lists_pop_both_ends(cache: CacheClient) {
    assert_eq!(cache.left_pop_list("l").await.unwrap(), None);
    cache.push_many_to_list("l", &["a", "b", "c"], ListEnd::Right).await.unwrap();
    assert_eq!(cache.left_pop_list("l").await.unwrap().as_deref(), Some("a"));
    assert_eq!(cache.pop_list("l", ListEnd::Right).await.unwrap().as_deref(), Some("c"));
    assert_eq!(cache.left_pop_list("l").await.unwrap().as_deref(), Some("b"));
    assert_eq!(cache.left_pop_list("l").await.unwrap(), None);
    assert!(!cache.key_exists("l").await.unwrap(), "an empty list is gone");
}

pub(super) async fn lists_position(cache: CacheClient) {
    assert_eq!(cache.list_position("l", "x").await.unwrap(), None);
    cache.push_many_to_list("l", &["a", "b", "a", "c"], ListEnd::Right).await.unwrap();
    assert_eq!(cache.list_position("l", "a").await.unwrap(), Some(0), "first match");
    assert_eq!(cache.list_position("l", "c").await.unwrap(), Some(3));
    assert_eq!(cache.list_position("l", "z").await.unwrap(), None);
}

pub(super) async fn lists_remove_positive_negative_and_zero_counts(cache: CacheClient) {
    let fill = ["x", "a", "x", "b", "x", "c", "x"];
    let cases: &[(i64, u64, &[&str])] = &[
        (2, 2, &["a", "b", "x", "c", "x"]),
        (-2, 2, &["x", "a", "x", "b", "c"]),
        (0, 4, &["a", "b", "c"]),
        (10, 4, &["a", "b", "c"]),
        (-10, 4, &["a", "b", "c"]),
    ];
    for (count, removed, left) in cases {
        cache.delete_key("l").await.unwrap();
        cache.push_many_to_list("l", &fill, ListEnd::Right).await.unwrap();
        assert_eq!(cache.list_remove("l", *count, "x").await.unwrap(), *removed, "LREM {count}");
        assert_eq!(cache.get_list("l").await.unwrap(), *left, "LREM {count}");
    }
    assert_eq!(cache.list_remove("l", 0, "absent").await.unwrap(), 0);
    assert_eq!(cache.list_remove("missing", 0, "x").await.unwrap(), 0);
    cache.delete_key("only").await.unwrap();
    cache.push_many_to_list("only", &["x", "x"], ListEnd::Right).await.unwrap();
    cache.list_remove("only", 0, "x").await.unwrap();
    assert!(!cache.key_exists("only").await.unwrap(), "removing every element deletes the list");
}

pub(super) async fn lists_trim(cache: CacheClient) {
    let cases: &[(i64, i64, &[&str])] = &[
        (0, 2, &["0", "1", "2"]),
        (-2, -1, &["3", "4"]),
        (1, -2, &["1", "2", "3"]),
        (0, 100, &["0", "1", "2", "3", "4"]),
    ];
    for (start, stop, left) in cases {
        cache.delete_key("l").await.unwrap();
        cache.push_many_to_list("l", &["0", "1", "2", "3", "4"], ListEnd::Right).await.unwrap();
        cache.list_trim("l", *start, *stop).await.unwrap();
        assert_eq!(cache.get_list("l").await.unwrap(), *left, "LTRIM {start} {stop}");
    }
    cache.list_trim("l", 3, 1).await.unwrap();
    assert!(!cache.key_exists("l").await.unwrap(), "an empty range deletes the list");
    cache.list_trim("missing", 0, 1).await.unwrap();
}

pub(super) async fn lists_capped_push_keeps_the_newest_and_returns_the_evicted(cache: CacheClient) {
    let capped = async |values: &[&str], max_len| cache.push_to_capped_list("l", values, max_len).await.unwrap();
    let pushed =
        |len, evicted: &[&str]| CappedPush { len, evicted: evicted.iter().map(|&item| item.to_owned()).collect() };
    assert_eq!(capped(&[], 3).await, pushed(0, &[]));
    assert!(!cache.key_exists("l").await.unwrap(), "a trim alone creates nothing");
    assert_eq!(capped(&["a", "b", "c"], 5).await, pushed(3, &[]));
    assert_eq!(cache.get_list("l").await.unwrap(), ["c", "b", "a"], "LPUSH order");
    cache.set_expiry("l", Duration::from_secs(100)).await.unwrap();
    assert_eq!(capped(&["d", "e", "f"], 4).await, pushed(4, &["b", "a"]));
    assert_eq!(cache.get_list("l").await.unwrap(), ["f", "e", "d", "c"]);
    assert!(matches!(cache.get_ttl("l").await.unwrap(), Ttl::ExpiresIn(_)), "the list keeps its TTL");
    assert_eq!(capped(&[], 2).await, pushed(2, &["d", "c"]));
    assert_eq!(capped(&[], 2).await, pushed(2, &[]), "nothing left to evict");
    assert_eq!(capped(&["g"], 0).await, pushed(0, &["g", "f", "e"]));
    assert!(!cache.key_exists("l").await.unwrap(), "a cap of 0 deletes the list");
    assert_eq!(capped(&["x"], u64::MAX).await, pushed(1, &[]), "a cap beyond any list length");

    cache.set_value("text", "v", None).await.unwrap();
    let error = cache.push_to_capped_list("text", &["x"], 3).await.expect_err("a string is not a list");
    assert_eq!(error.kind(), CacheErrorKind::WrongType, "{error}");

    // Concurrent pushes: the list never grows past the cap, and every element pushed is either
    // still listed or was evicted to exactly one caller.
    const TASKS: usize = 4;
    const PUSHES: usize = 25;
    const CAP: u64 = 5;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let cache = cache.clone();
        tasks.spawn(async move {
            let mut evicted = Vec::new();
            for push in 0..PUSHES {
                let outcome = cache.push_to_capped_list("race", &[format!("{task}:{push}")], CAP).await.unwrap();
                assert!(outcome.len <= CAP, "{outcome:?}");
                evicted.extend(outcome.evicted);
            }
            evicted
        });
    }
    let mut seen: Vec<String> = tasks.join_all().await.into_iter().flatten().collect();
    let listed = cache.get_list("race").await.unwrap();
    assert_eq!(listed.len() as u64, CAP);
    seen.extend(listed);
    seen.sort();
    let mut expected: Vec<String> =
        (0..TASKS).flat_map(|task| (0..PUSHES).map(move |push| format!("{task}:{push}"))).collect();
    expected.sort();
    assert_eq!(seen, expected, "each element is listed or was evicted once");
}

pub(super) async fn lock_contention_loses_no_update(cache: CacheClient) {
    const TASKS: u64 = 8;
    const INCREMENTS: u64 = 50;
    cache.set_value("counter", "0", None).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let cache = cache.clone();
        tasks.spawn(async move {
            for _ in 0..INCREMENTS {
                let guard = cache
                    .acquire_lock(
                        "counter-lock",
                        Duration::from_secs(5),
                        Duration::from_secs(30),
                        Duration::from_millis(1),
                    )
                    .await
                    .unwrap()
                    .expect("the lock within 30 s");
                let current: u64 = cache.get_value("counter").await.unwrap().unwrap().parse().unwrap();
                tokio::task::yield_now().await;
                cache.set_value("counter", &(current + 1).to_string(), None).await.unwrap();
                assert_eq!(guard.release().await.unwrap(), LockRelease::Released);
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
    assert_eq!(cache.get_value("counter").await.unwrap(), Some((TASKS * INCREMENTS).to_string()));
    assert!(!cache.key_exists("counter-lock").await.unwrap());
}

pub(super) async fn lock_expired_cannot_be_released_by_its_old_holder(cache: CacheClient) {
    let old =
        cache.acquire_lock("lock", Duration::from_millis(100), Duration::ZERO, Duration::ZERO).await.unwrap().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let new = loop {
        if let Some(guard) =
            cache.acquire_lock("lock", Duration::from_secs(30), Duration::ZERO, Duration::ZERO).await.unwrap()
        {
            break guard;
        }
        assert!(Instant::now() < deadline, "a 100 ms lock still held after 3 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(old.identifier(), new.identifier());
    assert!(!old.extend(Duration::from_secs(60)).await.unwrap(), "the old holder cannot extend");
    assert_eq!(old.release().await.unwrap(), LockRelease::Lost);
    assert_eq!(cache.get_value("lock").await.unwrap().as_deref(), Some(new.identifier()), "the new holder keeps it");
    assert_eq!(new.release().await.unwrap(), LockRelease::Released);
}

pub(super) async fn lock_wrong_identifier_cannot_release_or_extend(cache: CacheClient) {
    let guard =
        cache.acquire_lock("lock", Duration::from_secs(10), Duration::ZERO, Duration::ZERO).await.unwrap().unwrap();
    assert!(!cache.release_lock("lock", "not-the-identifier").await.unwrap());
    assert!(!cache.extend_lock("lock", "not-the-identifier", Duration::from_secs(100)).await.unwrap());
    assert_eq!(cache.get_value("lock").await.unwrap().as_deref(), Some(guard.identifier()), "the lock stays");
    assert!(matches!(cache.get_ttl("lock").await.unwrap(), Ttl::ExpiresIn(left) if left <= Duration::from_secs(10)));
    assert!(guard.extend(Duration::from_secs(100)).await.unwrap());
    assert!(matches!(cache.get_ttl("lock").await.unwrap(), Ttl::ExpiresIn(left) if left > Duration::from_secs(90)));
    assert!(!cache.release_lock("missing-lock", "x").await.unwrap());
    assert_eq!(guard.release().await.unwrap(), LockRelease::Released);
    assert!(!cache.key_exists("lock").await.unwrap());
}

pub(super) async fn lock_acquire_times_out(cache: CacheClient) {
    let held =
        cache.acquire_lock("lock", Duration::from_secs(10), Duration::ZERO, Duration::ZERO).await.unwrap().unwrap();
    let started = Instant::now();
    let second = cache
        .acquire_lock("lock", Duration::from_secs(10), Duration::from_millis(150), Duration::from_millis(20))
        .await
        .unwrap();
    assert!(second.is_none(), "the lock is held");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(2), "{waited:?}");
    assert_eq!(held.release().await.unwrap(), LockRelease::Released);
    let third = cache.acquire_lock("lock", Duration::from_secs(10), Duration::ZERO, Duration::ZERO).await.unwrap();
    assert_eq!(third.expect("free again").release().await.unwrap(), LockRelease::Released);
}

pub(super) async fn batch_delete_over_many_slots(cache: CacheClient) {
    assert_eq!(cache.batch_delete_keys::<&str>(&[]).await.unwrap(), 0);
    let keys: Vec<String> = (0..200).map(|index| format!("batch:{index}")).collect();
    for key in &keys {
        cache.set_value(key, "v", None).await.unwrap();
    }
    let mut with_missing = keys.clone();
    with_missing.push("batch:never-written".to_owned());
    assert_eq!(cache.batch_delete_keys(&with_missing).await.unwrap(), 200);
    for key in &keys {
        assert!(!cache.key_exists(key).await.unwrap(), "{key} survived");
    }
}

pub(super) async fn delete_matching_pattern_everywhere(cache: CacheClient) {
    for index in 0..300 {
        cache.set_value(&format!("scan:{index}"), "v", None).await.unwrap();
    }
    cache.set_value("scan", "not matched: no colon", None).await.unwrap();
    cache.set_value("other:1", "v", None).await.unwrap();
    cache.set_hash("scan:hash", "f", "v").await.unwrap();
    assert_eq!(cache.delete_matching("scan:*").await.unwrap(), 301);
    assert_eq!(cache.delete_matching("scan:*").await.unwrap(), 0);
    assert!(cache.key_exists("scan").await.unwrap());
    assert!(cache.key_exists("other:1").await.unwrap());
    let other = cache.with_key_prefix(KeyPrefix::parse(&format!("{}x", cache.key_prefix().as_str())).unwrap());
    other.set_value("scan:1", "another namespace", None).await.unwrap();
    assert_eq!(cache.delete_matching("scan:*").await.unwrap(), 0, "another prefix is out of reach");
    assert!(other.key_exists("scan:1").await.unwrap());
    other.delete_key("scan:1").await.unwrap();
}

pub(super) async fn prefixes_isolate_clients_on_one_store(cache: CacheClient) {
    let other = cache.with_key_prefix(KeyPrefix::parse(&format!("{}other:", cache.key_prefix().as_str())).unwrap());
    cache.set_value("k", "mine", None).await.unwrap();
    assert_eq!(other.get_value("k").await.unwrap(), None);
    other.set_value("k", "theirs", None).await.unwrap();
    assert_eq!(cache.get_value("k").await.unwrap().as_deref(), Some("mine"));
    assert_eq!(other.get_value("k").await.unwrap().as_deref(), Some("theirs"));
    other.delete_key("k").await.unwrap();
}

pub(super) async fn metrics_count_hits_misses_and_errors(cache: CacheClient) {
    let before = cache.metrics().snapshot();
    cache.set_value("k", "v", None).await.unwrap();
    cache.get_value("k").await.unwrap();
    cache.get_value("k").await.unwrap();
    cache.get_value("missing").await.unwrap();
    cache.push_to_list("k", "x", ListEnd::Left).await.expect_err("wrong type");
    let after = cache.metrics().snapshot();
    assert_eq!(after.hits - before.hits, 2);
    assert_eq!(after.misses - before.misses, 1);
    // A read the near cache answers is no store operation (the second GET, when there is one).
    let from_memory = after.event(CacheEvent::NearHit) - before.event(CacheEvent::NearHit);
    assert!(from_memory <= 1, "{from_memory}");
    assert_eq!(after.operations - before.operations, 5 - from_memory);
    assert_eq!(after.errors_of(CacheErrorKind::WrongType) - before.errors_of(CacheErrorKind::WrongType), 1);
    let timed = after.latency_buckets.iter().sum::<u64>() - before.latency_buckets.iter().sum::<u64>();
    assert_eq!(timed, 5 - from_memory);
    assert!(after.hit_rate().is_some_and(|rate| rate > 0.0 && rate < 1.0));
}

/// LPOS as a yes/no, and GET with a list membership in one call: the same answers everywhere,
/// a missing key or list included; a wrong type under either key is `WrongType`.
pub(super) async fn lists_contains_and_value_with_membership(cache: CacheClient) {
    cache.push_many_to_list("members", &["a", "b"], ListEnd::Right).await.unwrap();
    cache.set_value("value", "v", None).await.unwrap();
    assert!(cache.list_contains("members", "b").await.unwrap());
    assert!(!cache.list_contains("members", "c").await.unwrap());
    assert!(!cache.list_contains("no-list", "a").await.unwrap());
    assert_eq!(cache.get_value_and_list_contains("value", "members", "a").await.unwrap(), (Some("v".to_owned()), true));
    assert_eq!(
        cache.get_value_and_list_contains("value", "members", "z").await.unwrap(),
        (Some("v".to_owned()), false)
    );
    assert_eq!(cache.get_value_and_list_contains("missing", "no-list", "a").await.unwrap(), (None, false));
    assert_eq!(
        cache.get_value_and_list_contains("members", "members", "a").await.unwrap_err().kind(),
        CacheErrorKind::WrongType,
        "GET of a list"
    );
    assert_eq!(
        cache.get_value_and_list_contains("value", "value", "a").await.unwrap_err().kind(),
        CacheErrorKind::WrongType,
        "LPOS of a string"
    );
    assert_eq!(cache.list_contains("value", "a").await.unwrap_err().kind(), CacheErrorKind::WrongType);
    assert_eq!(cache.list_remove("members", 0, "a").await.unwrap(), 1);
    assert!(!cache.list_contains("members", "a").await.unwrap(), "after LREM");
}
