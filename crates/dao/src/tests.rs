//! Key texts pinned (the contract with the Python system), records decoded as that system
//! writes them, and the DAO against the embedded store.

use std::time::Duration;

use cache_toolkit::{CacheClient, CacheOptions, CacheStore, EmbeddedStore, KeyPrefix};

use simd_json::prelude::ValueAsScalar;

use super::*;

#[test]
fn key_texts_are_the_python_systems() {
    assert_eq!(keys::token("AbC-_123"), "token:AbC-_123");
    assert_eq!(keys::token_list(&UserId::Integer(42)), "token_list:42");
    assert_eq!(keys::token_list(&UserId::Integer(-7)), "token_list:-7");
    assert_eq!(keys::token_list(&UserId::text("alice").unwrap()), "token_list:alice");
    assert_eq!(keys::token_list(&UserId::text("42").unwrap()), "token_list:42", "a string id names the same list");
}

#[tokio::test]
async fn the_key_prefix_applies_to_both_keys() {
    let store = EmbeddedStore::new();
    let raw = CacheClient::new(CacheStore::Embedded(store.clone()), CacheOptions::default());
    let prefixed = CacheClient::new(
        CacheStore::Embedded(store),
        CacheOptions { key_prefix: KeyPrefix::parse("app1:").unwrap(), ..CacheOptions::default() },
    );
    let dao = CacheDao::new(prefixed);
    let record = TokenRecord::new(UserId::Integer(7), MetadataObject::new());
    dao.store_token("tok", &record, Duration::from_secs(60)).await.unwrap();
    assert_eq!(raw.get_value("app1:token:tok").await.unwrap().as_deref(), Some(r#"{"user_id":7}"#));
    assert_eq!(raw.get_list("app1:token_list:7").await.unwrap(), ["tok"]);
    assert_eq!(raw.get_value("token:tok").await.unwrap(), None);
}

#[test]
fn records_decode_as_the_python_system_writes_them() {
    let record = TokenRecord::decode(r#"{"user_id":42,"username":"alice","extra":{"x":[1,2.5]}}"#.to_owned()).unwrap();
    assert_eq!(record.user_id(), &UserId::Integer(42));
    assert_eq!(record.json(), r#"{"user_id":42,"username":"alice","extra":{"x":[1,2.5]}}"#, "kept verbatim");
    assert_eq!(record.field("username").and_then(|value| value.as_str()), Some("alice"));
    let big = TokenRecord::decode(r#"{"user_id":18446744073709551615}"#.to_owned()).unwrap();
    assert_eq!(big.user_id(), &UserId::Integer(18_446_744_073_709_551_615));
    let text = TokenRecord::decode(r#"{"user_id":"u-1"}"#.to_owned()).unwrap();
    assert_eq!(text.user_id(), &UserId::Text("u-1".to_owned()));
}

#[test]
fn corrupt_records_say_why() {
    let cases = [
        ("not json", CorruptMetadata::NotJson),
        ("[1,2]", CorruptMetadata::NotAnObject),
        (r#""text""#, CorruptMetadata::NotAnObject),
        (r#"{"username":"x"}"#, CorruptMetadata::NoUserId),
        (r#"{"user_id":null}"#, CorruptMetadata::BadUserId),
        (r#"{"user_id":1.5}"#, CorruptMetadata::BadUserId),
        (r#"{"user_id":""}"#, CorruptMetadata::BadUserId),
        (r#"{"user_id":[1]}"#, CorruptMetadata::BadUserId),
        (r#"{"user_id":true}"#, CorruptMetadata::BadUserId),
    ];
    for (text, expected) in cases {
        assert_eq!(TokenRecord::decode(text.to_owned()).map(|_| ()), Err(expected), "{text}");
    }
}

#[test]
fn user_ids_from_paths_and_text() {
    assert_eq!(UserId::from_path_segment("42"), Ok(UserId::Integer(42)));
    assert_eq!(UserId::from_path_segment("042"), Ok(UserId::Text("042".to_owned())), "not the integer's digits");
    assert_eq!(UserId::from_path_segment("alice"), Ok(UserId::Text("alice".to_owned())));
    assert_eq!(UserId::text(""), Err(UserIdError::Empty));
    assert_eq!(UserId::text("a\nb"), Err(UserIdError::ControlCharacter));
    assert!(matches!(UserId::text(&"x".repeat(300)), Err(UserIdError::TooLong { .. })));
}

#[tokio::test]
async fn keep_newest_trims_the_list_and_deletes_the_dropped_tokens() {
    let dao = CacheDao::new(CacheClient::embedded());
    let user = UserId::Integer(1);
    for index in 0..5 {
        dao.store_token(
            &format!("t{index}"),
            &TokenRecord::new(user.clone(), MetadataObject::new()),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    }
    assert_eq!(dao.user_tokens(&user).await.unwrap(), ["t4", "t3", "t2", "t1", "t0"]);
    assert_eq!(dao.keep_newest(&user, 3).await.unwrap(), ["t1", "t0"]);
    assert_eq!(dao.user_tokens(&user).await.unwrap(), ["t4", "t3", "t2"]);
    assert!(matches!(dao.read_token("t0").await.unwrap(), TokenLookup::Missing));
    assert!(matches!(dao.read_token("t4").await.unwrap(), TokenLookup::Found(_)));
    assert_eq!(dao.keep_newest(&user, 3).await.unwrap(), Vec::<String>::new());
}
